"""Multi-head latent attention (deepseek2) on the ggml graph, with the compressed cache.

A position's keys and values are not cached per head: one row holds the normed latent
(``kv_lora_rank`` wide) and, after it, the rope key every head shares. Each head's query is
carried into the latent by ``attn_k_b`` (the keys' map, absorbed into the query) and keeps its
own rope part, so attention is one key/value head of width kv_lora_rank + rope_dim, over values
that are the latent itself (a view of the same cache row). The attention's output, still in
the latent, is carried to each head's values by ``attn_v_b``. This is llama.cpp's graph for
files with ``attn_k_b``/``attn_v_b``; for older files with only ``attn_kv_b`` the loader derives
``attn_k_b`` (``MappedWeights.absorbed_keys``) and ``attn_v_b`` is a view of its rows.
"""

from __future__ import annotations

from ollamakit.lib.ggml import lib as L

F32_BYTES = 4


def latent_attention(model, step, index, layer, x, inputs, segments):
    """The attention of block ``index`` of ``model`` (a ``GraphTransformer``) over ``x``
    (n_embd, rows): (n_head * head_dim_v_mla, rows), before ``attn_output``."""
    hp = model.hp
    positions, local = inputs["positions"], hp.swa_layers[index]
    rows = sum(len(s.tokens) for s in segments)
    rank, rope_dim, n_head = hp.kv_lora_rank, hp.rope_dim, hp.n_head
    nope = hp.head_dim_mla - rope_dim

    if layer.q_a is not None:
        q = model.mm(step, layer.q_a, x, inputs)
        q = model.norm(step, q, layer.q_a_norm)
        q = model.mm(step, layer.q_b, q, inputs)
    else:
        q = model.mm(step, layer.wq, x, inputs)
    q = step.op("reshape_3d", q, hp.head_dim_mla, n_head, rows)
    struct = L.tensor(q)
    q_nope = step.op("view_3d", q, nope, n_head, rows, struct.nb[1], struct.nb[2], 0)
    q_pe = step.op(
        "view_3d", q, rope_dim, n_head, rows, struct.nb[1], struct.nb[2], nope * F32_BYTES
    )
    q_pe = model.rope_segments(step, q_pe, positions, local, segments)
    # each head's query into the latent: (rank, rows, n_head), then (rank, n_head, rows)
    q_nope = step.op("mul_mat", layer.k_b, step.op("permute", q_nope, 0, 2, 1, 3))
    q = step.op("concat", step.op("permute", q_nope, 0, 2, 1, 3), q_pe, 0)

    latent_pe = model.mm(step, layer.kv_a_mqa, x, inputs)  # (rank + rope_dim, rows)
    row = L.tensor(latent_pe).nb[1]
    latent = step.op("view_2d", latent_pe, rank, rows, row, 0)
    k_pe = step.op("view_3d", latent_pe, rope_dim, 1, rows, row, row, rank * F32_BYTES)
    k_pe = model.rope_segments(step, k_pe, positions, local, segments)
    latent = model.norm(step, latent, layer.kv_a_norm)
    k = step.op("concat", step.op("reshape_3d", latent, rank, 1, rows), k_pe, 0)

    width = hp.kv_dim  # rank + rope_dim: one row per position, which is all the cache keeps
    for i, s in enumerate(segments):
        count = len(s.tokens)
        new_rows = step.op("view_2d", k, width, count, width * F32_BYTES, s.row * width * F32_BYTES)
        cells = inputs[f"write{i}.{int(local)}"]
        step.expand(step.op("set_rows", s.cache.keys[index], new_rows, cells))

    attn = None
    q_row = hp.head_dim * F32_BYTES
    for i, s in enumerate(segments):
        count = len(s.tokens)
        queries = step.op(
            "view_3d", q, hp.head_dim, n_head, count, q_row, n_head * q_row, s.row * n_head * q_row
        )
        queries = step.op("permute", queries, 0, 2, 1, 3)  # (head_dim, rows, heads)
        span = s.cache.span(local, s.stop)
        keys = s.cache.attend_view(step, index, span, False)
        values = s.cache.attend_view(step, index, span, True)
        mask = inputs[f"mask{i}.{int(local)}"]
        out = step.op("flash_attn_ext", queries, keys, values, mask, hp.attn_scale, 0.0, 0.0)
        step.lib.ggml_flash_attn_ext_set_prec(out, L.PREC_F32)
        out = step.op("reshape_2d", out, n_head * rank, count)
        attn = out if attn is None else step.op("concat", attn, out, 1)

    # out of the latent, into each head's values
    v_b = layer.v_b
    if v_b is None:  # the value rows of each head in the older attn_kv_b
        kv_row = L.tensor(layer.kv_b).nb[1]
        v_b = step.op(
            "view_3d",
            layer.kv_b,
            rank,
            hp.head_dim_v_mla,
            n_head,
            kv_row,
            kv_row * (nope + hp.head_dim_v_mla),
            kv_row * nope,
        )
    attn = step.op("permute", step.op("reshape_3d", attn, rank, n_head, rows), 0, 2, 1, 3)
    attn = step.op("mul_mat", v_b, attn)  # (head_dim_v_mla, rows, n_head)
    attn = step.op("cont", step.op("permute", attn, 0, 2, 1, 3))
    return step.op("reshape_2d", attn, hp.o_dim, rows)
