"""BERT encoders (``bert``, ``nomic-bert``) as ggml graphs, over the GGUF file's own blocks.

The same model as ``bert.BertEncoder`` (which stays the portable float32 engine of the array
backends), built as llama.cpp builds its BERT graph: embeddings (tokens, learned or rotary
positions, segments) and their norm, post-norm blocks of bidirectional attention and a GELU
(exact, as transformers' BERT) or SwiGLU feed-forward, then the pooling and, for a reranker, the
classifier head. One graph runs a whole group of inputs (a reranker's query-document pairs): their
rows are packed one after another with no padding, so each projection is one product over the
weights for every input, and attention keeps each input to its own rows.

Only the rows the pooling reads go through the last block's attention output and feed-forward
(an input's [CLS] row for ``cls`` and ``rank``, its last for ``last``): the other rows' keys and
values are all that block needs of them.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass

import numpy as np

from ollamakit.errors import InvalidModelFile
from ollamakit.lib.ggml import lib as L

from .bert import MAX_TOKEN_TYPES, BertParams
from .graph_weights import MappedWeights


def float32_kernels(lib, p: BertParams):
    """ollamakit's float32 kernels for this model, or None: they need AVX-512 (``kernels.c``)
    and heads whose width is a multiple of 16 (attention reads 16 values at a time)."""
    kernels = getattr(lib, "kernels", None)
    if kernels is None or kernels.mul_mat_f32 is None or p.head_dim % 16:
        return None
    return kernels


PANEL = 32  # weight rows per panel of ollamakit's float32 product (kernels.c)
NODES_PER_LAYER = 64  # a block takes about 35 nodes; rotary positions and SwiGLU a few more


@dataclass
class BertLayerTensors:
    """One block's tensors (ggml tensor pointers); None where the file has none."""

    qkv: int | None
    qkv_b: int | None
    q: int | None
    q_b: int | None
    k: int | None
    k_b: int | None
    v: int | None
    v_b: int | None
    out: int
    out_b: int | None
    attn_norm: tuple[int, int]
    up: int
    up_b: int | None
    gate: int | None
    down: int
    down_b: int | None
    out_norm: tuple[int, int]


class BertTensors:
    """The encoder's tensors in the mapped file, each checked against the parameters."""

    def __init__(self, p: BertParams, weights: MappedWeights, panels: bool = False):
        self.weights = weights  # keeps the mapping alive while the tensors are used
        d, ff = p.n_embd, p.n_ff
        info = weights.infos.get("token_embd.weight")
        if info is None or len(info.shape) != 2 or info.shape[0] != d:
            raise InvalidModelFile(f"tensor token_embd.weight is missing or not ({d}, vocab)")
        self.vocab_size = int(info.shape[1])
        self.token_embd = weights.by_name["token_embd.weight"]
        self.position_embd = (
            None if p.rope_base else weights.get("position_embd.weight", d, p.n_ctx_train)
        )
        self.type_count = 1
        self.token_types = None
        types = weights.infos.get("token_types.weight")
        if types is not None:
            count = int(types.shape[1]) if len(types.shape) == 2 else 0
            if types.shape[0] != d or not 0 < count <= MAX_TOKEN_TYPES:
                raise InvalidModelFile(
                    f"tensor token_types.weight has shape {tuple(types.shape)}, expected ({d}, types)"
                )
            self.token_types, self.type_count = weights.by_name["token_types.weight"], count
        self.embd_norm = self._norm("token_embd_norm", d)
        self.layers = [self._layer(f"blk.{i}.", d, ff) for i in range(p.n_layer)]
        self.cls = self.cls_b = self.cls_out = self.cls_out_b = None
        self.labels = 0
        if p.pooling == "rank":
            self._classifier(d)
        self.panels = self._panels() if panels else {}

    def _panels(self) -> dict[int, int]:
        """The float32 projections in the panel layout of ollamakit's float32 product, by
        their tensor (the others are multiplied by ggml's own product)."""
        names = {tensor: name for name, tensor in self.weights.by_name.items()}
        matrices = [
            w
            for layer in self.layers
            for w in (layer.qkv, layer.q, layer.k, layer.v, layer.out, layer.up, layer.gate)
            + (layer.down,)
            if w is not None
        ]
        return {
            w: self.weights.panels(names[w], PANEL)
            for w in matrices
            if L.tensor(w).type == L.TYPE_F32 and L.tensor(w).ne[1] % PANEL == 0
        }

    def _layer(self, b: str, d: int, ff: int) -> BertLayerTensors:
        w = self.weights
        fused = f"{b}attn_qkv.weight" in w.infos
        separate = {
            x: (None, None)
            if fused
            else (w.get(f"{b}attn_{x}.weight", d, d), w.optional(f"{b}attn_{x}.bias", d))
            for x in "qkv"
        }
        return BertLayerTensors(
            qkv=w.get(f"{b}attn_qkv.weight", d, 3 * d) if fused else None,
            qkv_b=w.optional(f"{b}attn_qkv.bias", 3 * d) if fused else None,
            q=separate["q"][0],
            q_b=separate["q"][1],
            k=separate["k"][0],
            k_b=separate["k"][1],
            v=separate["v"][0],
            v_b=separate["v"][1],
            out=w.get(f"{b}attn_output.weight", d, d),
            out_b=w.optional(f"{b}attn_output.bias", d),
            attn_norm=self._norm(f"{b}attn_output_norm", d),
            up=w.get(f"{b}ffn_up.weight", d, ff),
            up_b=w.optional(f"{b}ffn_up.bias", ff),
            gate=w.optional(f"{b}ffn_gate.weight", d, ff),
            down=w.get(f"{b}ffn_down.weight", ff, d),
            down_b=w.optional(f"{b}ffn_down.bias", d),
            out_norm=self._norm(f"{b}layer_output_norm", d),
        )

    def _norm(self, name: str, d: int) -> tuple[int, int]:
        return self.weights.get(f"{name}.weight", d), self.weights.get(f"{name}.bias", d)

    def _classifier(self, d: int) -> None:
        """The rank head: an optional dense layer with tanh (BERT's pooler), then the labels."""
        w = self.weights
        self.cls = w.optional("cls.weight", d, d)
        self.cls_b = w.optional("cls.bias", d)
        out = w.infos.get("cls.output.weight")
        if out is not None:
            labels = int(out.shape[1]) if len(out.shape) == 2 else 0
            if out.shape[0] != d or not 0 < labels <= MAX_TOKEN_TYPES:
                raise InvalidModelFile(
                    f"tensor cls.output.weight has shape {tuple(out.shape)}, expected ({d}, labels)"
                )
            self.cls_out = w.by_name["cls.output.weight"]
            self.cls_out_b = w.optional("cls.output.bias", labels)
            self.labels = labels
        if self.cls is None and self.cls_out is None:
            raise InvalidModelFile(
                "a rank model needs a classifier head (cls.weight or cls.output.weight)"
            )


@dataclass
class Layout:
    """Where a group's rows are: the inputs' rows packed one after another, no padding."""

    rows: int  # all inputs' rows
    starts: np.ndarray  # each input's first row (I32)
    lengths: np.ndarray  # (I32)
    positions: np.ndarray  # each row's position in its input (I32)

    @classmethod
    def of(cls, lengths: list[int]) -> Layout:
        counts = np.asarray(lengths, dtype=np.int32)
        return cls(
            rows=int(counts.sum()),
            starts=np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32),
            lengths=counts,
            positions=np.concatenate([np.arange(n, dtype=np.int32) for n in counts]),
        )

    @property
    def longest(self) -> int:
        return int(self.lengths.max())

    def spans(self, picked: np.ndarray | None = None) -> np.ndarray:
        """(inputs, 4) I32: each input's query rows (first, count) and key rows (first, count),
        as ollamakit's attention kernel reads them; with ``picked``, one query row per input,
        whose row in the queries is the input's index."""
        if picked is None:
            queries = np.stack([self.starts, self.lengths], axis=1)
        else:
            queries = np.stack([np.arange(len(self.starts)), np.ones_like(self.lengths)], axis=1)
        keys = np.stack([self.starts, self.lengths], axis=1)
        return np.concatenate([queries, keys], axis=1).astype(np.int32)

    def padding(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For ggml's attention, which needs every input padded to the longest: the row at each
        padded place (padding takes row 0), the padded place of each row, and the float16 mask
        (inputs, 1, 1, longest): 0 on the input's keys, -inf past its end."""
        longest = self.longest
        place = np.arange(longest)[None, :]
        real = place < self.lengths[:, None]  # (inputs, longest)
        padded = np.where(real, self.starts[:, None] + place, 0).astype(np.int32).reshape(-1)
        slots = (np.arange(len(self.starts))[:, None] * longest + place)[real].astype(np.int32)
        mask = np.where(real, np.float16(0), np.float16(-np.inf))[:, None, None, :]
        return padded, slots, mask


class GraphBertEncoder:
    """Groups of inputs through the encoder, one ggml graph each, to pooled rows.

    With ollamakit's float32 kernels (``kernels.c``, x86 with AVX-512), float32 projections,
    GELU and attention run on them: attention then reads each input's own rows, with no
    padding. Without, ggml's own operations run every step, and attention pads the inputs to
    the longest (``Layout.padding``)."""

    def __init__(self, p: BertParams, tensors: BertTensors, compute, kernels=None):
        self.p, self.t, self.compute = p, tensors, compute
        self.kernels = kernels  # ``lib.Kernels`` with the float32 kernels, or None
        self.width = (
            (tensors.labels or p.n_embd) if p.pooling == "rank" else p.n_embd
        )  # of each pooled row

    def pooled(self, inputs: list[list[int]], token_types: list[list[int]] | None) -> np.ndarray:
        """One row (inputs, width) per input: the pooled final states (before any
        normalisation), or a reranker's scores."""
        layout = Layout.of([len(tokens) for tokens in inputs])
        ids = np.concatenate([np.asarray(tokens, np.int32) for tokens in inputs])
        types = (
            None
            if token_types is None
            else np.concatenate([np.asarray(t, np.int32) for t in token_types])
        )
        step = self.compute.step(64 + NODES_PER_LAYER * self.p.n_layer)
        try:
            out = step.output(self._build(step, layout, ids, types))
            self.compute.run(step)
            return self.compute.read(out, len(inputs), self.width)
        finally:
            step.close()

    # -- the graph -----------------------------------------------------------------------------

    def _build(self, step, layout: Layout, ids: np.ndarray, types: np.ndarray | None) -> int:
        p, t, op = self.p, self.t, step.op
        d = p.n_embd
        x = op("get_rows", t.token_embd, step.input(ids))
        positions = step.input(layout.positions)
        if t.position_embd is not None:
            x = op("add", x, op("get_rows", t.position_embd, positions))
        if t.token_types is not None:
            if types is None:  # every token in segment 0
                x = op("add", x, op("view_1d", t.token_types, d, 0))
            else:
                x = op("add", x, op("get_rows", t.token_types, step.input(types)))
        x = self._layer_norm(step, x, t.embd_norm)

        every = self._attention_inputs(step, layout)
        every["positions"] = positions
        picked = self._picked_rows(layout)
        for index, layer in enumerate(t.layers):
            if index == len(t.layers) - 1 and picked is not None:
                # the last block: only the rows the pooling reads go on
                chosen = self._attention_inputs(step, layout, picked)
                chosen["rows"] = step.input(picked)
                if p.rope_base:
                    chosen["positions"] = step.input(layout.positions[picked])
                x = self._block(step, layer, x, layout, every, chosen)
            else:
                x = self._block(step, layer, x, layout, every)
        if picked is None:  # the mean of each input's own rows
            weights = np.zeros((len(layout.lengths), layout.rows), np.float32)
            for row, (start, n) in enumerate(zip(layout.starts, layout.lengths)):
                weights[row, start : start + n] = 1.0 / n
            x = op("mul_mat", op("cont", op("transpose", x)), step.input(weights))
        if p.pooling == "rank":
            x = self._rank(step, x)
        return x

    def _attention_inputs(self, step, layout: Layout, picked=None) -> dict:
        """The inputs attention reads: for the kernel the spans of rows, for ggml the padding."""
        if self.kernels is not None:
            return {"spans": step.input(layout.spans(picked))}
        padded, slots, mask = layout.padding()
        if picked is not None:  # one query per input, already in its place
            return {"padded": step.input(padded), "mask": step.input(mask, L.TYPE_F16)}
        mask = np.broadcast_to(mask, (len(layout.lengths), 1, layout.longest, layout.longest))
        return {
            "padded": step.input(padded),
            "slots": step.input(slots),
            "mask": step.input(mask, L.TYPE_F16),
        }

    def _picked_rows(self, layout: Layout) -> np.ndarray | None:
        """The row each input's pooling reads ([CLS] or its last), or None for mean pooling."""
        if self.p.pooling in ("cls", "rank"):
            return layout.starts
        if self.p.pooling == "last":
            return (layout.starts + layout.lengths - 1).astype(np.int32)
        return None

    def _block(self, step, layer, x, layout: Layout, every: dict, chosen: dict | None = None):
        """One post-norm block over the rows x (d, rows). With ``chosen``, the block's output
        is only those rows (one per input), the others serving as keys and values."""
        p, op = self.p, step.op
        d, heads, hd = p.n_embd, p.n_head, p.head_dim
        if layer.qkv is not None:
            qkv = self._linear(step, layer.qkv, layer.qkv_b, x)
            stride = L.tensor(qkv).nb[1]
            q, k, v = (op("view_2d", qkv, d, layout.rows, stride, i * d * 4) for i in range(3))
            q = op("get_rows", q, chosen["rows"]) if chosen else q
        else:
            x_q = op("get_rows", x, chosen["rows"]) if chosen else x
            q = self._linear(step, layer.q, layer.q_b, x_q)
            k = self._linear(step, layer.k, layer.k_b, x)
            v = self._linear(step, layer.v, layer.v_b, x)
        residual = op("get_rows", x, chosen["rows"]) if chosen else x
        if p.rope_base:  # NeoX halves over the first n_rot values of each head
            q_rows = L.tensor(q).ne[1]
            q_at = (chosen or every)["positions"]
            q = self._rope(step, op("reshape_3d", op("cont", q), hd, heads, q_rows), q_at)
            k = self._rope(
                step, op("reshape_3d", op("cont", k), hd, heads, layout.rows), every["positions"]
            )
            q, k = op("reshape_2d", q, d, q_rows), op("reshape_2d", k, d, layout.rows)
        attn = self._attention(step, q, k, v, layout, chosen or every, one=chosen is not None)
        cur = op("add", self._linear(step, layer.out, layer.out_b, attn), residual)
        x = self._layer_norm(step, cur, layer.attn_norm)
        up = self._linear(step, layer.up, layer.up_b, x)
        if layer.gate is not None:
            hidden = op("swiglu_split", self._product(step, layer.gate, x), up)
        elif self.kernels is not None and _packed(L.tensor(up)):
            hidden = self._custom(step, self.kernels.gelu_erf, L.tensor(up).ne[:2], [up])
        else:
            hidden = op("gelu_erf", up)
        cur = op("add", self._linear(step, layer.down, layer.down_b, hidden), x)
        return self._layer_norm(step, cur, layer.out_norm)

    def _attention(self, step, q, k, v, layout: Layout, where: dict, one: bool):
        """Each input's queries over its own keys and values, every head: (d, query rows).
        ``one``: a query row per input (the last block's picked rows)."""
        p, op = self.p, step.op
        d, heads, hd = p.n_embd, p.n_head, p.head_dim
        if self.kernels is not None:
            rows = L.tensor(q).ne[1]
            return self._custom(
                step, self.kernels.attention_f32, (d, rows), [q, k, v, where["spans"]], heads
            )
        batch, longest = len(layout.lengths), layout.longest
        queries = 1 if one else longest
        if not one:
            q = op("get_rows", q, where["padded"])
        k, v = op("get_rows", k, where["padded"]), op("get_rows", v, where["padded"])
        q = op("permute", op("reshape_4d", q, hd, heads, queries, batch), 0, 2, 1, 3)
        k = op("permute", op("reshape_4d", k, hd, heads, longest, batch), 0, 2, 1, 3)
        v = op("permute", op("reshape_4d", v, hd, heads, longest, batch), 0, 2, 1, 3)
        attn = op("flash_attn_ext", q, k, v, where["mask"], 1.0 / math.sqrt(hd), 0.0, 0.0)
        step.lib.ggml_flash_attn_ext_set_prec(attn, L.PREC_F32)
        attn = op("reshape_2d", attn, d, queries * batch)
        return attn if one else op("get_rows", attn, where["slots"])  # back to packed rows

    def _rank(self, step, x):
        """The classifier head on each input's [CLS] row: (labels, batch) scores."""
        t = self.t
        if t.cls is not None:
            x = step.op("tanh", self._linear(step, t.cls, t.cls_b, x))
        if t.cls_out is not None:
            x = self._linear(step, t.cls_out, t.cls_out_b, x)
        return x

    def _rope(self, step, x, positions):
        p = self.p
        return step.op(
            "rope_ext",
            x,
            positions,
            None,
            p.n_rot,
            L.ROPE_NEOX,
            p.n_ctx_train,
            p.rope_base,
            1.0,
            0.0,
            1.0,
            0.0,
            0.0,
        )

    def _linear(self, step, weight, bias, x):
        out = self._product(step, weight, x)
        return out if bias is None else step.op("add", out, bias)

    def _product(self, step, weight, x):
        """``mul_mat(weight, x)``: a float32 weight packed in panels by ollamakit's float32
        product (``kernels.c``), anything else by ggml's."""
        panels = self.t.panels.get(weight)
        if panels is None or self.kernels is None or not _packed(L.tensor(x)):
            return step.op("mul_mat", weight, x)
        shape = (L.tensor(weight).ne[1], L.tensor(x).ne[1])
        return self._custom(step, self.kernels.mul_mat_f32, shape, [panels, x])

    @staticmethod
    def _custom(step, kernel: int, shape, sources: list[int], userdata: int | None = None):
        """A float32 tensor of ``shape`` (2-D) that ``kernel`` computes from ``sources`` on
        every thread of the pool."""
        args = (ctypes.c_void_p * len(sources))(*sources)
        return step.op(
            "custom_4d",
            L.TYPE_F32,
            int(shape[0]),
            int(shape[1]),
            1,
            1,
            args,
            len(sources),
            kernel,
            L.N_TASKS_MAX,
            userdata,
        )

    def _layer_norm(self, step, x, norm):
        return step.op("add", step.op("mul", step.op("norm", x, self.p.norm_eps), norm[0]), norm[1])


def _packed(struct) -> bool:
    """Whether a float32 tensor's values are one after another, rows packed."""
    return (
        struct.type == L.TYPE_F32
        and struct.nb[0] == 4
        and all(struct.nb[i] == struct.nb[i - 1] * struct.ne[i - 1] for i in range(1, 4))
    )
