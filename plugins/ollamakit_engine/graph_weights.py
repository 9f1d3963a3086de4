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
from .layer_tensors import possible_layer_tensors, required_layer_tensors


@dataclass
class LayerTensors:
    """A block's tensors, by the fields of ``layer_tensors.LAYER_TENSORS``; None where the file has none."""

    attn_norm: int | None = None
    attn_norm_b: int | None = None
    wqkv: int | None = None
    wq: int | None = None
    wk: int | None = None
    wv: int | None = None
    bq: int | None = None
    bk: int | None = None
    bv: int | None = None
    bqkv: int | None = None
    q_norm: int | None = None
    k_norm: int | None = None
    wo: int | None = None
    bo: int | None = None
    post_attn_norm: int | None = None
    ffn_norm: int | None = None
    ffn_norm_b: int | None = None
    gate: int | None = None
    up: int | None = None
    up_b: int | None = None
    down: int | None = None
    down_b: int | None = None
    post_ffn_norm: int | None = None
    out_scale: int | None = None
    gate_inp: int | None = None
    gate_exps: int | None = None
    up_exps: int | None = None
    down_exps: int | None = None
    sinks: int | None = None
    gate_inp_b: int | None = None
    gate_exps_b: int | None = None
    up_exps_b: int | None = None
    down_exps_b: int | None = None
    exp_probs_b: int | None = None
    gate_shexp: int | None = None
    up_shexp: int | None = None
    down_shexp: int | None = None
    q_a: int | None = None
    q_a_norm: int | None = None
    q_b: int | None = None
    kv_a_mqa: int | None = None
    kv_a_norm: int | None = None
    k_b: int | None = None
    v_b: int | None = None
    kv_b: int | None = None

    def projections(self) -> list[int]:
        """The matrices multiplied by the block's rows (not the experts, which are chosen)."""
        names = ("wqkv", "wq", "wk", "wv", "wo", "gate", "up", "down")
        names += ("q_a", "q_b", "kv_a_mqa", "gate_shexp", "up_shexp", "down_shexp")
        return [w for w in (getattr(self, n) for n in names) if w is not None]


# Projections multiplied by mul_mat (not the embedding, which is read by rows) whose type the CPU
# backend repacks on x86 (ggml-cpu/repack.cpp picks the kernel by type and CPU).
# The experts' 3-D tensors too: the repacked kernels run mul_mat_id over them. llama.cpp repacks
# every such weight, so a projection left out here (deepseek2's low-rank query and latent maps,
# the shared experts) is summed in another order than llama.cpp's: 1e-6 apart, which the next
# product's 8-bit rounding of its input can widen to 0.06 in the logits. Not attn_k_b/attn_v_b:
# 3-D weights of a mul_mat, which ggml's repacked kernels do not take.
REPACKED_NAMES = re.compile(
    r"^(blk\.\d+\.(attn_[qkv]|attn_qkv|attn_output|attn_q_[ab]|attn_kv_a_mqa"
    r"|ffn_gate|ffn_up|ffn_down|ffn_(gate|up|down)_(exps|shexp))|output)\.weight$"
)
F32, F16 = 0, 1  # ggml types of the tensors derived at load
REPACK_AVX2 = {2, 12, 20, 39}  # Q4_0, Q4_K, IQ4_NL, MXFP4
REPACK_AVX512 = {10}  # Q2_K
HUGE_PAGES = os.environ.get("OLLAMAKIT_HUGE_PAGES", "all")  # 0: none; repacked: those only; all
HUGE_PAGE = 2 << 20
COPY_PIECE = 16 << 20


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
                raise InvalidModelFile(
                    f"tensor {name} has {info.nbytes} bytes, ggml expects {lib.ggml_nbytes(tensor)}"
                )
            self.tensors.place(tensor, base + info.offset)
            self.by_name[name] = tensor
        self.nbytes = sum(info.nbytes for info in self.infos.values())
        self.repacked_names: set[str] = set()
        self.repacked = self._repack(base)
        self.settled = self._settle(base)
        self.derived: dict[
            str, int
        ] = {}  # tensors made at load from the file's (``absorbed_keys``)
        self._derived_buffers: list = []
        self.derived_nbytes = 0
        self._derive_lock = threading.Lock()

    def _repack(self, base: int):
        """Move the projection matrices whose type the CPU backend interleaves (Q4_0, Q4_K,
        IQ4_NL, MXFP4; Q2_K with AVX-512) into its repacking buffer, as llama.cpp loads them:
        its gemv and gemm kernels then read 8 rows at once, which is faster and gives
        llama.cpp's sums. The file's pages of those tensors are given back afterwards, so the
        weights are held once. None when nothing qualifies (other CPUs, other types)."""
        names = [name for name, info in self.infos.items() if self._repackable(name, info)]
        if not names:
            return None
        self.repacked_names.update(names)
        return self._move(base, names, self.lib.repack_buffer_type())

    def _settle(self, base: int):
        """Copy the other projection matrices of a huge page or more (float16, Q6_K, Q8_0...)
        into memory of huge pages, and give the file's pages back: a decode step reads every
        one of them whole, and the page cache holds a file in whatever folios it was read in
        (mostly 4 KiB ones), so through the mapping each 4 KiB costs a TLB miss. None when
        huge pages are off (``OLLAMAKIT_HUGE_PAGES=0``) or nothing qualifies."""
        if HUGE_PAGES != "all":
            return None
        names = [
            name
            for name, info in self.infos.items()
            if REPACKED_NAMES.match(name)
            and name not in self.repacked_names
            and info.ggml_type != F32  # BERT's float32 matrices go to panels (``panels``)
            and info.nbytes >= HUGE_PAGE
        ]
        return self._move(base, names) if names else None

    def _move(self, base: int, names: list[str], buffer_type: int | None = None):
        """The tensors ``names`` copied from the mapping into one buffer of ``buffer_type``
        (the CPU's plain one unless told) on huge pages, the mapping's pages of each given back
        as it is copied."""
        from ollamakit.lib.ggml.graph import Tensors

        moved = Tensors(self.lib, len(names))
        tensors = {
            name: moved.new(self.infos[name].ggml_type, *self.infos[name].shape, name=name)
            for name in names
        }
        moved.allocate(buffer_type, huge_pages=HUGE_PAGES != "0")
        for name, tensor in tensors.items():
            info = self.infos[name]
            # a plain copy goes a piece at a time, each piece's pages given back after it, so
            # that a large matrix is never held twice; repacking takes a tensor whole
            piece = info.nbytes if buffer_type is not None else COPY_PIECE
            for start in range(0, info.nbytes, piece):
                size = min(piece, info.nbytes - start)
                self.lib.ggml_backend_tensor_set(tensor, base + info.offset + start, start, size)
                self._release(info.offset + start, size)
            self._release(info.offset, info.nbytes)  # the pages the pieces' edges cut
            self.by_name[name] = tensor
        return moved

    def _repackable(self, name: str, info) -> bool:
        lib = self.lib
        if not REPACKED_NAMES.match(name) or len(info.shape) not in (2, 3) or info.shape[1] % 8:
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

    def absorbed_keys(self, name: str, hp: HParams) -> int:
        """``attn_k_b`` of a block whose file has only ``attn_kv_b`` (``name``), as llama.cpp's
        converter splits it: each head's key rows of the latent's map, transposed to
        (nope, kv_lora_rank, n_head), so that queries multiply into the latent. A float16 copy
        (``derived_bytes``), made once per mapping; the values' rows are used in place."""
        with self._derive_lock:
            if name in self.derived:
                return self.derived[name]
            from ollamakit.lib.ggml.graph import Tensors, array
            from ollamakit.lib.gguf.dequant import dequantize

            info = self.infos[name]
            nope = hp.head_dim_mla - hp.rope_dim
            rows = dequantize(
                self._map[info.offset : info.offset + info.nbytes], info.ggml_type, info.shape
            ).reshape(hp.n_head, nope + hp.head_dim_v_mla, hp.kv_lora_rank)
            keys = np.ascontiguousarray(rows[:, :nope, :].transpose(0, 2, 1), np.float16)
            buffer = Tensors(self.lib, 1)
            tensor = buffer.new(F16, nope, hp.kv_lora_rank, hp.n_head)
            buffer.allocate()
            array(tensor, F16, keys.shape)[...] = keys
            self.derived_nbytes += keys.nbytes
            self._derived_buffers.append(buffer)
            self.derived[name] = tensor
            return tensor

    def panels(self, name: str, panel: int) -> int:
        """A float32 matrix ``name`` (k, rows) in the panel layout of ollamakit's float32
        product (``kernels.c``): ``panel`` rows at a time, each panel column by column, as a
        tensor (panel, k, rows / panel). Made once per mapping; the file's pages of the matrix
        are given back, so the weights are held once."""
        key = f"{name}#panels{panel}"
        with self._derive_lock:
            if key in self.derived:
                return self.derived[key]
            from ollamakit.lib.ggml.graph import Tensors, array

            info = self.infos[name]
            k, rows = (int(n) for n in info.shape)
            matrix = np.frombuffer(self._map, np.float32, k * rows, info.offset).reshape(rows, k)
            packed = np.ascontiguousarray(
                matrix.reshape(rows // panel, panel, k).transpose(0, 2, 1)
            )
            buffer = Tensors(self.lib, 1)
            tensor = buffer.new(F32, panel, k, rows // panel)
            buffer.allocate()
            array(tensor, F32, packed.shape)[...] = packed
            self._release(info.offset, info.nbytes)
            self.derived_nbytes += packed.nbytes
            self._derived_buffers.append(buffer)
            self.derived[key] = tensor
            return tensor

    def optional(self, name: str, *shape: int) -> int | None:
        return self.get(name, *shape) if name in self.infos else None

    def vector(self, name: str) -> np.ndarray | None:
        """A small float32 tensor (rope frequency factors) as numpy, or None."""
        info = self.infos.get(name)
        if info is None:
            return None
        from ollamakit.lib.gguf.dequant import dequantize

        start = info.offset
        return dequantize(
            self._map[start : start + info.nbytes], info.ggml_type, info.shape
        ).reshape(-1)


@dataclass
class ModelTensors:
    token_embd: int
    output: int
    output_norm: int
    rope_factors: int | None
    layers: list[LayerTensors]
    vocab_size: int
    repacked: frozenset[int] = frozenset()  # tensors in ggml's interleaved (repacked) layout
    output_norm_b: int | None = None
    output_b: int | None = None
    rope_long: int | None = None  # LongRoPE's factor sets (``rope_factors_long/short.weight``)
    rope_short: int | None = None


def model_tensors(weights: MappedWeights, hp: HParams) -> ModelTensors:
    """The tensors the transformer reads, each checked against the hyperparameters."""
    d = hp.n_embd
    info = weights.infos.get("token_embd.weight")
    if info is None or len(info.shape) != 2 or info.shape[0] != d or info.shape[1] < 1:
        raise InvalidModelFile(f"tensor token_embd.weight is missing or not ({d}, vocab)")
    vocab = int(info.shape[1])
    token_embd = weights.by_name["token_embd.weight"]
    output = weights.optional("output.weight", d, vocab) or token_embd
    rope_long, rope_short = (
        (weights.optional(f"rope_factors_{n}.weight", hp.rope_dim // 2) for n in ("long", "short"))
        if hp.long_rope
        else (None, None)
    )
    if (rope_long is None) != (rope_short is None):
        raise InvalidModelFile("model file has one of rope_factors_long and rope_factors_short")
    layers = []
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        possible = possible_layer_tensors(hp, i)
        present = {field for field, (name, _) in possible.items() if p + name in weights.infos}
        required = required_layer_tensors(hp, present, i)
        found = {}
        for field, (name, shape) in possible.items():
            if field in required or field in present:
                found[field] = weights.get(p + name, *shape(hp.layer(i)))
        if "kv_b" in found:  # an older latent-attention file: the keys' map derived from it
            found["k_b"] = weights.absorbed_keys(p + "attn_kv_b.weight", hp)
        layers.append(LayerTensors(**found))
    return ModelTensors(
        token_embd=token_embd,
        output=output,
        output_norm=weights.get("output_norm.weight", d),
        rope_factors=weights.optional("rope_freqs.weight", hp.rope_dim // 2),
        layers=layers,
        vocab_size=vocab,
        repacked=frozenset(weights.by_name[name] for name in weights.repacked_names),
        output_norm_b=weights.optional("output_norm.bias", d),
        output_b=weights.optional("output.bias", vocab),
        rope_long=rope_long,
        rope_short=rope_short,
    )


def derived_bytes(hp: HParams, names) -> int:
    """Bytes of the tensors the loader derives for a file holding the tensors ``names``: the
    float16 ``attn_k_b`` of each latent-attention block that has only ``attn_kv_b``."""
    blocks = sum(f"blk.{i}.attn_kv_b.weight" in names for i in range(hp.n_layer))
    return blocks * 2 * (hp.head_dim_mla - hp.rope_dim) * hp.kv_lora_rank * hp.n_head
