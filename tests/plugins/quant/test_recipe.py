"""Per-tensor type choices of each mixture, worked out by hand from llama.cpp's rules."""

from __future__ import annotations

import pytest

from ollamakit.errors import BadRequest
from ollamakit_quant.quantizer import file_type_name
from ollamakit_quant.recipe import FILE_TYPES, ModelFacts, Recipe, weight_order

ALL = [
    "Q2_K",
    "Q3_K_S",
    "Q3_K_M",
    "Q3_K_L",
    "Q4_0",
    "Q4_1",
    "Q4_K_S",
    "Q4_K_M",
    "Q5_0",
    "Q5_1",
    "Q5_K_S",
    "Q5_K_M",
    "Q6_K",
    "Q8_0",
]


def fake_model(n_layer=16, width=256, ff=512, kv=64, tied=False):
    """{name: GGML shape} of a llama-style model."""
    shapes = {"token_embd.weight": (width, 1000), "output_norm.weight": (width,)}
    if not tied:
        shapes["output.weight"] = (width, 1000)
    for i in range(n_layer):
        shapes.update(
            {
                f"blk.{i}.attn_norm.weight": (width,),
                f"blk.{i}.ffn_norm.weight": (width,),
                f"blk.{i}.attn_q.weight": (width, width),
                f"blk.{i}.attn_k.weight": (width, kv),
                f"blk.{i}.attn_v.weight": (width, kv),
                f"blk.{i}.attn_output.weight": (width, width),
                f"blk.{i}.ffn_gate.weight": (width, ff),
                f"blk.{i}.ffn_up.weight": (width, ff),
                f"blk.{i}.ffn_down.weight": (ff, width),
            }
        )
    return shapes


def choices(file_type, shapes, arch="llama", n_layer=16, heads=8, kv_heads=2, experts=0):
    facts = ModelFacts.from_metadata(
        {
            "general.architecture": arch,
            f"{arch}.block_count": n_layer,
            f"{arch}.attention.head_count": heads,
            f"{arch}.attention.head_count_kv": kv_heads,
            f"{arch}.expert_count": experts,
        }
    )
    recipe = Recipe(file_type, facts, shapes)
    return {name: recipe.choose(name, shapes[name]) for name in weight_order(shapes)}


def per_layer(chosen, tensor, n_layer=16):
    return [chosen[f"blk.{i}.{tensor}.weight"] for i in range(n_layer)]


def test_file_type_names_are_the_fourteen():
    assert list(FILE_TYPES) == ALL
    assert file_type_name("q4_k_m") == "Q4_K_M"
    with pytest.raises(BadRequest) as caught:
        file_type_name("q9_X")
    assert (
        caught.value.message
        == "unsupported quantization type Q9_X - supported types are " + ", ".join(ALL)
    )


def test_llama_order_is_by_layer_number_then_name():
    names = [
        "blk.10.attn_v.weight",
        "output.weight",
        "blk.2.attn_v.weight",
        "blk.2.attn_k.weight",
        "token_embd.weight",
    ]
    assert weight_order(names) == [
        "output.weight",
        "token_embd.weight",
        "blk.2.attn_k.weight",
        "blk.2.attn_v.weight",
        "blk.10.attn_v.weight",
    ]


def test_q4_k_m_gives_more_bits_by_layer_position():
    chosen = choices("Q4_K_M", fake_model())
    # use_more_bits(i, 16): the first 2, the last 2, and every third layer between
    more = {0, 1, 4, 7, 10, 13, 14, 15}
    expected = ["Q6_K" if i in more else "Q4_K" for i in range(16)]
    assert per_layer(chosen, "attn_v") == expected
    assert per_layer(chosen, "ffn_down") == expected
    assert set(
        per_layer(chosen, "attn_q") + per_layer(chosen, "ffn_up") + per_layer(chosen, "attn_output")
    ) == {"Q4_K"}
    assert chosen["output.weight"] == "Q6_K"
    assert chosen["token_embd.weight"] == "Q4_K"  # not tied: an ordinary matrix
    assert (
        chosen["output_norm.weight"] is None and chosen["blk.3.attn_norm.weight"] is None
    )  # 1-D: kept


def test_counting_follows_layer_numbers_not_name_order():
    chosen = choices("Q4_K_M", fake_model(n_layer=12), n_layer=12)
    more = {0, 3, 6, 9, 10, 11}  # use_more_bits(i, 12); name order would put blk.10 before blk.2
    assert per_layer(chosen, "attn_v", 12) == ["Q6_K" if i in more else "Q4_K" for i in range(12)]


def test_small_and_large_mixtures():
    s = choices("Q4_K_S", fake_model())
    assert per_layer(s, "attn_v") == ["Q5_K"] * 4 + ["Q4_K"] * 12
    assert per_layer(s, "ffn_down") == ["Q5_K"] * 2 + ["Q4_K"] * 14
    m = choices("Q3_K_M", fake_model())
    assert per_layer(m, "attn_v") == ["Q5_K"] * 2 + ["Q4_K"] * 14
    assert per_layer(m, "ffn_down") == ["Q5_K"] + ["Q4_K"] * 15
    assert set(per_layer(m, "attn_output")) == {"Q4_K"} and set(per_layer(m, "attn_q")) == {"Q3_K"}
    l3 = choices("Q3_K_L", fake_model())
    assert set(
        per_layer(l3, "attn_v") + per_layer(l3, "ffn_down") + per_layer(l3, "attn_output")
    ) == {"Q5_K"}
    s3 = choices("Q3_K_S", fake_model())
    assert set(per_layer(s3, "attn_v") + per_layer(s3, "ffn_down")) == {"Q3_K"}
    m5 = choices("Q5_K_M", fake_model())
    more = {0, 1, 4, 7, 10, 13, 14, 15}
    assert per_layer(m5, "ffn_down") == ["Q6_K" if i in more else "Q5_K" for i in range(16)]
    assert set(per_layer(choices("Q5_K_S", fake_model()), "attn_v")) == {"Q5_K"}


def test_q2_k_depends_on_grouped_query_attention():
    wide = choices("Q2_K", fake_model(), heads=8, kv_heads=2)  # 4 heads per kv head
    narrow = choices("Q2_K", fake_model(), heads=8, kv_heads=4)
    assert set(per_layer(wide, "attn_v")) == {"Q4_K"}
    assert set(per_layer(narrow, "attn_v")) == {"Q3_K"}
    assert set(per_layer(wide, "ffn_down") + per_layer(wide, "attn_output")) == {"Q3_K"}
    assert set(per_layer(wide, "attn_q") + per_layer(wide, "ffn_gate")) == {"Q2_K"}


def test_output_matrix():
    assert choices("Q6_K", fake_model())["output.weight"] == "Q6_K"
    assert choices("Q8_0", fake_model())["output.weight"] == "Q8_0"
    assert choices("Q4_0", fake_model())["output.weight"] == "Q6_K"
    assert choices("Q4_K_M", fake_model(), arch="falcon")["output.weight"] == "Q8_0"
    tied = choices("Q4_K_M", fake_model(tied=True))
    assert tied["token_embd.weight"] == "Q6_K"  # the embedding doubles as the output


def test_rows_that_do_not_split_into_super_blocks_fall_back():
    """SmolLM2's 576 columns: K-quants fall back to 32-element types, the output to Q8_0."""
    shapes = fake_model(n_layer=8, width=576, ff=1536, kv=192, tied=True)
    chosen = choices("Q4_K_M", shapes, n_layer=8, heads=9, kv_heads=3)
    assert chosen["token_embd.weight"] == "Q8_0"
    assert per_layer(chosen, "attn_v", 8) == [
        "Q8_0" if i in {0, 3, 6, 7} else "Q5_0" for i in range(8)
    ]
    assert per_layer(chosen, "ffn_down", 8) == [
        "Q6_K" if i in {0, 3, 6, 7} else "Q4_K" for i in range(8)
    ]
    assert set(per_layer(chosen, "attn_q", 8)) == {"Q5_0"}
    assert set(per_layer(choices("Q5_K_S", shapes, n_layer=8), "attn_q", 8)) == {"Q5_1"}
    assert set(per_layer(choices("Q3_K_S", shapes, n_layer=8), "attn_q", 8)) == {"Q4_0"}
    assert set(per_layer(choices("Q6_K", shapes, n_layer=8), "attn_q", 8)) == {"Q8_0"}
    odd = {"blk.0.attn_q.weight": (80, 80)}  # not even a multiple of 32
    assert choices("Q4_K_M", odd, n_layer=1)["blk.0.attn_q.weight"] == "F16"
    with pytest.raises(BadRequest, match="row length 80 is not a multiple of 32"):
        choices("Q8_0", odd, n_layer=1)


def test_mixture_of_experts_and_kept_tensors():
    shapes = {
        **fake_model(n_layer=8),
        "blk.0.ffn_gate_inp.weight": (256, 8),
        "blk.0.ffn_down_exps.weight": (512, 256, 8),
        "position_embd.weight": (256, 512),
    }
    chosen = choices("Q4_K_M", shapes, n_layer=8, experts=8)
    assert set(per_layer(chosen, "attn_v", 8) + per_layer(chosen, "attn_k", 8)) == {"Q8_0"}
    assert chosen["blk.0.ffn_gate_inp.weight"] is None and chosen["position_embd.weight"] is None
    assert chosen["blk.0.ffn_down_exps.weight"] == "Q6_K"  # layer 0, read from the name


def test_ollamas_deepseek2_latent_attention_stays_q8_0_in_q4_k():
    """Ollama keeps deepseek2's latent-attention matrices at Q8_0 in Q4_K_S and Q4_K_M (its
    llama-quantize --tensor-type overrides); other mixtures, other tensors and other
    architectures follow llama.cpp's recipe, and a row Q8_0 cannot hold falls back as the
    mixture's type would."""
    latent = {
        "blk.0.attn_q_a.weight": (2048, 1536),
        "blk.0.attn_q_b.weight": (1536, 24576),
        "blk.0.attn_kv_a_mqa.weight": (2048, 576),
        "blk.0.attn_k_b.weight": (128, 512, 128),
        "blk.0.attn_v_b.weight": (512, 128, 128),
        "blk.0.attn_output.weight": (16384, 2048),
    }
    for file_type in ("Q4_K_S", "Q4_K_M"):
        chosen = choices(file_type, latent, arch="deepseek2", n_layer=1, heads=128, kv_heads=1)
        assert {n: t for n, t in chosen.items() if "attn_output" not in n} == dict.fromkeys(
            [n for n in latent if "attn_output" not in n], "Q8_0"
        )
        assert chosen["blk.0.attn_output.weight"] == "Q4_K"
    assert choices("Q5_K_M", latent, arch="deepseek2", n_layer=1)["blk.0.attn_k_b.weight"] == "Q5_1"
    assert choices("Q4_K_M", latent, arch="llama", n_layer=1)["blk.0.attn_k_b.weight"] == "Q5_0"
    narrow = {"blk.0.attn_k_b.weight": (16, 32, 4)}
    assert choices("Q4_K_M", narrow, arch="deepseek2", n_layer=1)["blk.0.attn_k_b.weight"] == "F16"
