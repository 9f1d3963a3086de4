"""Building a ``Runner`` from a GGUF file on a compute backend."""

from __future__ import annotations

from pathlib import Path

from ollamakit.errors import BadRequest

from .hparams import ARCHITECTURES, read_hparams
from .ops import Ops
from .runner import DEFAULT_NUM_BATCH, Runner
from .weights import load_weights

# "float32" computes plainly on the dequantized weights. "llama.cpp" also rounds activations where
# llama.cpp's CPU backend does (rounding.py): one decode step then lands within ~1e-4 of its
# logits, but over many layers and tokens the remaining last-bit differences (summation order)
# flip some of those roundings, so greedy agreement is no better and long prompts run ~3x slower.
NUMERICS = ("llama.cpp", "float32")
DEFAULT_NUMERICS = "float32"


def supports(metadata: dict) -> bool:
    return metadata.get("general.architecture") in ARCHITECTURES


def build_runner(gguf, backend, options: dict | None = None, tokenizer=None) -> Runner:
    """A runner for the open GGUF file ``gguf`` (an ``ollamakit_gguf.reader.GGUFFile``)."""
    options = options or {}
    num_batch = options.get("num_batch", DEFAULT_NUM_BATCH)
    if isinstance(num_batch, bool) or not isinstance(num_batch, int) or num_batch < 1:
        raise BadRequest(f"num_batch must be a positive integer, got {num_batch!r}")
    numerics = options.get("numerics", getattr(backend, "default_numerics", DEFAULT_NUMERICS))
    if numerics not in NUMERICS:
        raise BadRequest(f"numerics must be one of {', '.join(NUMERICS)}, got {numerics!r}")
    hp = read_hparams(gguf.metadata)
    ops = Ops(backend, exact=numerics == "llama.cpp")
    weights = load_weights(gguf, hp, ops)
    metadata = dict(gguf.metadata)
    return Runner(hp=hp, weights=weights, ops=ops, metadata=metadata, tokenizer=tokenizer, num_batch=num_batch)


def load_runner(path: str | Path, backend, options: dict | None = None, *, with_tokenizer: bool = True) -> Runner:
    """Open the GGUF at ``path`` and build its runner (with its tokenizer unless told not to)."""
    from ollamakit_gguf.reader import GGUFFile

    with GGUFFile.open(path) as gguf:
        tokenizer = None
        if with_tokenizer:
            from ollamakit_tokenizers import load_tokenizer

            tokenizer = load_tokenizer(gguf.metadata)
        return build_runner(gguf, backend, options, tokenizer)
