"""Building a ``Runner`` from a GGUF file on a compute backend."""

from __future__ import annotations

from pathlib import Path

from ollamakit.errors import BadRequest

from .hparams import ARCHITECTURES, read_hparams
from .ops import Ops
from .runner import DEFAULT_NUM_BATCH, Runner
from .weights import load_weights


# What the array engines (numpy, cuda: ``model.py``) run; the graph engine runs every
# architecture of ``ARCHITECTURES``.
ARRAY_ARCHITECTURES = frozenset({"llama", "qwen2", "qwen3", "gemma3"})


def supports(metadata: dict) -> bool:
    return metadata.get("general.architecture") in ARCHITECTURES


def build_runner(gguf, backend, options: dict | None = None, tokenizer=None, adapters=()) -> Runner:
    """A runner for the open GGUF file ``gguf`` (an ``ollamakit.lib.gguf.reader.GGUFFile``), with
    the LoRA adapter files ``adapters`` applied (at most one, as in Ollama)."""
    options = options or {}
    num_batch = options.get("num_batch", DEFAULT_NUM_BATCH)
    if isinstance(num_batch, bool) or not isinstance(num_batch, int) or num_batch < 1:
        raise BadRequest(f"num_batch must be a positive integer, got {num_batch!r}")
    threads = _threads(options, backend)
    hp = read_hparams(gguf.metadata)
    if len(adapters) > 1:
        raise BadRequest("only one adapter is currently supported")
    if backend.runs_graphs:
        return _graph_runner(gguf, hp, backend, options, tokenizer, num_batch, threads, adapters)
    if adapters:  # never answer as if the adapter were there
        raise BadRequest(
            f"LoRA adapters need the ggml compute backend; this server computes with {backend.name}"
        )
    if (
        hp.arch not in ARRAY_ARCHITECTURES
        or hp.n_expert
        or (hp.rope_ext_factor and hp.rope_scale != 1.0)
        or hp.rope_attn_factor != 1.0
    ):
        what = (
            " with experts"
            if hp.n_expert
            else " with YaRN or rope attention-factor scaling"
            if hp.arch in ARRAY_ARCHITECTURES
            else ""
        )
        raise BadRequest(
            f"the {hp.arch} architecture{what} needs the ggml compute backend; this server computes with {backend.name}"
        )
    ops = Ops(backend)
    ops.use_threads(threads)
    weights = load_weights(gguf, hp, ops)
    metadata = dict(gguf.metadata)
    return Runner(
        hp=hp,
        weights=weights,
        ops=ops,
        metadata=metadata,
        tokenizer=tokenizer,
        num_batch=num_batch,
        threads=threads,
        choose_threads=not options.get("num_thread"),
    )


def estimate_bytes(gguf, backend, num_ctx: int, num_parallel: int, cache_type: str = "f16") -> int:
    """What a runner for ``gguf`` will hold with ``num_parallel`` caches of ``num_ctx`` (within
    the training context, as the scheduler gives it), from the file's header alone: the graph
    engine keeps the file's blocks, the array engines float32 copies."""
    hp = read_hparams(gguf.metadata)
    num_ctx = max(1, min(num_ctx, hp.n_ctx_train))
    if backend.runs_graphs:
        from .graph_cache import cache_bytes as graph_cache_bytes
        from .graph_cache import splits_into_blocks
        from .graph_weights import derived_bytes

        if not splits_into_blocks(hp, cache_type):  # the runner falls back to f16 so
            cache_type = "f16"
        weights = sum(info.nbytes for info in gguf.tensors)
        weights += derived_bytes(hp, {info.name for info in gguf.tensors})
        # sliding-window rings hold a step of rows beyond their window: the default step's
        # (a request's own num_batch is not known here; the load measures the real size)
        caches = graph_cache_bytes(hp, num_ctx, DEFAULT_NUM_BATCH, cache_type)
        return weights + num_parallel * caches
    from .cache import cache_bytes

    weights = 4 * sum(info.n_elements for info in gguf.tensors)
    return weights + num_parallel * cache_bytes(hp, num_ctx)


def _graph_runner(gguf, hp, backend, options, tokenizer, num_batch, threads, adapters=()):
    """The model on ggml: weights in their file's blocks, a graph per step."""
    from .graph_lora import LoraWeights
    from .graph_runner import GraphRunner
    from .graph_weights import MappedWeights

    weights = MappedWeights.open(gguf, backend.lib)
    return GraphRunner(
        hp=hp,
        weights=weights,
        adapter=LoraWeights(adapters[0], gguf, weights, backend.lib) if adapters else None,
        backend=backend,
        metadata=dict(gguf.metadata),
        tokenizer=tokenizer,
        num_batch=num_batch,
        threads=threads,
        cache_type=options.get("kv_cache_type") or "f16",
        dense_prefill=bool(options.get("fast_prefill")),
    )


def _threads(options: dict, backend) -> int | None:
    """Threads the model computes with: Ollama's ``num_thread`` (0 or absent: the backend's
    default), or None for a backend that does not set threads (an accelerator)."""
    count = options.get("num_thread", 0) or 0
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise BadRequest(f"num_thread must be a non-negative integer, got {count!r}")
    if backend.default_threads is None:  # an accelerator counts no threads
        return None
    return count or backend.default_threads


DECODER, BERT = "decoder", "bert"  # the two kinds of runner this engine builds


def runner_kind(metadata: dict) -> str | None:
    """Which runner a file's architecture needs: a decoder, a BERT encoder (``bert``,
    ``nomic-bert``), or None."""
    from .bert_plugin import ARCHITECTURES as BERT_ARCHITECTURES

    if supports(metadata):
        return DECODER
    return BERT if metadata.get("general.architecture") in BERT_ARCHITECTURES else None


def load_runner(
    path: str | Path,
    backend,
    options: dict | None = None,
    *,
    with_tokenizer: bool = True,
    adapters=(),
    kinds: tuple[str, ...] | None = None,
):
    """Open the GGUF at ``path`` and build its runner (with its tokenizer unless told not to):
    the one place a model file becomes a runner. With ``kinds``, a file of another kind
    gives None (another plugin's architecture); without, it is refused."""
    from ollamakit.lib.gguf import GGUFFile

    with GGUFFile.open(path) as gguf:
        kind = runner_kind(gguf.metadata)
        if kind is None or (kinds is not None and kind not in kinds):
            if kinds is not None:
                return None
            raise BadRequest(f"unsupported model architecture {gguf.architecture!r}")
        tokenizer = None
        if with_tokenizer:
            from ollamakit.lib.tokenizers import load_tokenizer

            tokenizer = load_tokenizer(gguf.metadata)
        if kind == BERT:
            if adapters:  # never answer as if the adapter were there
                raise BadRequest("LoRA adapters are not supported for BERT models")
            from .bert import build_bert_runner

            return build_bert_runner(gguf, backend, tokenizer, options)
        return build_runner(gguf, backend, options, tokenizer, adapters)
