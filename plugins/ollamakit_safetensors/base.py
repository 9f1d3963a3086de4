"""The shared shape of an architecture conversion: typed access to ``config.json``, the tensor
plan entry, and the base class each architecture fills in (see ``decoders.py``, ``bert.py``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ollamakit.errors import InvalidModelFile

MAX_WIDTH = 1 << 18
MAX_LAYERS = 1024
MAX_CONTEXT = 1 << 24
MAX_FLOAT = float(np.finfo(np.float32).max)


class Config:
    """Typed, bounded access to ``config.json``."""

    def __init__(self, values: dict):
        self.values = values

    def int(
        self, key: str, default: int | None = None, *, high: int = MAX_WIDTH, low: int = 1
    ) -> int:
        value = self.values.get(key, default)
        if value is None:
            raise InvalidModelFile(f"config.json lacks {key}")
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidModelFile(
                f"config.json: {key} = {value!r} is out of range [{low}, {high}]"
            )
        return value

    def float(self, key: str, default: float | None = None) -> float:
        value = self.values.get(key, default)
        if value is None:
            raise InvalidModelFile(f"config.json lacks {key}")
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or abs(value) > MAX_FLOAT  # GGUF stores these as float32
        ):
            raise InvalidModelFile(f"config.json: {key} = {value!r} is not a finite number")
        return float(value)

    def get(self, key: str, default=None):
        return self.values.get(key, default)

    def section(self, key: str) -> Config:
        """The object under ``key`` (empty when absent or null), refusing any other value."""
        value = self.values.get(key)
        if value is None:
            return Config({})
        if not isinstance(value, dict):
            raise InvalidModelFile(f"config.json: {key} must be an object")
        return Config(value)


@dataclass
class Tensor:
    """One GGUF tensor to write: its source tensor, a transformation, and whether it is F32."""

    name: str
    source: str
    transform: object = None  # array -> array, applied to the stored elements
    force_f32: bool = False
    # a mixture of experts' matrix: which expert ``source`` is; the plan stacks every expert's
    # matrix of a layer into one 3-D tensor, its ``parts`` (their sources, by expert)
    expert: int | None = None
    parts: tuple[str, ...] = ()
    # a tensor made from part of its source, or from two (an MXFP4 matrix from its blocks and
    # scales): the (numpy-order) shape written and the source's shape the transform takes
    shape: tuple[int, ...] | None = None
    source_shape: tuple[int, ...] | None = None
    # written as blocks of this ggml type (MXFP4), which ``transform`` builds from the source
    # and the ``companion`` source (``transform(source, companion)``)
    ggml_type: str | None = None
    companion: str | None = None


class Architecture:
    gguf_name = ""
    hf_names: tuple[str, ...] = ()
    tokenizer = "any"  # "wordpiece" for BERT

    def __init__(self, config: Config, folder):
        self.config = config
        self.folder = folder
        # Every architecture we convert is a transformer sized by these four keys.
        self.n_layer = config.int("num_hidden_layers", high=MAX_LAYERS)
        self.n_embd = config.int("hidden_size")
        self.n_ff = config.int("intermediate_size")
        self.n_head = config.int("num_attention_heads", high=4096)
        self.n_expert = 0  # experts per layer, for the architectures that have them

    @classmethod
    def build(cls, config: Config, folder) -> Architecture:
        """The conversion of a folder whose config names this class (an architecture with more
        than one layout picks the folder's)."""
        return cls(config, folder)

    def metadata(self) -> dict[str, tuple[object, int]]:
        raise NotImplementedError

    def tensor(self, hf_name: str) -> Tensor | None:
        """The GGUF tensor made from ``hf_name``; None for tensors the model does not use."""
        raise NotImplementedError

    def tensors(self, hf_name: str) -> list[Tensor]:
        """The GGUF tensors made from ``hf_name``: one, or several where the converter splits
        a source (gpt-oss's interleaved gate and up experts, deepseek2's ``kv_b_proj``)."""
        tensor = self.tensor(hf_name)
        return [] if tensor is None else [tensor]

    def expected_shape(self, name: str) -> tuple[int, ...] | None:
        """The (numpy-order) shape GGUF tensor ``name`` must have, or None if it is unknown."""
        raise NotImplementedError

    def required(self) -> list[str]:
        raise NotImplementedError

    def extra_tensors(self) -> dict[str, np.ndarray]:
        """Tensors computed from the config rather than read (llama3's rope factors)."""
        return {}

    def parameters(self) -> dict[str, object]:
        """Model parameters the folder implies (stored as the model's params layer, below any
        the Modelfile sets): a sentence-transformers input limit as ``num_ctx``."""
        return {}

    def check_vocab(self, n_tokens: int) -> None:
        rows = self.expected_shape("token_embd.weight")[0]
        if rows != n_tokens:
            raise InvalidModelFile(
                f"the tokenizer has {n_tokens} tokens but the embedding has {rows} rows"
            )


def arch_keys(arch: str, values: dict) -> dict[str, tuple[object, int]]:
    out = {}
    for key, (value, kind) in values.items():
        if value is not None:
            out[f"{arch}.{key}"] = (value, kind)
    return out
