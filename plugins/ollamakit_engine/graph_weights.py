"""A model's weights for the graph engine: the GGUF file memory-mapped, each tensor in place.

Nothing is converted or copied: every tensor is a ggml tensor whose data is the file's own
blocks, and ggml's kernels multiply those blocks directly. The resident memory of the weights is
therefore the pages of the file that have been read, shared with the page cache, and two models
made from the same file (two names, one blob) share one mapping (``MappedWeights.open``).
"""

from __future__ import annotations

import mmap
import os
import re
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


# Projections multiplied by mul_mat (not the embedding, which is read by rows) whose type the CPU
# backend repacks on x86 (ggml-cpu/repack.cpp picks the kernel by type and CPU).
REPACKED_NAMES = re.compile(r"^(blk\.\d+\.(attn_[qkv]|attn_output|ffn_gate|ffn_up|ffn_down)|output)\.weight$")
REPACK_AVX2 = {2, 12, 20, 39}  # Q4_0, Q4_K, IQ4_NL, MXFP4
REPACK_AVX512 = {10}  # Q2_K


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
        from ollamakit.lib.ggml.graph import Tensors

        self.lib = lib
        self.infos = {info.name: info for info in gguf.tensors}
        self.file_size = gguf.file_size
        with open(gguf.path, "rb") as file:
            self._map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        self._bytes = np.frombuffer(self._map, np.uint8)
        base = self._bytes.ctypes.data
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
        self.repacked_names: set[str] = set()
        self.repacked = self._repack(base)

    def _repack(self, base: int):
        """Move the projection matrices whose type the CPU backend interleaves (Q4_0, Q4_K,
        IQ4_NL, MXFP4; Q2_K with AVX-512) into its repacking buffer, as llama.cpp loads them:
        its gemv and gemm kernels then read 8 rows at once, which is faster and gives
        llama.cpp's sums. The file's pages of those tensors are given back afterwards, so the
        weights are held once. None when nothing qualifies (other CPUs, other types)."""
        from ollamakit.lib.ggml.graph import Tensors

        names = [name for name, info in self.infos.items() if self._repackable(name, info)]
        if not names:
            return None
        repacked = Tensors(self.lib, len(names))
        moved = {name: repacked.new(self.infos[name].ggml_type, *self.infos[name].shape, name=name) for name in names}
        repacked.allocate(self.lib.repack_buffer_type())
        for name, tensor in moved.items():
            info = self.infos[name]
            self.lib.ggml_backend_tensor_set(tensor, base + info.offset, 0, info.nbytes)
            self.by_name[name] = tensor
            self.repacked_names.add(name)
            self._release(info.offset, info.nbytes)
        return repacked

    def _repackable(self, name: str, info) -> bool:
        lib = self.lib
        if not REPACKED_NAMES.match(name) or len(info.shape) != 2 or info.shape[1] % 8:
            return False
        if info.ggml_type in REPACK_AVX2:
            return bool(lib.ggml_cpu_has_avx2())
        return info.ggml_type in REPACK_AVX512 and bool(lib.ggml_cpu_has_avx512())

    def _release(self, offset: int, size: int) -> None:
        """Drop the mapping's pages of a range from this process (the file keeps them)."""
        page = mmap.PAGESIZE
        start = -(-offset // page) * page
        stop = (offset + size) // page * page
        if stop > start and hasattr(self._map, "madvise"):
            self._map.madvise(mmap.MADV_DONTNEED, start, stop - start)

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
        from ollamakit.lib.gguf.dequant import dequantize

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
    repacked: frozenset[int] = frozenset()  # tensors in ggml's interleaved (repacked) layout


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
        repacked=frozenset(weights.by_name[name] for name in weights.repacked_names),
    )
