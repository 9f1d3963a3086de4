"""Plugin ``engine``: runs GGUF models of the architectures it knows on the kernel's compute
backend (``kernel.compute``: numpy, cuda, ...)."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hook: the engine imports numpy, which the CLI does without
# (``PluginManager.import_deferred`` checks it before serving).
DEFERRED_IMPORTS = ("ollamakit_engine.loader", "ollamakit_engine.requirements")


@hookimpl
def load_model(kernel, model, options):
    from .loader import DECODER, load_runner

    path = model.model_path
    if path is None:
        return None
    # the server's cache type (OLLAMA_KV_CACHE_TYPE), not a request's, as in Ollama
    options = {
        **options,
        "kv_cache_type": kernel.settings.kv_cache_type,
        "fast_prefill": kernel.settings.fast_prefill,
    }
    runner = load_runner(
        path, kernel.compute, options, adapters=model.adapter_paths, kinds=(DECODER,)
    )
    if runner is None:
        return None  # another plugin's architecture (bert, ...)
    if kernel.compute.runs_graphs:  # vision towers run on the graph engine
        from ollamakit import manifest as mf

        from .vision import attach_vision

        projectors = model.manifest.find(mf.PROJECTOR)
        attach_vision(runner, kernel.store.blob_path(projectors[0].digest) if projectors else None)
    return runner


@hookimpl
def estimate_memory(kernel, model, num_ctx, num_parallel):
    from ollamakit.lib.gguf.reader import GGUFFile

    from .loader import estimate_bytes, supports

    path = model.model_path
    if path is None:
        return None
    with GGUFFile.open(path) as gguf:
        if not supports(gguf.metadata):
            return None
        weights_and_caches = estimate_bytes(
            gguf, kernel.compute, num_ctx, num_parallel, kernel.settings.kv_cache_type
        )
    return weights_and_caches + sum(
        path.stat().st_size for path in model.adapter_paths
    )  # held beside the base


@hookimpl
def check_model(kernel, header):
    from .requirements import check_decoder, supports_decoder

    if not supports_decoder(header.metadata):
        return None
    check_decoder(header)
    return True
