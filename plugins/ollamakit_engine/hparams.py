"""Hyperparameters of a decoder-only transformer, read from GGUF metadata.

Every number comes from the file (``<arch>.block_count``, ``<arch>.attention.head_count``, ...);
what differs between architectures that the file does not say (gemma3's embedding scale, its
sliding-window pattern and local rope base, llama's interleaved rope) is written down here, once
per architecture. Every value is checked before it sizes an allocation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ollamakit.errors import InvalidModelFile

# Upper bounds that no real model reaches; they stop a corrupt file from sizing huge arrays.
MAX_LAYERS = 1024
MAX_WIDTH = 1 << 17
MAX_HEADS = 1024
MAX_CONTEXT = 1 << 24

# gemma3: every sixth layer attends globally, the others through a sliding window whose rope
# base is fixed at 10000 (the global layers use ``rope.freq_base`` from the file).
GEMMA3_SWA_PATTERN = 6
GEMMA3_LOCAL_ROPE_BASE = 10000.0


@dataclass(frozen=True)
class HParams:
    arch: str
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int  # per-head width of queries and keys
    head_dim_v: int  # per-head width of values
    n_ctx_train: int
    norm_eps: float
    rope_dim: int  # leading dimensions of each head that are rotated
    rope_base: float
    rope_scale: float  # positions are multiplied by this (linear rope scaling)
    interleaved_rope: bool  # llama's GGUF layout rotates adjacent pairs
    attn_scale: float
    scale_queries: bool  # scale queries before attention (gemma) rather than the scores (llama)
    embed_scale: float
    activation: str  # "silu" or "gelu_tanh", applied to the gate
    logit_softcap: float | None
    sliding_window: int | None
    swa_layers: tuple[bool, ...]
    rope_base_local: float | None  # rope base of the sliding-window layers
    pooling: str  # for embeddings: "none" (pooled as the mean), "mean", "cls", "last"

    @property
    def n_group(self) -> int:
        return self.n_head // self.n_head_kv

    @property
    def q_dim(self) -> int:
        return self.n_head * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_head_kv * self.head_dim

    @property
    def v_dim(self) -> int:
        return self.n_head_kv * self.head_dim_v


class Metadata:
    """Typed, bounded access to ``<arch>.*`` keys."""

    def __init__(self, metadata: dict, arch: str):
        self.metadata = metadata
        self.arch = arch

    def raw(self, key: str, default=None):
        return self.metadata.get(f"{self.arch}.{key}", default)

    def int(self, key: str, default: int | None = None, *, low: int = 1, high: int = MAX_WIDTH) -> int:
        value = self.raw(key, default)
        if isinstance(value, (list, tuple)):  # per-layer arrays: we support uniform ones
            if not value or any(v != value[0] for v in value):
                raise InvalidModelFile(f"{self.arch}.{key}: per-layer values differ, which is not supported")
            value = value[0]
        if value is None:
            raise InvalidModelFile(f"model metadata lacks {self.arch}.{key}")
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidModelFile(f"{self.arch}.{key} = {value!r} is out of range [{low}, {high}]")
        return value

    def float(self, key: str, default: float | None = None) -> float:
        value = self.raw(key, default)
        if value is None:
            raise InvalidModelFile(f"model metadata lacks {self.arch}.{key}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidModelFile(f"{self.arch}.{key} = {value!r} is not a finite number")
        return float(value)

    def positive_float(self, key: str, default: float | None = None) -> float:
        """A float that divides or scales (a norm's epsilon): zero or less cannot run."""
        value = self.float(key, default)
        if value <= 0:
            raise InvalidModelFile(f"{self.arch}.{key} = {value!r} must be positive")
        return value


POOLING = {0: "none", 1: "mean", 2: "cls", 3: "last"}


def read_hparams(metadata: dict) -> HParams:
    arch = metadata.get("general.architecture")
    if arch not in ARCHITECTURES:
        supported = ", ".join(sorted(ARCHITECTURES))
        raise InvalidModelFile(f"unsupported model architecture {arch!r}; supported: {supported}")
    return ARCHITECTURES[arch](Metadata(metadata, arch))


def _common(m: Metadata) -> dict:
    n_embd = m.int("embedding_length")
    n_head = m.int("attention.head_count", high=MAX_HEADS)
    n_head_kv = m.int("attention.head_count_kv", n_head, high=MAX_HEADS)
    if n_head % n_head_kv:
        raise InvalidModelFile(f"{m.arch}: {n_head} query heads cannot share {n_head_kv} key/value heads evenly")
    if m.raw("attention.key_length") is None and n_embd % n_head:
        raise InvalidModelFile(f"{m.arch}: width {n_embd} does not split into {n_head} heads")
    head_dim = m.int("attention.key_length", n_embd // n_head)
    head_dim_v = m.int("attention.value_length", head_dim)
    rope_dim = m.int("rope.dimension_count", head_dim)
    if rope_dim > head_dim or rope_dim % 2:
        raise InvalidModelFile(f"{m.arch}.rope.dimension_count = {rope_dim} does not fit heads of width {head_dim}")
    scaling = m.raw("rope.scaling.type", "none")
    factor = m.float("rope.scaling.factor", 1.0)
    if scaling not in ("none", "linear") and factor != 1.0:
        raise InvalidModelFile(f"{m.arch}: rope scaling {scaling!r} is not supported")
    if factor <= 0:
        raise InvalidModelFile(f"{m.arch}.rope.scaling.factor must be positive")
    softcap = m.raw("final_logit_softcapping")
    pooling = m.raw("pooling_type", 0)
    n_layer = m.int("block_count", high=MAX_LAYERS)
    return dict(
        arch=m.arch,
        n_layer=n_layer,
        n_embd=n_embd,
        n_ff=m.int("feed_forward_length"),
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim=head_dim,
        head_dim_v=head_dim_v,
        n_ctx_train=m.int("context_length", high=MAX_CONTEXT),
        norm_eps=m.positive_float("attention.layer_norm_rms_epsilon", 1e-5),
        rope_dim=rope_dim,
        rope_base=m.positive_float("rope.freq_base", 10000.0),
        rope_scale=1.0 / factor if scaling == "linear" else 1.0,
        interleaved_rope=False,
        attn_scale=1.0 / math.sqrt(head_dim),
        scale_queries=False,
        embed_scale=1.0,
        activation="silu",
        logit_softcap=m.float("final_logit_softcapping") if softcap else None,
        sliding_window=None,
        swa_layers=(False,) * n_layer,
        rope_base_local=None,
        pooling=POOLING.get(pooling, "none"),
    )


def llama(m: Metadata) -> HParams:
    # Llama's converter permutes q/k rows so that rope rotates adjacent pairs.
    return HParams(**{**_common(m), "interleaved_rope": True})


def neox(m: Metadata) -> HParams:
    """qwen2/qwen3: llama's block with rope over the two halves of each head."""
    return HParams(**_common(m))


def gemma3(m: Metadata) -> HParams:
    params = _common(m)
    n_layer = params["n_layer"]
    window = m.int("attention.sliding_window", high=MAX_CONTEXT)
    # The 27B model (62 layers) scales queries by the model width per head, not the head width.
    query_width = params["n_embd"] // params["n_head"] if n_layer == 62 else params["head_dim"]
    params.update(
        embed_scale=math.sqrt(params["n_embd"]),
        activation="gelu_tanh",
        attn_scale=1.0 / math.sqrt(query_width),
        scale_queries=True,
        sliding_window=window,
        swa_layers=tuple(i % GEMMA3_SWA_PATTERN < GEMMA3_SWA_PATTERN - 1 for i in range(n_layer)),
        rope_base_local=GEMMA3_LOCAL_ROPE_BASE,
    )
    return HParams(**params)


ARCHITECTURES = {"llama": llama, "qwen2": neox, "qwen3": neox, "gemma3": gemma3}
