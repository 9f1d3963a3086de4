"""The decoder-only transformer as a ggml graph: one graph per step, built as llama.cpp builds it.

The rows of every sequence in a step are concatenated, so each projection is one product over
the quantized weights for the whole step: a batch of decoding sequences reads each weight block
once. Keys and values go to each sequence's own cache, and each sequence attends to its own
cache with ggml's flash attention (scores, online softmax and the value sum in one pass, with
no temporaries the size of the context).

One block serves every architecture of ``hparams.ARCHITECTURES``: the llama family (pre-norm,
SwiGLU; llama rotates adjacent pairs, qwen2/3 the two halves of a head), gemma2/3/4 (pre- and
post-norms, GELU gate, sliding-window layers, soft caps; gemma4's two kinds of layer with heads
of their own widths, ``HParams.layer``), olmo2 (post-norms only, q/k norms over
all heads), starcoder2 (LayerNorm with biases, plain GELU FFN), phi3 (fused q/k/v and gate/up),
granite (multipliers), gpt-oss (attention sinks, YaRN), and the mixtures of experts (mixtral,
qwen3moe, gpt-oss, deepseek2: a router picks ``n_expert_used`` FFNs per row; ``mul_mat_id``
multiplies each row by its chosen experts' blocks only, so decoding reads those experts and no
others). A block with ``attn_kv_a_mqa`` attends through its latent (``graph_latent``,
deepseek2). The differences are hyperparameters and the tensors a file has: the graph has no
per-architecture branch.
"""

from __future__ import annotations

import math

from dataclasses import dataclass

import numpy as np

from ollamakit.images import ImageToken
from ollamakit.lib.ggml import lib as L

from .graph_weights import ModelTensors
from .graph_latent import latent_attention
from .hparams import HParams

F32_BYTES = 4
SWIGLU_OAI_ALPHA, SWIGLU_OAI_LIMIT = 1.702, 7.0  # gpt-oss's activation, as llama.cpp fixes them
MIN_WEIGHT_SUM = (
    6.103515625e-5  # the experts' weights' sum kept above zero (float16's smallest normal)
)
CTX_PAD = 256  # llama.cpp rounds a sequence's context up to this many cells


@dataclass
class GraphSegment:
    """``tokens`` of one sequence, appended to ``cache`` from position ``start``; rows
    [row, row + len(tokens)) of the step."""

    cache: object
    tokens: list[int]
    start: int
    row: int

    @property
    def stop(self) -> int:
        return self.start + len(self.tokens)


def hadamard(n: int) -> np.ndarray:
    """The orthonormal Walsh-Hadamard matrix of order ``n`` (a power of two): symmetric, and
    its own inverse."""
    matrix = np.ones((1, 1), np.float32)
    while matrix.shape[0] < n:
        matrix = np.block([[matrix, matrix], [matrix, -matrix]])
    return (matrix / np.sqrt(np.float32(n))).astype(np.float32)


def rotation_sizes(hp: HParams, quantized_cache: bool) -> tuple[int | None, int | None]:
    """The Walsh-Hadamard rotations (key order, value order) a quantized cache gets, or None.

    Quantizing a key or value row to 8 or 4 bits loses most where a few dimensions dominate
    it; a Hadamard rotation spreads every dimension over all of them first, so the block scales
    fit better. Attention is unchanged by rotating queries and keys alike (an orthonormal
    rotation keeps dot products), and values are rotated back after the weighted sum. As
    llama.cpp does it: keys by the largest power of two (64 or more) dividing the head width,
    values by 64, for heads whose width 64 divides."""
    if not quantized_cache:
        return None, None
    if hp.kv_lora_rank:  # llama.cpp rotates no latent-attention row (its cache of keys only)
        return None, None
    rot_k = None
    if hp.head_dim % 64 == 0:
        rot_k = 64
        while hp.head_dim % (2 * rot_k) == 0:
            rot_k *= 2
    rot_v = 64 if hp.head_dim_v % 64 == 0 else None
    return rot_k, rot_v


class GraphTransformer:
    def __init__(
        self,
        hp: HParams,
        tensors: ModelTensors,
        lib=None,
        quantized_cache: bool = False,
        dense_prefill: bool = False,
    ):
        self.hp = hp
        self.t = tensors
        self.lib = lib
        self.rope_mode = L.ROPE_NORMAL if hp.interleaved_rope else L.ROPE_NEOX
        # each layer's (gemma4's sliding-window heads are narrower than its global ones)
        self.rot_k, self.rot_v = (
            list(sizes)
            for sizes in zip(*(rotation_sizes(layer, quantized_cache) for layer in hp.layers))
        )
        self.rotations = self._rotations() if any(self.rot_k + self.rot_v) else {}
        self.lora: dict[int, tuple[int, int, float]] = {}  # base weight -> (A, B, scale)
        self.dense = dense_prefill_weights(tensors) if dense_prefill else frozenset()
        self.dense_width = max((L.tensor(w).ne[1] for w in self.dense), default=0)
        self.kernels = getattr(lib, "kernels", None)  # ollamakit's own products, where built

    def _rotations(self) -> dict[int, int]:
        """A ggml tensor of each Hadamard matrix in use, by order (kept for the model's life)."""
        from ollamakit.lib.ggml.graph import Tensors, array

        orders = sorted({n for n in self.rot_k + self.rot_v if n})
        self._rotation_tensors = Tensors(self.lib, len(orders))
        made = {n: self._rotation_tensors.new(L.TYPE_F32, n, n) for n in orders}
        self._rotation_tensors.allocate()
        for n, tensor in made.items():
            array(tensor, L.TYPE_F32, (n, n))[...] = hadamard(n)
        return made

    def rotate(self, step, x, order: int):
        """x (any shape whose element count ``order`` divides) with each run of ``order``
        consecutive values multiplied by the Hadamard matrix; shaped as x was."""
        struct = L.tensor(x)
        shape = tuple(struct.ne)
        flat = step.op("cont", x) if not _contiguous(struct) else x
        flat = step.op("reshape_2d", flat, order, int(np.prod(shape)) // order)
        out = step.op("mul_mat", self.rotations[order], flat)
        if step.lib.ggml_mul_mat_set_hint is not None:  # ggml then runs the fast transform
            step.lib.ggml_mul_mat_set_hint(out, L.HINT_SRC0_IS_HADAMARD)
        return step.op("reshape_4d", out, *shape)

    def nodes(self, segments: int) -> int:
        """An upper bound on the graph nodes of a step with this many segments."""
        per_layer = (
            96
            + 16 * segments
            + (6 * 7 if self.lora or self.dense else 0)  # adapters, dense copies
            + (8 if self.kernels else 0)  # the activations' rounded copies, one a product
        )
        per_layer += (
            48 + 2 * self.hp.n_expert_used if self.hp.n_expert else 0
        )  # router, groups, experts, their sum, shared experts
        per_layer += 32 + 8 * segments if self.hp.kv_lora_rank else 0  # latent attention
        per_layer += 8 * segments if self.t.rope_long is not None else 0  # rope per segment
        return 128 + self.hp.n_layer * per_layer

    # -- a step --------------------------------------------------------------------------------

    @staticmethod
    def spans(segment: GraphSegment) -> tuple[int, ...]:
        """The cells a segment's rows attend over in its full layers and in its sliding-window
        rings (``GraphKVCache.span``): a decode graph is reused while they stay the same."""
        return tuple(segment.cache.span(local, segment.stop) for local in (False, True))

    def inputs(self, segments: list[GraphSegment], hidden: bool = False) -> dict[str, np.ndarray]:
        """The values a step's graph reads, by name: token ids, positions, where each segment's
        keys go, and each segment's masks (global layers, and sliding-window layers if any)."""
        rows = sum(len(s.tokens) for s in segments)
        values = {
            "ids": np.concatenate([np.asarray(s.tokens, np.int32) for s in segments]),
            "positions": np.concatenate(
                [np.arange(s.start, s.stop, dtype=np.int32) for s in segments]
            ),
        }
        if not hidden and rows != len(segments):
            values["out_ids"] = np.array([s.row + len(s.tokens) - 1 for s in segments], np.int32)
        if self.dense and rows >= DENSE_MIN_ROWS:
            values["dense_rows"] = np.arange(self.dense_width, dtype=np.int32)
        images = [
            (s.row + j, t.embedding)
            for s in segments
            for j, t in enumerate(s.tokens)
            if isinstance(t, ImageToken)
        ]
        if images:  # rows whose embedding an image gives, not the token table
            values["image_rows"] = np.array([row for row, _ in images], np.int64)
            values["image_embd"] = np.stack([embedding for _, embedding in images]).astype(
                np.float32
            )
        for i, s in enumerate(segments):
            s.cache.reserve(s.stop)
            for local in set(self.hp.swa_layers):
                values[f"write{i}.{int(local)}"] = s.cache.write_cells(local, s.start, s.stop)
                values[f"mask{i}.{int(local)}"] = self._mask(s, local)
        return values

    def build(
        self,
        step,
        segments: list[GraphSegment],
        values: dict[str, np.ndarray],
        hidden: bool = False,
    ) -> int:
        """The step's graph over input tensors named as in ``inputs``; returns its output:
        logits (vocab, one row per segment: the segment's last row), or with ``hidden`` every
        row's normed final state (n_embd, rows)."""
        hp, t = self.hp, self.t
        tensors = {
            name: step.input(array, L.TYPE_I64 if name.startswith("write") else None, name)
            for name, array in values.items()
        }
        x = step.op("get_rows", t.token_embd, tensors["ids"])
        if hp.embed_scale != 1.0:
            x = step.op("scale", x, hp.embed_scale)
        if "image_rows" in tensors:  # image rows as they come: not scaled
            x = step.op("set_rows", x, tensors["image_embd"], tensors["image_rows"])
        last = len(t.layers) - 1
        for index, layer in enumerate(t.layers):
            out_ids = tensors.get("out_ids") if index == last else None
            x = self._layer(step, index, layer, x, tensors, segments, out_ids)
        x = self.norm(step, x, t.output_norm, t.output_norm_b)
        if hidden:
            return step.output(x)
        logits = self.mm(step, t.output, x, tensors)
        if t.output_b is not None:
            logits = step.op("add", logits, t.output_b)
        if hp.logit_scale != 1.0:
            logits = step.op("scale", logits, 1.0 / hp.logit_scale)
        if hp.logit_softcap:
            logits = step.op("scale", logits, 1.0 / hp.logit_softcap)
            logits = step.op("tanh", logits)
            logits = step.op("scale", logits, hp.logit_softcap)
        return step.output(logits)

    def _layer(self, step, index, layer, x, inputs, segments, out_ids):
        hp = self.hp
        residual = x
        cur = self.norm(step, x, layer.attn_norm, layer.attn_norm_b)
        if layer.kv_a_mqa is not None:
            attn = latent_attention(self, step, index, layer, cur, inputs, segments)
        else:
            attn = self._attention(step, index, layer, cur, inputs, segments)
        if out_ids is not None:  # the last layer carries on only the rows read out
            attn = step.op("get_rows", attn, out_ids)
            residual = step.op("get_rows", residual, out_ids)
            inputs = {**inputs, "dense_rows": None}  # a row or a few: the blocks' own product
        cur = self._project(step, layer.wo, layer.bo, attn, inputs)
        if layer.post_attn_norm is not None:
            cur = self.norm(step, cur, layer.post_attn_norm)
        if hp.residual_scale != 1.0:
            cur = step.op("scale", cur, hp.residual_scale)
        ffn_in = step.op("add", cur, residual)

        cur = self.norm(step, ffn_in, layer.ffn_norm, layer.ffn_norm_b)
        if layer.gate_inp is not None:
            routed = self._experts(step, layer, cur)
            if layer.up_shexp is not None:  # the experts every row goes through (deepseek2)
                shared = self._gated(
                    step, layer.up_shexp, layer.gate_shexp, layer.down_shexp, cur, inputs
                )
                routed = step.op("add", routed, shared)
            cur = routed
        else:
            cur = self._ffn(step, layer, cur, inputs)
        if layer.post_ffn_norm is not None:
            cur = self.norm(step, cur, layer.post_ffn_norm)
        if hp.residual_scale != 1.0:
            cur = step.op("scale", cur, hp.residual_scale)
        out = step.op("add", cur, ffn_in)
        return out if layer.out_scale is None else step.op("mul", out, layer.out_scale)

    def _attention(self, step, index, layer, cur, inputs, segments):
        """Attention over each head's own keys and values: (n_head * head_dim_v, rows)."""
        hp = self.hp.layer(index)
        positions = inputs["positions"]
        rows = sum(len(s.tokens) for s in segments)
        local = hp.swa_layers[index]
        rot_k, rot_v = self.rot_k[index], self.rot_v[index]
        q, k, v = self._qkv(step, hp, layer, cur, inputs, rows)
        if layer.q_norm is not None and hp.qk_norm_whole:  # over all heads' values at once (olmo2)
            q = self.norm(step, q, layer.q_norm)
            k = self.norm(step, k, layer.k_norm)
        q = step.op("reshape_3d", q, hp.head_dim, hp.n_head, rows)
        k = step.op("reshape_3d", k, hp.head_dim, hp.n_head_kv, rows)
        if layer.q_norm is not None and not hp.qk_norm_whole:  # each head's own (qwen3, gemma3)
            q = self.norm(step, q, layer.q_norm)
            k = self.norm(step, k, layer.k_norm)
        if hp.value_norm:  # each head's values, without a weight (gemma4)
            v = step.op(
                "rms_norm",
                step.op("reshape_3d", v, hp.head_dim_v, hp.n_head_kv, rows),
                hp.norm_eps,
            )
            v = step.op("reshape_2d", v, hp.v_dim, rows)
        q = self.rope_segments(step, q, positions, local, segments)
        k = self.rope_segments(step, k, positions, local, segments)
        kq_scale = hp.attn_scale
        if hp.scale_queries:
            q = step.op("scale", q, hp.attn_scale)
            kq_scale = 1.0
        if rot_k:
            q = self.rotate(step, q, rot_k)
            k = self.rotate(step, k, rot_k)
        if rot_v:
            v = self.rotate(step, v, rot_v)

        for part in (q, k, v):  # computed in llama.cpp's order (independent nodes: same values)
            step.expand(part)
        # keys and values into each sequence's cache first: attention reads them from there
        for i, s in enumerate(segments):
            count = len(s.tokens)
            for source, width, is_value in ((k, hp.kv_dim, False), (v, hp.v_dim, True)):
                new_rows = step.op(
                    "view_2d", source, width, count, width * F32_BYTES, s.row * width * F32_BYTES
                )
                target = s.cache.values[index] if is_value else s.cache.keys[index]
                cells = inputs[f"write{i}.{int(local)}"]
                step.expand(step.op("set_rows", target, new_rows, cells))

        attn = None
        for i, s in enumerate(segments):
            count = len(s.tokens)
            mask = inputs[f"mask{i}.{int(local)}"]
            queries = step.op(
                "view_3d",
                q,
                hp.head_dim,
                hp.n_head,
                count,
                hp.head_dim * F32_BYTES,
                hp.q_dim * F32_BYTES,
                s.row * hp.q_dim * F32_BYTES,
            )
            queries = step.op("permute", queries, 0, 2, 1, 3)  # (head_dim, rows, heads)
            span = s.cache.span(local, s.stop)
            keys = s.cache.attend_view(step, index, span, False)
            values = s.cache.attend_view(step, index, span, True)
            out = step.op(
                "flash_attn_ext", queries, keys, values, mask, kq_scale, 0.0, hp.attn_softcap or 0.0
            )
            if layer.sinks is not None:  # each head's learned sink takes a share of the softmax
                step.lib.ggml_flash_attn_ext_add_sinks(out, layer.sinks)
            step.lib.ggml_flash_attn_ext_set_prec(out, L.PREC_F32)
            out = step.op("reshape_2d", out, hp.n_head * hp.head_dim_v, count)
            attn = out if attn is None else step.op("concat", attn, out, 1)

        if rot_v:
            attn = self.rotate(step, attn, rot_v)  # the values' rotation undone
        return attn

    def _qkv(self, step, hp, layer, x, inputs, rows):
        """Queries, keys and values of ``x``: (width, rows) each; from one fused matrix as views.
        A block without ``attn_v`` (gemma4's global layers) takes its keys' projection, before
        any norm or rope, as its values."""
        if layer.wqkv is None:
            q = self._project(step, layer.wq, layer.bq, x, inputs)
            k = self._project(step, layer.wk, layer.bk, x, inputs)
            v = k if layer.wv is None else self._project(step, layer.wv, layer.bv, x, inputs)
            return q, k, v
        qkv = self._project(step, layer.wqkv, layer.bqkv, x, inputs)
        row = L.tensor(qkv).nb[1]
        parts = []
        for width, offset in (
            (hp.q_dim, 0),
            (hp.kv_dim, hp.q_dim),
            (hp.v_dim, hp.q_dim + hp.kv_dim),
        ):
            view = step.op("view_2d", qkv, width, rows, row, offset * F32_BYTES)
            parts.append(step.op("cont", view))  # reshapes and cache writes need packed rows
        return tuple(parts)

    def _gated(self, step, up, gate, down, x, inputs):
        """A SwiGLU FFN of three matrices."""
        cur = step.op("swiglu_split", self.mm(step, gate, x, inputs), self.mm(step, up, x, inputs))
        return self.mm(step, down, cur, inputs)

    def _ffn(self, step, layer, x, inputs):
        """The dense FFN: gated (SwiGLU or GeGLU; phi3's gate and up rows in one matrix), or a
        plain activation of ``up`` (starcoder2)."""
        hp = self.hp
        up = self._project(step, layer.up, layer.up_b, x, inputs)
        if layer.gate is not None:
            gate = self.mm(step, layer.gate, x, inputs)
            cur = step.op("swiglu_split" if hp.activation == "silu" else "geglu_split", gate, up)
        elif hp.fused_gate_up:
            cur = step.op("swiglu" if hp.activation == "silu" else "geglu", up)
        else:
            cur = step.op("silu" if hp.activation == "silu" else "gelu", up)
        return self._project(step, layer.down, layer.down_b, cur, inputs)

    def _experts(self, step, layer, x):
        """The mixture of experts, as llama.cpp's ``build_moe_ffn``: router probabilities, the
        ``n_expert_used`` largest per row, their weights (renormalised where the architecture
        says), then each row through its chosen experts only (``mul_mat_id`` reads just their
        blocks) and the weighted outputs summed."""
        hp = self.hp
        n_used = hp.n_expert_used
        rows = L.tensor(x).ne[1]
        logits = step.op("mul_mat", layer.gate_inp, x)  # (n_expert, rows)
        if layer.gate_inp_b is not None:
            logits = step.op("add", logits, layer.gate_inp_b)
        probs = {"softmax": "soft_max", "sigmoid": "sigmoid"}.get(hp.expert_gating)
        probs = step.op(probs, logits) if probs else logits
        selection = probs  # what chooses; the weights are the unbiased probabilities
        if layer.exp_probs_b is not None:
            selection = step.op("add", probs, layer.exp_probs_b)
        if hp.n_expert_groups:
            selection = self._best_groups(step, selection, rows)
        chosen = step.op("argsort_top_k", selection, n_used)  # (n_used, rows), I32
        weights = step.op(
            "get_rows", step.op("reshape_3d", probs, 1, hp.n_expert, rows), chosen
        )  # (1, n_used, rows)
        if hp.expert_gating == "softmax_chosen":
            weights = step.op(
                "reshape_3d",
                step.op("soft_max", step.op("reshape_2d", weights, n_used, rows)),
                1,
                n_used,
                rows,
            )
        if hp.expert_weights_norm:
            weights = step.op("reshape_2d", weights, n_used, rows)
            total = step.op("clamp", step.op("sum_rows", weights), MIN_WEIGHT_SUM, float("inf"))
            weights = step.op("reshape_3d", step.op("div", weights, total), 1, n_used, rows)
        if hp.expert_weights_scale != 1.0:
            weights = step.op("scale", weights, hp.expert_weights_scale)
        step.expand(weights)
        cur = step.op("reshape_3d", x, hp.n_embd, 1, rows)
        up = self._expert_product(
            step, layer.up_exps, layer.up_exps_b, cur, chosen
        )  # (n_ff_exp, n_used, rows)
        gate = self._expert_product(step, layer.gate_exps, layer.gate_exps_b, cur, chosen)
        if (
            hp.activation == "swiglu_oai"
        ):  # gpt-oss: SwiGLU with a sharper sigmoid, both halves clamped
            cur = step.op("swiglu_oai", gate, up, SWIGLU_OAI_ALPHA, SWIGLU_OAI_LIMIT)
        else:
            cur = step.op("swiglu_split" if hp.activation == "silu" else "geglu_split", gate, up)
        experts = self._expert_product(
            step, layer.down_exps, layer.down_exps_b, cur, chosen
        )  # (n_embd, n_used, rows)
        experts = step.op("mul", experts, weights)
        step.expand(experts)
        struct = L.tensor(experts)
        views = [
            step.op("view_2d", experts, hp.n_embd, rows, struct.nb[2], i * struct.nb[1])
            for i in range(n_used)
        ]
        for view in views:  # the views before the adds, as llama.cpp orders them
            step.expand(view)
        out = views[0]
        for view in views[1:]:
            out = step.expand(step.op("add", out, view))
        return step.op("cont", out) if n_used == 1 else out

    def _best_groups(self, step, selection, rows):
        """``selection`` (n_expert, rows) with every expert outside each row's
        ``n_group_used`` best groups at -inf; a group scores the sum of its best two."""
        hp = self.hp
        groups, per = hp.n_expert_groups, hp.n_expert // hp.n_expert_groups
        grouped = step.op("reshape_3d", selection, per, groups, rows)
        best_two = step.op("argsort_top_k", grouped, 2)  # (2, groups, rows)
        scores = step.op(
            "get_rows", step.op("reshape_4d", grouped, 1, per, groups, rows), best_two
        )  # (1, 2, groups, rows)
        scores = step.op("sum_rows", step.op("reshape_3d", scores, 2, groups, rows))
        chosen = step.op(
            "argsort_top_k", step.op("reshape_2d", scores, groups, rows), hp.n_group_used
        )
        kept = step.op("get_rows", grouped, chosen)  # (per, n_group_used, rows)
        masked = step.op("set_rows", step.op("fill", grouped, float("-inf")), kept, chosen)
        return step.op("reshape_2d", masked, hp.n_expert, rows)

    @staticmethod
    def _expert_product(step, weights, bias, x, chosen):
        """Each row times its chosen experts' matrices (and biases)."""
        out = step.op("mul_mat_id", weights, x, chosen)
        return out if bias is None else step.op("add_id", out, bias, chosen)

    # -- pieces --------------------------------------------------------------------------------

    def norm(self, step, x, weight, bias=None):
        """RMS norm or LayerNorm (``hp.norm``) times ``weight``, plus ``bias``; ``x`` itself
        where the block has no such norm (olmo2 has none before attention)."""
        if weight is None:
            return x
        normed = step.op("rms_norm" if self.hp.norm == "rms" else "norm", x, self.hp.norm_eps)
        out = step.op("mul", normed, weight)
        return out if bias is None else step.op("add", out, bias)

    def mm(self, step, weight, x, inputs):
        """``weight`` times ``x``: on the weight's own blocks, or, in a prompt step, on a float32
        copy of a weight ggml would multiply one column at a time (``dense_prefill_weights``);
        plus the adapter's low-rank product where an adapter changes this weight."""
        dense_rows = inputs.get("dense_rows")
        if dense_rows is not None and weight in self.dense:
            rows = step.op("view_1d", dense_rows, L.tensor(weight).ne[1], 0)
            out = step.op("mul_mat", step.op("get_rows", weight, rows), x)
        else:
            out = self._product(step, weight, x)
        lora = self.lora.get(weight)
        if lora is not None:
            a, b, scale = lora
            delta = step.op("mul_mat", b, step.op("mul_mat", a, x))
            out = step.op("add", out, step.op("scale", delta, scale))
        return out

    def _product(self, step, weight, x):
        """``mul_mat(weight, x)``; for a Q4_1, Q5_1, Q8_0, Q5_0, Q6_K or (repacked) Q4_K weight
        and a step of as many rows as its kernel takes, by ollamakit's kernel (``kernels*.c``:
        ggml's sums bit for bit, several rows of ``x`` per weight block read, used once a check
        on this CPU found them so) on ``x`` rounded by ggml as its own product rounds it. A
        kernel reads the weight in one layout: the file's blocks, or ggml's repacked ones."""
        struct = L.tensor(weight)
        rows = L.tensor(x).ne[1]
        kernel = None if self.kernels is None else self.kernels.product(struct.type)
        if (
            kernel is None
            or not kernel.fewest_rows <= rows <= (kernel.most_rows or rows)
            or (weight in self.t.repacked) != kernel.repacked
            or not _contiguous(L.tensor(x))
        ):
            return step.op("mul_mat", weight, x)
        return kernel.multiply(step, weight, x)

    def _project(self, step, weight, bias, x, inputs):
        out = self.mm(step, weight, x, inputs)
        return out if bias is None else step.op("add", out, bias)

    def factors(self, num_ctx: int) -> int | None:
        """The rope frequency factors of a sequence whose cache holds ``num_ctx`` positions: the
        file's ``rope_freqs``; or LongRoPE's long set where that context, rounded up as
        llama.cpp sizes it, passes the original training context, its short set otherwise."""
        t, hp = self.t, self.hp
        if t.rope_factors is not None or t.rope_long is None:
            return t.rope_factors
        padded = -(-num_ctx // CTX_PAD) * CTX_PAD
        return t.rope_long if padded > (hp.rope_ctx_orig or hp.n_ctx_train) else t.rope_short

    def rope_segments(self, step, x, positions, local: bool, segments: list[GraphSegment]):
        """``rope`` over a step's rows, each segment with its own sequence's factors (one
        rotation for all when they share them, as they do unless contexts differ)."""
        chosen = [self.factors(s.cache.num_ctx) for s in segments]
        if len(set(chosen)) == 1:
            return self.rope(step, x, positions, local, chosen[0])
        struct = L.tensor(x)
        out = None
        for s, factors in zip(segments, chosen):
            count = len(s.tokens)
            rows = step.op(
                "view_3d",
                x,
                struct.ne[0],
                struct.ne[1],
                count,
                struct.nb[1],
                struct.nb[2],
                s.row * struct.nb[2],
            )
            where = step.op("view_1d", positions, count, s.row * 4)
            part = self.rope(step, rows, where, local, factors)
            out = part if out is None else step.op("concat", out, part, 2)
        return out

    def _rope_settings(self, local: bool) -> tuple[float, float, float, float]:
        """(base, scale, ext_factor, attn_factor) of a global or a windowed layer's rope."""
        hp = self.hp
        ext_factor, attn_factor = hp.rope_ext_factor, hp.rope_attn_factor
        if local and hp.rope_base_local is not None:
            if hp.plain_rope_local:
                ext_factor, attn_factor = 0.0, 1.0
            return hp.rope_base_local, hp.rope_scale_local, ext_factor, attn_factor
        return hp.rope_base, hp.rope_scale, ext_factor, attn_factor

    def rope_magnitude(self, local: bool) -> float:
        """What rope multiplies the vectors it rotates by (ggml's ``mscale``): the attention
        factor, times YaRN's own correction where it blends frequencies."""
        _, scale, ext_factor, attn_factor = self._rope_settings(local)
        return attn_factor * (1.0 + 0.1 * math.log(1.0 / scale)) if ext_factor else attn_factor

    def rope(self, step, x, positions, local: bool, factors: int | None):
        """Rotate (head_dim, heads, rows) by ``positions`` (I32, one per row); the global
        layers' frequencies divided by ``factors`` (a sequence's own: ``factors``) where given."""
        hp = self.hp
        base, scale, ext_factor, attn_factor = self._rope_settings(local)
        if local and hp.rope_base_local is not None:
            factors = None
        return step.op(
            "rope_ext",
            x,
            positions,
            factors,
            hp.rope_dim_swa if local and hp.rope_dim_swa else hp.rope_dim,
            self.rope_mode,
            hp.rope_ctx_orig or hp.n_ctx_train,
            base,
            scale,
            ext_factor,
            attn_factor,
            hp.rope_beta_fast,
            hp.rope_beta_slow,
        )

    def _mask(self, s: GraphSegment, local: bool) -> np.ndarray:
        """The additive float16 mask (rows, span) of one segment: each row sees the positions up
        to its own, within the window on sliding-window layers; cells past the end, and a ring's
        cells that hold no position, are hidden."""
        query = np.arange(s.start, s.stop)[:, None]
        held = s.cache.cell_positions(local, s.stop)
        key = held[None, :]
        visible = (key >= 0) & (key <= query)
        groups = image_groups(s.tokens)
        if groups is not None:  # an image's rows see each other, both ways
            within = np.full(len(held), -1)
            new = (held >= s.start) & (held < s.stop)
            within[new] = groups[held[new] - s.start]
            visible |= (groups[:, None] >= 0) & (groups[:, None] == within[None, :])
        if local and self.hp.sliding_window:
            visible &= query - key < self.hp.sliding_window
        return np.where(visible, np.float16(0), np.float16(-np.inf))


# Q4_1 and Q5_1: no tiled kernel takes them (llamafile's sgemm tiles Q4_0, Q5_0, Q8_0 and
# IQ4_NL; the repacked gemms Q4_0, Q4_K, IQ4_NL and MXFP4), so ggml multiplies them one
# activation column at a time (ggml_vec_dot), rounding the activations to Q8_1.
DENSE_TYPES = {3, 7}  # Q4_1, Q5_1
DENSE_MIN_ROWS = 32


def dense_prefill_weights(tensors: ModelTensors) -> frozenset[int]:
    """The layer projections to turn into float32 for a prompt step of at least
    ``DENSE_MIN_ROWS`` rows when fast prefill is asked for (``OLLAMAKIT_FAST_PREFILL``):
    dequantizing such a matrix once (``get_rows``, ggml's own row decoder, into the step's
    scratch memory) and running the float32 tiled product is about twice as fast for a long
    prompt as ggml's column at a time. Its sums are not ggml's, so the cached keys and values are
    not llama.cpp's, and greedy answers after a long prompt part from llama.cpp's beyond true
    ties (3 of the 6 long prompts of the agreement tests on SmolLM2): off by default. Rounding
    the activations to Q8_1 first does not help; any difference of float32 rounding grows to
    that (docs/performance.md). Steps of fewer rows (decode, for up to 31 sequences at once)
    never take this path."""
    weights = [w for layer in tensors.layers for w in layer.projections()]
    return frozenset(
        w for w in weights if w not in tensors.repacked and L.tensor(w).type in DENSE_TYPES
    )


def image_groups(tokens) -> np.ndarray | None:
    """Which bidirectional image each token belongs to (a number per image, -1 for text and
    causal images); None without such images."""
    if not any(isinstance(t, ImageToken) and t.image.bidirectional for t in tokens):
        return None
    groups, current = np.full(len(tokens), -1), -1
    for j, t in enumerate(tokens):
        if isinstance(t, ImageToken) and t.image.bidirectional:
            if (
                t.first
                or j == 0
                or not isinstance(tokens[j - 1], ImageToken)
                or not tokens[j - 1].image.bidirectional
            ):
                current += 1
            groups[j] = current
    return groups


def _contiguous(struct) -> bool:
    """Whether a tensor's rows are packed one after another (a reshape can then view it)."""
    size = struct.nb[0]
    for dim in range(4):
        if struct.nb[dim] != size:
            return False
        size *= struct.ne[dim]
    return True
