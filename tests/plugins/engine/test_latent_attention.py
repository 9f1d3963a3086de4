"""deepseek2's multi-head latent attention on the graph engine: the compressed cache (one row
of latent and rope key per position), older files with only ``attn_kv_b``, the context shift
and quantized caches over that row. Agreement with llama.cpp is ``test_architectures.py``'s,
and here, bit for bit, on quantized low-rank and shared-expert maps (``record_latent_logits``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from ollamakit_engine import load_runner
from ollamakit_engine.loader import estimate_bytes
from ollamakit_ggml import GgmlBackend

from ollamakit.errors import BadRequest
from ollamakit.lib.gguf import GGUFFile
from ollamakit.testing import architectures as fixtures
from ollamakit.testing.agreement import cpu
from ollamakit.testing.gguf_factory import make_gguf
from ollamakit.testing.reference import reference_answers

from . import record_latent_logits

PROMPT = fixtures.prompt_ids(fixtures.PROMPTS[2])


def load(path, **options):
    options = {"num_thread": 2, "kv_cache_type": "f32", **options}
    return load_runner(str(path), GgmlBackend(), options, with_tokenizer=False)


def read(path):
    """(metadata, {name: (raw bytes, ggml type, shape)}) of a GGUF file."""
    raw = path.read_bytes()
    with GGUFFile.open(path) as gguf:
        tensors = {
            t.name: (raw[t.offset : t.offset + t.nbytes], t.ggml_type, tuple(t.shape))
            for t in gguf.tensors
        }
        return dict(gguf.metadata), tensors


def write(path, metadata, tensors):
    return make_gguf(path, metadata, tensors, types=fixtures.value_types(metadata))


@pytest.mark.parametrize(
    "name,layers", [("deepseek2", 3), ("deepseek2-lite", 2)], ids=["deepseek2", "lite"]
)
def test_the_cache_keeps_one_latent_row_per_position(tmp_path, name, layers):
    """Per position and layer: the latent (32) and the shared rope key (16), float32 here. For
    the deepseek2 fixture that is llama.cpp's own cache (its K of 0.14 MiB for 256 cells and
    3 layers, no V); for the older lite file llama.cpp expands keys and values per head
    (4 x (32 + 24) values, 0.44 MiB for 256 cells and 2 layers)."""
    runner = load(fixtures.build(name, tmp_path / "m.gguf"))
    assert runner.cache_bytes(256) == 256 * layers * (32 + 16) * 4
    cache = runner.new_cache(256)
    assert cache.nbytes == runner.cache_bytes(256)
    assert cache.values is cache.keys  # the values are a view of the same rows


def test_an_older_file_runs_as_its_converted_form(tmp_path):
    """A file with only ``attn_kv_b`` (Ollama's deepseek-v2 and deepseek-coder-v2) gives what
    the same weights give split as llama.cpp's converter splits them (``attn_k_b`` transposed,
    ``attn_v_b``), and its runner counts the float16 keys' map it derives."""
    legacy = fixtures.build("deepseek2-lite", tmp_path / "legacy.gguf")
    metadata, tensors = read(legacy)
    a = "deepseek2."
    heads, rank, nope, v, pe = 4, 32, 16, 24, 16
    for i in range(2):
        raw, _, _ = tensors.pop(f"blk.{i}.attn_kv_b.weight")
        kv_b = np.frombuffer(raw, np.float16).reshape(heads, nope + v, rank)
        tensors[f"blk.{i}.attn_k_b.weight"] = np.ascontiguousarray(
            kv_b[:, :nope, :].transpose(0, 2, 1)
        )
        tensors[f"blk.{i}.attn_v_b.weight"] = np.ascontiguousarray(kv_b[:, nope:, :])
    metadata.update(
        {
            a + "attention.head_count_kv": 1,
            a + "attention.key_length": rank + pe,
            a + "attention.value_length": rank,
            a + "attention.key_length_mla": nope + pe,
            a + "attention.value_length_mla": v,
        }
    )
    converted = write(tmp_path / "converted.gguf", metadata, tensors)

    old, new = load(legacy), load(converted)
    derived = 2 * 2 * heads * rank * nope  # two blocks of float16 (nope, rank, heads)
    with GGUFFile.open(legacy) as gguf:
        file_bytes = sum(t.nbytes for t in gguf.tensors)
        assert old.memory_bytes == file_bytes + derived  # no cache yet
        assert estimate_bytes(gguf, GgmlBackend(), 64, 1, "f32") == (
            file_bytes + derived + old.cache_bytes(64)
        )
    np.testing.assert_allclose(
        old.forward([(old.new_cache(64), PROMPT)])[0],
        new.forward([(new.new_cache(64), PROMPT)])[0],
        atol=1e-4,
    )


def one_layer(tmp_path, name="deepseek2"):
    """The fixture's first block alone: in one layer a position's cached row depends on its
    token and position only, so a shifted cache must answer as a fresh one does."""
    metadata, tensors = read(fixtures.build(name, tmp_path / "full.gguf"))
    metadata["deepseek2.block_count"] = 1
    tensors = {k: t for k, t in tensors.items() if not k.startswith(("blk.1.", "blk.2."))}
    return write(tmp_path / "one.gguf", metadata, tensors)


@pytest.fixture
def wide_latent(monkeypatch):
    """deepseek2's fixture with a latent of 128 and rope keys of 64: rows of whole Q8_0 blocks,
    latent and rope key alike (as deepseek's 512 and 64)."""
    config = {**fixtures.FIXTURES["deepseek2"].config, "kv_lora_rank": 128}
    config.update(qk_rope_head_dim=64, qk_nope_head_dim=32)
    monkeypatch.setitem(
        fixtures.FIXTURES, "wide", replace(fixtures.FIXTURES["deepseek2"], config=config)
    )
    return "wide"


@pytest.mark.parametrize("cache_type", ["f16", "q8_0"])
def test_a_context_shift_rotates_the_rope_keys_only(tmp_path, wide_latent, cache_type):
    runner = load(one_layer(tmp_path, wide_latent), kv_cache_type=cache_type)
    assert runner.cache_type == cache_type
    tokens = PROMPT[:30]
    cache = runner.new_cache(64)
    runner.forward([(cache, tokens)])
    keep, discard = 4, 12
    cache.shift(keep, discard)
    kept = tokens[:keep] + tokens[keep + discard :]
    shifted = runner.forward([(cache, [50])])[0]
    fresh = runner.forward([(runner.new_cache(64), kept + [50])])[0]
    np.testing.assert_allclose(shifted, fresh, atol=0.05 if cache_type == "f16" else 0.3)

    unrotated = runner.new_cache(64)
    runner.forward([(unrotated, tokens)])
    unrotated._rotate = None
    unrotated.shift(keep, discard)
    wrong = runner.forward([(unrotated, [50])])[0]
    assert np.abs(wrong - fresh).max() > 3 * np.abs(shifted - fresh).max()


def test_a_quantized_cache_holds_the_row_unrotated(tmp_path, wide_latent):
    """Q8_0 rows of latent and rope key, without the Hadamard rotation other models' heads get
    (llama.cpp rotates no latent-attention cache): close to the float32 cache's answer."""
    path = fixtures.build(wide_latent, tmp_path / "wide.gguf")
    exact, quantized = load(path), load(path, kv_cache_type="q8_0")
    assert not any(quantized.model.rot_k + quantized.model.rot_v)
    # 64 positions take 256 cells, a block: llama.cpp rounds its context up so
    assert quantized.cache_bytes(64) == 256 * 3 * (128 + 64) // 32 * 34
    a = exact.forward([(exact.new_cache(64), PROMPT)])[0]
    b = quantized.forward([(quantized.new_cache(64), PROMPT)])[0]
    assert np.corrcoef(a, b)[0, 1] > 0.995  # 8 bits a value, over 192 values a key


def test_a_cache_type_the_rows_do_not_split_into_falls_back_to_f16(tmp_path):
    """The fixture's rows of 48 are not whole Q8_0 blocks of 32: as Ollama does, the model
    keeps the default cache type rather than failing."""
    runner = load(fixtures.build("deepseek2", tmp_path / "m.gguf"), kv_cache_type="q8_0")
    assert runner.cache_type == "f16"
    assert runner.forward([(runner.new_cache(64), PROMPT)])[0].shape == (fixtures.N_VOCAB,)


def test_the_array_engines_refuse_it(tmp_path):
    from ollamakit_numpy import NumpyBackend

    path = fixtures.build("deepseek2", tmp_path / "m.gguf")
    with pytest.raises(BadRequest, match="deepseek2 architecture with experts needs the ggml"):
        load_runner(str(path), NumpyBackend(), with_tokenizer=False)


def test_a_shared_prefix_is_copied_as_its_rows(tmp_path):
    """A slot takes another's prefix (``copy_prefix``): the latent rows, which hold the values
    too, are all there is to copy."""
    runner = load(fixtures.build("deepseek2", tmp_path / "m.gguf"))
    source, target = runner.new_cache(64), runner.new_cache(64)
    runner.forward([(source, PROMPT)])
    runner.forward([(target, PROMPT[:5])])
    assert target.copy_prefix(source, 20)
    after_copy = runner.forward([(target, PROMPT[20:24])])[0]
    fresh = runner.forward([(runner.new_cache(64), PROMPT[:24])])[0]
    np.testing.assert_allclose(after_copy, fresh, atol=1e-3)


@pytest.fixture(scope="module")
def quantized_maps(tmp_path_factory):
    """``record_latent_logits``'s model (Q4_K query, latent and shared-expert maps at width 256,
    deepseek-v2-lite's YaRN), the very file llama.cpp ran."""
    document = reference_answers("llamacpp-latent-q4k.json")
    here = cpu()
    if document["cpu"]["flags"] != here["flags"] or document["cpu"]["machine"] != here["machine"]:
        pytest.fail(
            f"the recorded logits come from a {document['cpu']['model']} with "
            f"{document['cpu']['flags']}; this CPU has {here['flags']}: record them again "
            f"with record_latent_logits.py"
        )
    path = record_latent_logits.build(tmp_path_factory.mktemp("latent-q4k"))
    assert fixtures.sha256(path) == document["sha256"], "not the file llama.cpp ran"
    runner = load(path, kv_cache_type="f16")
    yield runner, document["answers"]
    runner.close()


def test_quantized_low_rank_maps_give_llamacpps_logits_bit_for_bit(quantized_maps):
    """llama.cpp repacks every 2-D Q4_K weight of a product, deepseek2's ``attn_q_a``,
    ``attn_kv_a_mqa`` and shared experts included, and its repacked kernels sum a prompt's rows
    in another order than ggml's plain product: left in the file's layout, they put a 16-token
    prompt's logits 0.05 from llama.cpp's (the next products' 8-bit rounding of their inputs
    widens a 1e-6 difference). Float16 cache and flash attention in both, as the server runs."""
    runner, answers = quantized_maps
    for answer in answers:
        logits = runner.forward([(runner.new_cache(record_latent_logits.NUM_CTX), answer["ids"])])
        np.testing.assert_array_equal(
            np.asarray(logits[0], np.float32), np.asarray(answer["logits"], np.float32)
        )


def test_the_attention_scale_and_rope_magnitude_are_llamacpps_float32_ones(quantized_maps):
    """llama.cpp computes both in float32, an operation at a time; the float64 ones are a few
    units of the last place away (0.28100887 against 0.28100884 here), which moves every
    attention score. The values are llama.cpp's for this file: ``flash_attn_ext``'s scale and
    ``rope_ext``'s attn_factor in its graph, read through llama-cpp-python's ``cb_eval``
    (0.11472137 for deepseek-v2-lite's heads of 192, which ``bench_engine --check`` runs)."""
    hp = quantized_maps[0].model.hp
    assert np.float32(hp.attn_scale).view(np.uint32) == 0x3E8FE064  # 0.28100884
    assert np.float32(hp.rope_attn_factor).view(np.uint32) == 0x3F3B035C  # 0.73052
