"""Plugin ``engine``: runs GGUF models of the architectures it knows on the kernel's compute
backend (``kernel.compute``: numpy, cuda, ...)."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

from .loader import build_runner, supports


@hookimpl
def load_model(kernel, model, options):
    from ollamakit_gguf.reader import GGUFFile

    path = model.model_path
    if path is None:
        return None
    with GGUFFile.open(path) as gguf:
        if not supports(gguf.metadata):
            return None  # another plugin's architecture (bert, ...)
        from ollamakit_tokenizers import load_tokenizer

        tokenizer = load_tokenizer(gguf.metadata)
        # the server's cache type (OLLAMA_KV_CACHE_TYPE), not a request's, as in Ollama
        options = {**options, "kv_cache_type": kernel.settings.kv_cache_type}
        return build_runner(gguf, kernel.compute, options, tokenizer)
