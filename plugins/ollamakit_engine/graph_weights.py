"""A model's weights for the graph engine: the GGUF file memory-mapped, each tensor in place.

Nothing is converted or copied: every tensor is a ggml tensor whose data is the file's own
blocks, and ggml's kernels multiply those blocks directly. The resident memory of the weights is
therefore the pages of the file that have been read, shared with the page cache, and two models
made from the same file (two names, one blob) share one mapping (``MappedWeights.open``).
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from ollamakit.errors import InvalidModelFile

from .hparams import HParams


@dataclass
class LayerTensors:
    attn_norm: int
    wq: int
    wk: int
    wv: int
    bq: int | None
    bk: int | None
    bv: int | None
    q_norm: int | None
    k_norm: int | None
    wo: int
    post_attn_norm: int | None
    ffn_norm: int
    gate: int
    up: int
    down: int
    post_ffn_norm: int | None


class MappedWeights:
    """Every tensor of one GGUF file as a ggml tensor over the file's read-only mapping."""

    _open: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
    _open_lock = threading.Lock()

    @classmethod
    def open(cls, gguf, lib) -> MappedWeights:
        """The mapping of ``gguf``'s file, shared with any model already holding it."""
        stat = os.stat(gguf.path)
        key = (os.path.realpath(gguf.path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with cls._open_lock:
            weights = cls._open.get(key)
            if weights is None:
                weights = cls(gguf, lib)
                cls._open[key] = weights
            return weights

    def __init__(self, gguf, lib):
        from ollamakit_ggml.graph import Tensors

        self.lib = lib
        self.infos = {info.name: info for info in gguf.tensors}
        self.file_size = gguf.file_size
        self._map = np.memmap(gguf.path, dtype=np.uint8, mode="r")
        base = self._map.ctypes.data
        self.tensors = Tensors(lib, len(self.infos))
        self.tensors.map(base, self.file_size)
        self.by_name: dict[str, int] = {}
        for name, info in self.infos.items():
            tensor = self.tensors.new(info.ggml_type, *info.shape, name=name)
            if lib.ggml_nbytes(tensor) != info.nbytes:
                raise InvalidModelFile(f"tensor {name} has {info.nbytes} bytes, ggml expects {lib.ggml_nbytes(tensor)}")
            self.tensors.place(tensor, base + info.offset)
            self.by_name[name] = tensor
        self.nbytes = sum(info.nbytes for info in self.infos.values())

    def get(self, name: str, *shape: int) -> int:
        """The tensor ``name``, which must have ``shape`` (ggml order, trailing ones dropped)."""
        info = self.infos.get(name)
        if info is None:
            raise InvalidModelFile(f"model file lacks tensor {name}")
        have = tuple(info.shape)
        while len(have) > len(shape) and have[-1] == 1:
            have = have[:-1]
        if have != tuple(shape):
            raise InvalidModelFile(f"tensor {name} has shape {tuple(info.shape)}, expected {shape}")
        return self.by_name[name]

    def optional(self, name: str, *shape: int) -> int | None:
        return self.get(name, *shape) if name in self.infos else None

    def vector(self, name: str) -> np.ndarray | None:
        """A small float32 tensor (rope frequency factors) as numpy, or None."""
        info = self.infos.get(name)
        if info is None:
            return None
        from ollamakit_gguf.dequant import dequantize

        start = info.offset
        return dequantize(self._map[start : start + info.nbytes], info.ggml_type, info.shape).reshape(-1)


@dataclass
class ModelTensors:
    token_embd: int
    output: int
    output_norm: int
    rope_factors: int | None
    layers: list[LayerTensors]
    vocab_size: int


def model_tensors(weights: MappedWeights, hp: HParams) -> ModelTensors:
    """The tensors the transformer reads, each checked against the hyperparameters."""
    d = hp.n_embd
    info = weights.infos.get("token_embd.weight")
    if info is None or len(info.shape) != 2 or info.shape[0] != d or info.shape[1] < 1:
        raise InvalidModelFile(f"tensor token_embd.weight is missing or not ({d}, vocab)")
    vocab = int(info.shape[1])
    token_embd = weights.by_name["token_embd.weight"]
    output = weights.optional("output.weight", d, vocab) or token_embd
    layers = []
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        layers.append(
            LayerTensors(
                attn_norm=weights.get(p + "attn_norm.weight", d),
                wq=weights.get(p + "attn_q.weight", d, hp.q_dim),
                wk=weights.get(p + "attn_k.weight", d, hp.kv_dim),
                wv=weights.get(p + "attn_v.weight", d, hp.v_dim),
                bq=weights.optional(p + "attn_q.bias", hp.q_dim),
                bk=weights.optional(p + "attn_k.bias", hp.kv_dim),
                bv=weights.optional(p + "attn_v.bias", hp.v_dim),
                q_norm=weights.optional(p + "attn_q_norm.weight", hp.head_dim),
                k_norm=weights.optional(p + "attn_k_norm.weight", hp.head_dim),
                wo=weights.get(p + "attn_output.weight", hp.n_head * hp.head_dim_v, d),
                post_attn_norm=weights.optional(p + "post_attention_norm.weight", d),
                ffn_norm=weights.get(p + "ffn_norm.weight", d),
                gate=weights.get(p + "ffn_gate.weight", d, hp.n_ff),
                up=weights.get(p + "ffn_up.weight", d, hp.n_ff),
                down=weights.get(p + "ffn_down.weight", hp.n_ff, d),
                post_ffn_norm=weights.optional(p + "post_ffw_norm.weight", d),
            )
        )
    return ModelTensors(
        token_embd=token_embd,
        output=output,
        output_norm=weights.get("output_norm.weight", d),
        rope_factors=weights.optional("rope_freqs.weight", hp.rope_dim // 2),
        layers=layers,
        vocab_size=vocab,
    )
