"""Hyperparameters of a decoder-only transformer, read from GGUF metadata.

Every number comes from the file (``<arch>.block_count``, ``<arch>.attention.head_count``, ...);
what differs between architectures that the file does not say (gemma3's embedding scale, its
sliding-window pattern and local rope base, llama's interleaved rope, which layer tensors a block
must have) is written down here, once per architecture, in ``ARCHITECTURES``: one reader per
architecture over the shared ``_common`` keys. The graph (``graph_model``) has no per-architecture
branches: it follows these values and the tensors the file holds. Every value is checked before
it sizes an allocation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from ollamakit.errors import InvalidModelFile

# Upper bounds that no real model reaches; they stop a corrupt file from sizing huge arrays.
MAX_LAYERS = 1024
MAX_WIDTH = 1 << 17
MAX_HEADS = 1024
MAX_CONTEXT = 1 << 24
MAX_EXPERTS = 1024

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
    # The layer tensors every block must have (``layer_tensors.LAYER_TENSORS`` names them; the
    # others are used where the file has them).
    required: frozenset[str] = frozenset()
    norm: str = "rms"  # "rms", or "layer" (mean removed, with a bias where the file has one)
    qk_norm_whole: bool = False  # q/k norms over all heads at once (olmo2), not per head
    fused_gate_up: bool = False  # ffn_up holds the gate's rows and then the up rows (phi3)
    attn_softcap: float | None = None  # tanh soft cap of the attention scores (gemma2)
    residual_scale: float = 1.0  # each block's output scaled before the residual add (granite)
    logit_scale: float = 1.0  # logits divided by this (granite)
    # mixture of experts: ``n_expert`` FFNs per layer, ``n_expert_used`` chosen per token by a
    # router, their outputs summed with the router's weights
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0  # width of one expert's FFN
    # the router: "softmax" or "sigmoid" probabilities over all experts, the chosen by the
    # largest; or "softmax_chosen": the largest logits chosen, a softmax over just those
    expert_gating: str = "softmax"
    expert_weights_norm: bool = False  # the chosen experts' weights renormalised to sum to 1
    expert_weights_scale: float = 1.0
    # YaRN (``_yarn``): ext_factor 0 is plain rope; positions are scaled by ``rope_scale``
    rope_ext_factor: float = 0.0
    rope_attn_factor: float = 1.0
    rope_ctx_orig: int = 0  # the context YaRN extends (0: the training context)
    rope_beta_fast: float = 32.0  # where YaRN's blend between extrapolation and interpolation
    rope_beta_slow: float = 1.0  # begins and ends, in rotations over the original context
    rope_scale_local: float = 1.0  # ``rope_scale`` of the sliding-window layers
    # experts chosen within the ``n_group_used`` best of ``n_expert_groups`` groups (deepseek-v3)
    n_expert_groups: int = 0
    n_group_used: int = 0
    n_expert_shared: int = 0  # experts every row goes through, as one FFN beside the chosen
    n_layer_dense_lead: int = 0  # leading layers with a dense FFN in a mixture of experts
    # Multi-head latent attention (deepseek2): a position's keys and values are one latent row
    # of ``kv_lora_rank`` plus a rope key shared by every head, cached as such (``head_dim`` is
    # then kv_lora_rank + rope_dim, ``head_dim_v`` kv_lora_rank, one key/value head); queries
    # reach the latent through ``attn_k_b``, the attention's output leaves it through
    # ``attn_v_b``. ``head_dim_mla``/``head_dim_v_mla`` are the per-head widths of the
    # queries and of the values so decompressed.
    kv_lora_rank: int = 0
    q_lora_rank: int = 0  # queries through a low-rank pair (attn_q_a, attn_q_b); 0: attn_q
    head_dim_mla: int = 0
    head_dim_v_mla: int = 0
    # LongRoPE (phi3): two sets of rope frequency factors in the file, the long one used by a
    # sequence whose context passes ``rope_ctx_orig`` (``graph_model.GraphTransformer.factors``)
    long_rope: bool = False
    plain_rope_local: bool = False  # sliding-window layers rope without YaRN (olmo3)
    # Block tensors an architecture names otherwise: (field of ``layer_tensors.LAYER_TENSORS``,
    # name in the file after ``blk.N.``)
    renamed: tuple[tuple[str, str], ...] = ()
    # gemma4: the sliding-window layers' own head width (keys and values alike), key/value heads
    # and rotated width; 0 where they are the global layers' (``layer``)
    head_dim_swa: int = 0
    n_head_kv_swa: int = 0
    rope_dim_swa: int = 0
    value_norm: bool = False  # values RMS-normed, without a weight, before the cache (gemma4)
    values_from_keys: bool = False  # a block without ``attn_v`` attends over its keys' projection

    def layer(self, index: int) -> HParams:
        """The hyperparameters of block ``index``: a sliding-window block's own head widths and
        key/value heads where the architecture gives them (gemma4), these otherwise."""
        if self.swa_layers[index] and (
            self.head_dim_swa or self.n_head_kv_swa or self.rope_dim_swa
        ):
            return self._swa_layer
        return self

    @cached_property
    def _swa_layer(self) -> HParams:
        head_dim = self.head_dim_swa or self.head_dim
        return replace(
            self,
            head_dim=head_dim,
            head_dim_v=self.head_dim_swa or self.head_dim_v,
            n_head_kv=self.n_head_kv_swa or self.n_head_kv,
            rope_dim=self.rope_dim_swa or self.rope_dim,
            head_dim_swa=0,
            n_head_kv_swa=0,
            rope_dim_swa=0,
        )

    @property
    def layers(self) -> list[HParams]:
        """``layer(i)`` of every block."""
        return [self.layer(i) for i in range(self.n_layer)]

    @property
    def n_group(self) -> int:
        return self.n_head // self.n_head_kv

    @property
    def q_dim(self) -> int:
        return self.n_head * self.head_dim

    @property
    def q_proj_dim(self) -> int:
        """Width of the queries a block's projection makes (before any absorption)."""
        return self.n_head * (self.head_dim_mla or self.head_dim)

    @property
    def o_dim(self) -> int:
        """Width of the attention's output, the input of ``attn_output``."""
        return self.n_head * (self.head_dim_v_mla or self.head_dim_v)

    @property
    def n_ff_shexp(self) -> int:
        return self.n_ff_exp * self.n_expert_shared

    def dense_layer(self, index: int) -> bool:
        """Whether layer ``index`` has a dense FFN rather than experts."""
        return not self.n_expert or index < self.n_layer_dense_lead

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

    def int(
        self, key: str, default: int | None = None, *, low: int = 1, high: int = MAX_WIDTH
    ) -> int:
        value = self.raw(key, default)
        if isinstance(value, (list, tuple)):  # per-layer arrays: we support uniform ones
            if not value or any(v != value[0] for v in value):
                raise InvalidModelFile(
                    f"{self.arch}.{key}: per-layer values differ, which is not supported"
                )
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
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise InvalidModelFile(f"{self.arch}.{key} = {value!r} is not a finite number")
        return float(value)

    def positive_float(self, key: str, default: float | None = None) -> float:
        """A float that divides or scales (a norm's epsilon): zero or less cannot run."""
        value = self.float(key, default)
        if value <= 0:
            raise InvalidModelFile(f"{self.arch}.{key} = {value!r} must be positive")
        return value


POOLING = {0: "none", 1: "mean", 2: "cls", 3: "last"}
EXPERT_GATING = {1: "softmax", 2: "sigmoid"}  # llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE

# Groups of layer tensors (fields of ``layer_tensors.LAYER_TENSORS``) an architecture requires.
# (q, k and v are required as three matrices or one: ``layer_tensors.required_layer_tensors``)
ATTENTION = frozenset({"attn_norm", "wo"})
GATED_FFN = frozenset({"ffn_norm", "gate", "up", "down"})
MOE_FFN = frozenset({"ffn_norm", "gate_inp", "gate_exps", "up_exps", "down_exps"})


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
        raise InvalidModelFile(
            f"{m.arch}: {n_head} query heads cannot share {n_head_kv} key/value heads evenly"
        )
    if m.raw("attention.key_length") is None and n_embd % n_head:
        raise InvalidModelFile(f"{m.arch}: width {n_embd} does not split into {n_head} heads")
    head_dim = m.int("attention.key_length", n_embd // n_head)
    head_dim_v = m.int("attention.value_length", head_dim)
    rope_dim = m.int("rope.dimension_count", head_dim)
    if rope_dim > head_dim or rope_dim % 2:
        raise InvalidModelFile(
            f"{m.arch}.rope.dimension_count = {rope_dim} does not fit heads of width {head_dim}"
        )
    scaling = m.raw("rope.scaling.type", "none")
    factor = m.float("rope.scaling.factor", 1.0)
    if scaling not in ("none", "linear", "yarn") and factor != 1.0:
        raise InvalidModelFile(f"{m.arch}: rope scaling {scaling!r} is not supported")
    if factor <= 0:
        raise InvalidModelFile(f"{m.arch}.rope.scaling.factor must be positive")
    softcap = m.raw("final_logit_softcapping")
    pooling = m.raw("pooling_type", 0)
    n_layer = m.int("block_count", high=MAX_LAYERS)
    n_ctx_train = m.int("context_length", high=MAX_CONTEXT)
    n_expert = m.int("expert_count", 0, low=0, high=MAX_EXPERTS)
    n_expert_used = m.int("expert_used_count", 0, low=0, high=MAX_EXPERTS)
    if n_expert and not 1 <= n_expert_used <= n_expert:
        raise InvalidModelFile(f"{m.arch}: {n_expert_used} experts used of {n_expert} cannot run")
    n_ff = m.int("feed_forward_length", 0 if n_expert else None, low=0 if n_expert else 1)
    gating = m.raw("expert_gating_func", 1)
    if gating not in EXPERT_GATING:
        raise InvalidModelFile(f"{m.arch}.expert_gating_func = {gating!r} is not supported")
    groups = m.int("expert_group_count", 0, low=0, high=MAX_EXPERTS) if n_expert else 0
    groups_used = m.int("expert_group_used_count", 0, low=0, high=MAX_EXPERTS) if groups else 0
    # a group is scored by its best two experts, as llama.cpp does
    if groups > 1 and (
        n_expert % groups or n_expert // groups < 2 or not 1 <= groups_used <= groups
    ):
        raise InvalidModelFile(
            f"{m.arch}: {n_expert} experts in {groups} groups, {groups_used} used, cannot run"
        )
    params = dict(
        arch=m.arch,
        n_layer=n_layer,
        n_embd=n_embd,
        n_ff=n_ff,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim=head_dim,
        head_dim_v=head_dim_v,
        n_ctx_train=n_ctx_train,
        norm_eps=m.positive_float("attention.layer_norm_rms_epsilon", 1e-5),
        rope_dim=rope_dim,
        rope_base=m.positive_float("rope.freq_base", 10000.0),
        rope_scale=1.0 / factor if scaling in ("linear", "yarn") else 1.0,
        # rope's magnitude factor and the context it was trained at, read for every
        # architecture as llama.cpp does (YaRN derives both its own way)
        rope_attn_factor=m.float("rope.scaling.attn_factor", 1.0),
        rope_ctx_orig=m.int("rope.scaling.original_context_length", n_ctx_train, high=MAX_CONTEXT),
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
        required=ATTENTION | (MOE_FFN if n_expert else GATED_FFN),
        n_expert=n_expert,
        n_expert_used=n_expert_used if n_expert else 0,
        n_ff_exp=m.int("expert_feed_forward_length", n_ff or None) if n_expert else 0,
        expert_gating=EXPERT_GATING[gating],
        # llama.cpp renormalises the chosen weights of mixtral and qwen3moe (their routers are
        # trained so: the converters write no key for it)
        expert_weights_norm=bool(m.raw("expert_weights_norm", True)),
        expert_weights_scale=m.float("expert_weights_scale", 1.0) or 1.0,
        n_expert_groups=groups if groups > 1 else 0,
        n_group_used=groups_used if groups > 1 else 0,
    )
    return {**params, **_yarn(m, scaling, factor, n_ctx_train)}


def _yarn(m: Metadata, scaling: str, factor: float, n_ctx_train: int) -> dict:
    """YaRN's rope parameters as llama.cpp derives them: every frequency blended between
    interpolated and extrapolated (ext_factor 1) around the original context, and rope's own
    magnitude correction cancelled unless the file's multipliers ask for one."""
    if scaling != "yarn":
        return {}

    def mscale(multiplier: float) -> float:
        return 1.0 if factor <= 1.0 else 0.1 * multiplier * math.log(factor) + 1.0

    log_mul = m.float("rope.scaling.yarn_log_multiplier", 0.0)
    attn_factor = mscale(1.0) / mscale(log_mul) if log_mul else mscale(1.0)
    attn_factor /= 1.0 + 0.1 * math.log(
        factor
    )  # rope multiplies by this itself where ext_factor is set
    return dict(
        rope_ext_factor=1.0,
        rope_attn_factor=attn_factor * m.float("rope.scaling.attn_factor", 1.0),
        rope_ctx_orig=m.int("rope.scaling.original_context_length", n_ctx_train, high=MAX_CONTEXT),
        rope_beta_fast=m.float("rope.scaling.yarn_beta_fast", 32.0),
        rope_beta_slow=m.float("rope.scaling.yarn_beta_slow", 1.0),
    )


def llama(m: Metadata) -> HParams:
    """llama, and mixtral (llama with ``expert_count``): llama's converter permutes q/k rows so
    that rope rotates adjacent pairs."""
    return HParams(**{**_common(m), "interleaved_rope": True})


def neox(m: Metadata) -> HParams:
    """qwen2/qwen3/qwen3moe: llama's block with rope over the two halves of each head (qwen3 adds
    per-head q/k norms, qwen3moe experts: both read from the file)."""
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
        required=params["required"] | {"post_attn_norm", "post_ffn_norm"},
    )
    return HParams(**params)


def gemma2(m: Metadata) -> HParams:
    """gemma3's block without q/k norms: attention scores soft-capped, every other layer (the
    even ones) through a sliding window with the same rope base."""
    params = _common(m)
    n_layer = params["n_layer"]
    # The 27B model (46 layers) scales queries by the model width per head, not the head width.
    query_width = params["n_embd"] // params["n_head"] if n_layer == 46 else params["head_dim"]
    attn_softcap = m.raw("attn_logit_softcapping")
    params.update(
        embed_scale=math.sqrt(params["n_embd"]),
        activation="gelu_tanh",
        attn_scale=1.0 / math.sqrt(query_width),
        scale_queries=True,
        sliding_window=m.int("attention.sliding_window", GEMMA2_WINDOW, high=MAX_CONTEXT),
        swa_layers=tuple(i % 2 == 0 for i in range(n_layer)),
        rope_base_local=m.positive_float("rope.freq_base_swa", params["rope_base"]),
        rope_scale_local=params["rope_scale"],
        attn_softcap=m.float("attn_logit_softcapping") if attn_softcap else None,
        required=params["required"] | {"post_attn_norm", "post_ffn_norm"},
    )
    return HParams(**params)


def gemma4(m: Metadata) -> HParams:
    """gemma3's block with the file's window pattern; the sliding-window layers with heads of
    their own width and count (``key_length_swa``, an array of ``head_count_kv``) and their own
    rope base, the global layers with rope frequency factors (``rope_freqs``: the proportional
    rope that rotates a quarter of each head); values RMS-normed without a weight, and taken
    from the keys' projection in a block without ``attn_v``; scores unscaled; each block's
    output multiplied by its ``layer_output_scale`` where the file has one.

    Refused, by name: per-layer embeddings (gemma4's E2B and E4B), layers reusing another
    layer's keys and values, and experts (26B-A4B)."""
    for key, what in (
        ("embedding_length_per_layer_input", "per-layer embeddings"),
        ("attention.shared_kv_layers", "layers that share another layer's keys and values"),
        ("expert_count", "experts"),
    ):
        if m.raw(key):
            raise InvalidModelFile(f"{m.arch}: {what} ({m.arch}.{key}) are not supported")
    n_layer = m.int("block_count", high=MAX_LAYERS)
    if not isinstance(m.raw("attention.sliding_window_pattern"), (list, tuple)):
        raise InvalidModelFile(f"model metadata lacks {m.arch}.attention.sliding_window_pattern")
    swa_layers = _swa_pattern(m, n_layer, 0)
    kv_global, kv_swa = _kv_heads(m, swa_layers)
    key = f"{m.arch}.attention.head_count_kv"
    params = _common(Metadata({**m.metadata, key: kv_global}, m.arch))
    head_dim_swa = m.int("attention.key_length_swa", params["head_dim"])
    if params["head_dim_v"] != params["head_dim"] or (
        m.int("attention.value_length_swa", head_dim_swa) != head_dim_swa
    ):
        raise InvalidModelFile(f"{m.arch}: keys and values of different widths cannot run")
    rope_dim_swa = m.int("rope.dimension_count_swa", params["rope_dim"])
    if rope_dim_swa > head_dim_swa or rope_dim_swa % 2:
        raise InvalidModelFile(
            f"{m.arch}.rope.dimension_count_swa = {rope_dim_swa} does not fit heads of width "
            f"{head_dim_swa}"
        )
    if params["n_head"] % kv_swa:
        raise InvalidModelFile(
            f"{m.arch}: {params['n_head']} query heads cannot share {kv_swa} key/value heads evenly"
        )
    params.update(
        embed_scale=math.sqrt(params["n_embd"]),
        activation="gelu_tanh",
        attn_scale=1.0,
        sliding_window=m.int("attention.sliding_window", high=MAX_CONTEXT),
        swa_layers=swa_layers,
        rope_base_local=m.positive_float("rope.freq_base_swa", params["rope_base"]),
        rope_scale_local=params["rope_scale"],
        head_dim_swa=head_dim_swa,
        n_head_kv_swa=kv_swa,
        rope_dim_swa=rope_dim_swa,
        value_norm=True,
        values_from_keys=True,
        required=params["required"] | {"post_attn_norm", "post_ffn_norm", "q_norm", "k_norm"},
    )
    return HParams(**params)


def _kv_heads(m: Metadata, swa_layers: tuple[bool, ...]) -> tuple[int, int]:
    """(global, sliding-window) layers' key/value heads: ``head_count_kv`` as one number, or a
    number per layer that is the same for every layer of each kind."""
    value = m.raw("attention.head_count_kv", m.raw("attention.head_count"))
    if not isinstance(value, (list, tuple)):
        return value, value
    if len(value) != len(swa_layers):
        raise InvalidModelFile(f"{m.arch}.attention.head_count_kv is not one count per layer")
    kinds = [{v for v, local in zip(value, swa_layers) if local == kind} for kind in (False, True)]
    if any(len(counts) > 1 for counts in kinds):
        raise InvalidModelFile(
            f"{m.arch}.attention.head_count_kv: per-layer values differ within a kind of layer, "
            "which is not supported"
        )
    global_, local = (next(iter(c)) if c else None for c in kinds)
    global_ = global_ if global_ is not None else local
    local = local if local is not None else global_
    for count in (global_, local):
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_HEADS:
            raise InvalidModelFile(f"{m.arch}.attention.head_count_kv = {value!r} is out of range")
    return global_, local


def granite(m: Metadata) -> HParams:
    """llama with multipliers on the embeddings, each block's output, the attention scores and
    the logits."""
    params = _common(m)
    attention_scale = m.float("attention.scale", 0.0)
    params.update(
        interleaved_rope=True,
        embed_scale=m.float("embedding_scale", 1.0) or 1.0,
        residual_scale=m.float("residual_scale", 1.0) or 1.0,
        attn_scale=attention_scale or params["attn_scale"],
        logit_scale=m.positive_float("logit_scale"),
    )
    return HParams(**params)


def olmo2(m: Metadata) -> HParams:
    """No norms before attention or the FFN: norms after each, and q/k norms over all heads.
    olmo3 (the same architecture with ``attention.sliding_window``): windowed layers as the
    file's pattern says (three of every four without one), roped plainly, without the YaRN
    scaling of the global layers."""
    params = _common(m)
    params.update(
        qk_norm_whole=True,
        required=(params["required"] - {"attn_norm", "ffn_norm"})
        | {"q_norm", "k_norm", "post_attn_norm", "post_ffn_norm"},
    )
    window = m.int("attention.sliding_window", 0, low=0, high=MAX_CONTEXT)
    if window:
        params.update(
            sliding_window=window,
            swa_layers=_swa_pattern(m, params["n_layer"], OLMO3_SWA_PATTERN),
            # the global base: llama.cpp's olmo2 graph reads no rope.freq_base_swa
            rope_base_local=params["rope_base"],
            plain_rope_local=True,
        )
    return HParams(**params)


def _swa_pattern(m: Metadata, n_layer: int, default: int) -> tuple[bool, ...]:
    """Which layers are windowed, as llama.cpp reads ``attention.sliding_window_pattern``: a
    flag per layer, or a period ``n`` whose last layer of each ``n`` is global (0: all windowed)."""
    pattern = m.raw("attention.sliding_window_pattern", default)
    if isinstance(pattern, (list, tuple)):
        if len(pattern) != n_layer or not all(isinstance(x, bool) for x in pattern):
            raise InvalidModelFile(
                f"{m.arch}.attention.sliding_window_pattern is not a flag for each of {n_layer} layers"
            )
        return tuple(pattern)
    period = m.int("attention.sliding_window_pattern", default, low=0, high=MAX_LAYERS)
    return tuple(period == 0 or i % period < period - 1 for i in range(n_layer))


def starcoder2(m: Metadata) -> HParams:
    """LayerNorm with biases, a plain GELU FFN (no gate), biased projections."""
    params = _common(m)
    params.update(
        norm="layer",
        norm_eps=m.positive_float("attention.layer_norm_epsilon", 1e-5),
        activation="gelu_tanh",
        required=(params["required"] - {"gate"}) | {"attn_norm_b", "ffn_norm_b"},
    )
    return HParams(**params)


def phi3(m: Metadata) -> HParams:
    """q, k and v in one matrix; the gate and up rows in one (``ffn_up``); queries scaled. The
    128k models (phi3.5, phi4-mini) carry LongRoPE's two factor sets, and the magnitude factor
    rope applies with either (``rope.scaling.attn_factor``). The converter's sliding window is
    not used: llama.cpp runs phi3 with full attention."""
    params = _common(m)
    params.update(
        long_rope=True,
        scale_queries=True,
        fused_gate_up=True,
        required=frozenset({"attn_norm", "wo", "ffn_norm", "up", "down"}),
    )
    return HParams(**params)


def gpt_oss(m: Metadata) -> HParams:
    """gpt-oss: biased attention with a learned sink per head, every other layer (the even ones)
    through a sliding window, YaRN rope; experts chosen by the router's largest logits and
    weighted by a softmax over just those, with biases and the clamped SwiGLU. Its FFN norm is
    named ``post_attention_norm`` in the file."""
    params = _common(m)
    n_layer = params["n_layer"]
    if not params["n_expert"]:
        raise InvalidModelFile(f"{m.arch}: expert_count is missing")
    params.update(
        sliding_window=m.int("attention.sliding_window", high=MAX_CONTEXT),
        swa_layers=tuple(i % 2 == 0 for i in range(n_layer)),
        rope_base_local=m.positive_float("rope.freq_base_swa", params["rope_base"]),
        rope_scale_local=params["rope_scale"],
        activation="swiglu_oai",
        expert_gating="softmax_chosen",
        expert_weights_norm=False,
        renamed=(("ffn_norm", "post_attention_norm.weight"),),
        required=params["required"]
        | {
            "sinks",
            "bq",
            "bk",
            "bv",
            "bo",
            "gate_inp_b",
            "gate_exps_b",
            "up_exps_b",
            "down_exps_b",
        },
    )
    return HParams(**params)


def deepseek2(m: Metadata) -> HParams:
    """deepseek2 (deepseek-v2, -v2-lite, -coder-v2, -v3): multi-head latent attention with the
    compressed cache (``HParams.kv_lora_rank``), queries through a low-rank pair or one matrix
    (the lite models), leading dense layers, then shared experts beside routed ones (softmax or
    sigmoid router, a selection bias, groups), YaRN with its magnitude folded into the scores.

    Files written by llama.cpp's current converter give the cache's widths in
    ``key_length``/``value_length`` (and the per-head ones in ``key_length_mla``/
    ``value_length_mla``) with ``attn_k_b``/``attn_v_b``; older ones (Ollama's library) give
    the per-head widths there and one ``attn_kv_b``, from which the loader derives the two."""
    params = _common(m)
    if m.raw("nextn_predict_layers"):
        raise InvalidModelFile(f"{m.arch}: multi-token-prediction layers are not supported")
    if m.raw("attention.temperature_scale"):
        raise InvalidModelFile(f"{m.arch}: attention temperature scaling is not supported")
    n_layer, rope_dim = params["n_layer"], params["rope_dim"]
    rank = m.int("attention.kv_lora_rank")
    if m.raw("attention.key_length_mla") is not None:
        head_dim_mla = m.int("attention.key_length_mla")
        head_dim_v_mla = m.int("attention.value_length_mla")
        if (
            params["head_dim"] != rank + rope_dim
            or params["head_dim_v"] != rank
            or params["n_head_kv"] != 1
        ):
            raise InvalidModelFile(
                f"{m.arch}: key_length {params['head_dim']}, value_length {params['head_dim_v']} "
                f"and {params['n_head_kv']} key/value heads are not a latent of {rank} with "
                f"{rope_dim} rope dimensions"
            )
    else:
        head_dim_mla, head_dim_v_mla = params["head_dim"], params["head_dim_v"]
    if head_dim_mla <= rope_dim:
        raise InvalidModelFile(f"{m.arch}: heads of {head_dim_mla} leave no room beside rope")
    rope_attn_factor, attn_scale = _latent_scales(
        params["rope_scale"],
        m.float("rope.scaling.yarn_log_multiplier", 0.0),
        m.float("rope.scaling.attn_factor", 1.0),
        bool(params.get("rope_ext_factor")),
        head_dim_mla,
    )
    gating = m.raw("expert_gating_func")
    if gating is None:  # files before the key: deepseek-v2's softmax (glm-4.7-flash: sigmoid)
        vocab = m.raw("vocab_size") or len(m.metadata.get("tokenizer.ggml.tokens") or ())
        gating = 2 if n_layer in (47, 48) and vocab == 154880 else 1
    params.update(
        interleaved_rope=True,
        n_head_kv=1,
        head_dim=rank + rope_dim,
        head_dim_v=rank,
        kv_lora_rank=rank,
        q_lora_rank=m.int("attention.q_lora_rank", 0, low=0),
        head_dim_mla=head_dim_mla,
        head_dim_v_mla=head_dim_v_mla,
        rope_attn_factor=rope_attn_factor,
        attn_scale=attn_scale,
        n_layer_dense_lead=m.int("leading_dense_block_count", 0, low=0, high=n_layer),
        n_expert_shared=m.int("expert_shared_count", 0, low=0, high=MAX_EXPERTS),
        expert_gating=EXPERT_GATING[gating],
        expert_weights_norm=bool(m.raw("expert_weights_norm", False)),
    )
    params["required"] |= {"kv_a_mqa", "kv_a_norm"}
    params["required"] |= {"q_a", "q_a_norm", "q_b"} if params["q_lora_rank"] else {"wq"}
    if params["n_expert_shared"]:
        params["required"] |= {"gate_shexp", "up_shexp", "down_shexp"}
    return HParams(**params)


def _latent_scales(
    rope_scale: float, log_mul: float, attn_factor: float, yarn: bool, head_dim_mla: int
) -> tuple[float, float]:
    """deepseek2's rope magnitude and attention scale, computed as llama.cpp computes them: with
    the file's multiplier (deepseek's mscale_all_dim, which is also its mscale) YaRN's magnitude
    correction of rope is cancelled, and the magnitude goes to the attention scores instead,
    squared. In float32, one operation at a time in llama.cpp's order: the scale is an operand of
    every score, and a float64 one a few units of the last place away (0.11472139 against
    0.11472137 for deepseek-v2-lite's YaRN) moves a prompt's attention by 1e-6, which the next
    products' 8-bit rounding of their inputs widens to 0.1 in the logits."""
    f, one, tenth = np.float32, np.float32(1), np.float32(0.1)

    def log(x):  # logf: the float64 logarithm rounded, as glibc's logf gives it
        return f(math.log(float(x)))

    freq_scale = one / f(1.0 / rope_scale) if rope_scale != 1.0 else one
    factor = one / freq_scale
    log_mul = f(log_mul) / tenth  # the converter's 0.1 undone

    def mscale(multiplier):
        return one if factor <= one else f(tenth * multiplier) * log(factor) + one

    rope_factor = one
    if yarn:
        # llama.cpp's ratio of mscale to mscale_all_dim: 1 for deepseek2, whose are equal
        rope_factor = one if log_mul else mscale(one)
        rope_factor = rope_factor * (one / (one + tenth * log(factor)))
    rope_factor = rope_factor * f(attn_factor)
    growth = log(one / freq_scale)
    magnitude = rope_factor * (one + tenth * growth)
    magnitude = magnitude * (one + f(tenth * log_mul) * growth)
    scale = one * magnitude * magnitude / f(math.sqrt(head_dim_mla))
    return float(rope_factor), float(scale)


GEMMA2_WINDOW = 4096  # gemma2's window when the file does not give one
OLMO3_SWA_PATTERN = 4  # olmo3: every fourth layer global when the file gives no pattern

ARCHITECTURES = {
    "llama": llama,
    "qwen2": neox,
    "qwen3": neox,
    "qwen3moe": neox,
    "gemma3": gemma3,
    "gemma2": gemma2,
    "gemma4": gemma4,
    "granite": granite,
    "olmo2": olmo2,
    "starcoder2": starcoder2,
    "phi3": phi3,
    "gpt-oss": gpt_oss,
    "deepseek2": deepseek2,
}
