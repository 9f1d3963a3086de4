"""Conversion of small Hugging Face folders to GGUF: names, types, metadata and tensor values as
llama.cpp's converter writes them, and models the engine then runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ollamakit.errors import InvalidModelFile
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit.lib.gguf.reader import GGUFFile
from ollamakit_numpy import NumpyBackend
from ollamakit_safetensors import ModelFolder, plan_conversion

from hf_export import export_llama, folder_files
from tiny_folders import BERT_WORDS, bert_folder, gemma3_folder, qwen2_folder


def convert(folder, out):
    with ModelFolder(folder_files(folder)) as files:
        plan_conversion(files, "test").write(out)
    return out


def tensors_of(path):
    with GGUFFile.open(path) as gguf:
        types = {t.name: t.type_name for t in gguf.tensors}
        values = {t.name: np.array(gguf.tensor(t.name), dtype=np.float32) for t in gguf.tensors}
        return dict(gguf.metadata), types, values


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_llama_round_trip_is_bit_exact(tmp_path, dtype):
    original = tiny_llama(tmp_path / "orig.gguf", n_layers=2)
    expected = export_llama(original, tmp_path / "hf", dtype=dtype)
    converted = convert(tmp_path / "hf", tmp_path / "conv.gguf")

    meta, types, raw = tensors_of(converted)
    with GGUFFile.open(original) as gguf:
        original_meta = dict(gguf.metadata)
    assert set(raw) == set(expected)
    for name, array in expected.items():
        assert types[name] == ("F32" if array.dtype == np.float32 else "F16"), name
        np.testing.assert_array_equal(
            raw[name].reshape(array.shape), array.astype(np.float32), name
        )
    for key in (
        "block_count",
        "embedding_length",
        "feed_forward_length",
        "attention.head_count",
        "attention.head_count_kv",
        "context_length",
        "rope.dimension_count",
        "vocab_size",
    ):
        assert meta[f"llama.{key}"] == original_meta[f"llama.{key}"], key
    assert meta["llama.rope.freq_base"] == pytest.approx(original_meta["llama.rope.freq_base"])
    for key in (
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
    ):
        assert meta[key] == original_meta[key], key
    assert meta["general.file_type"] == (1 if dtype == np.float16 else 0)

    from ollamakit_engine import load_runner

    prompt = [1, 40, 41, 42, 43, 44]
    logits = []
    for path in (converted, tmp_path / "direct.gguf"):
        if path.name == "direct.gguf":  # the original weights at the same precision
            _write_like(original, expected, path)
        runner = load_runner(path, NumpyBackend())
        logits.append(runner.forward([(runner.new_cache(32), prompt)])[0])
    np.testing.assert_array_equal(logits[0], logits[1])


def _write_like(original, arrays, path):
    from ollamakit.lib.gguf.writer import GGUFWriter

    with GGUFFile.open(original) as gguf:
        writer = GGUFWriter(path)
        writer.add_metadata(gguf.metadata, gguf.metadata_types)
    for name, array in arrays.items():
        writer.add_tensor(name, array)
    writer.write()


def test_qwen2_keeps_biases_and_finds_its_pre_tokenizer(tmp_path):
    weights = qwen2_folder(tmp_path / "hf")
    meta, types, raw = tensors_of(convert(tmp_path / "hf", tmp_path / "q.gguf"))
    assert meta["general.architecture"] == "qwen2"
    assert meta["tokenizer.ggml.model"] == "gpt2"
    assert meta["tokenizer.ggml.pre"] == "qwen2"
    assert meta["tokenizer.ggml.merges"] == ["Ġ t", "h e"]
    assert meta["tokenizer.ggml.token_type"][-3:] == [3, 3, 3]
    assert meta["tokenizer.ggml.eos_token_id"] == len(meta["tokenizer.ggml.tokens"]) - 1
    assert "tokenizer.ggml.bos_token_id" not in meta
    assert meta["tokenizer.chat_template"].startswith("{% for m in messages %}")
    assert "output.weight" not in raw  # tied embeddings
    assert types["blk.0.attn_q.bias"] == "F32" and types["blk.0.attn_q.weight"] == "F16"
    # qwen2 rotates halves: no permutation
    np.testing.assert_array_equal(
        raw["blk.1.attn_k.weight"], weights["model.layers.1.self_attn.k_proj.weight"]
    )
    np.testing.assert_array_equal(
        raw["blk.0.attn_v.bias"], weights["model.layers.0.self_attn.v_proj.bias"]
    )

    from ollamakit_engine import load_runner

    runner = load_runner(tmp_path / "q.gguf", NumpyBackend())
    assert runner.tokenizer.encode("the", add_special=True) == [runner.tokenizer.token_id("t"), 257]
    logits = runner.forward([(runner.new_cache(16), [1, 2, 3])])[0]
    assert logits.shape == (len(meta["tokenizer.ggml.tokens"]),) and np.isfinite(logits).all()


def test_gemma3_norms_store_one_plus_weight(tmp_path):
    weights = gemma3_folder(tmp_path / "hf")
    meta, types, raw = tensors_of(convert(tmp_path / "hf", tmp_path / "g.gguf"))
    assert meta["general.architecture"] == "gemma3"
    assert meta["gemma3.attention.sliding_window"] == 16
    assert meta["gemma3.attention.key_length"] == 32
    for hf, gguf in (
        ("model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"),
        ("model.layers.1.post_attention_layernorm.weight", "blk.1.post_attention_norm.weight"),
        ("model.layers.0.pre_feedforward_layernorm.weight", "blk.0.ffn_norm.weight"),
        ("model.layers.0.self_attn.q_norm.weight", "blk.0.attn_q_norm.weight"),
        ("model.norm.weight", "output_norm.weight"),
    ):
        np.testing.assert_array_equal(raw[gguf], weights[hf] + np.float32(1), gguf)
    tokens = meta["tokenizer.ggml.tokens"]
    assert meta["tokenizer.ggml.model"] == "llama"
    assert meta["tokenizer.ggml.add_space_prefix"] is False
    types_ = meta["tokenizer.ggml.token_type"]
    assert types_[tokens.index("<0x41>")] == 6 and types_[tokens.index("<bos>")] == 3
    assert types_[tokens.index("\n")] == 4
    scores = meta["tokenizer.ggml.scores"]
    assert scores[tokens.index("▁a")] > scores[tokens.index("▁ab")]  # earlier pieces merge first
    assert meta["tokenizer.ggml.add_bos_token"] is True and meta["tokenizer.ggml.bos_token_id"] == 2

    from ollamakit_engine import load_runner

    runner = load_runner(tmp_path / "g.gguf", NumpyBackend())
    assert runner.tokenizer.encode(" ab", add_special=True) == [2, tokens.index("▁ab")]
    assert np.isfinite(runner.forward([(runner.new_cache(16), [2, 261, 262])])[0]).all()


def _layer_norm(x, w, b, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def bert_reference(weights, ids, heads=4):
    """BERT written out plainly in float64: the answer the engine must give."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][: len(ids)]
    )
    x = _layer_norm(
        x + w["embeddings.token_type_embeddings.weight"][0],
        w["embeddings.LayerNorm.weight"],
        w["embeddings.LayerNorm.bias"],
    )
    erf = np.vectorize(math.erf)
    for i in range(2):
        p = f"encoder.layer.{i}."

        def lin(h, name):
            return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q, k, v = (
            lin(x, f"attention.self.{n}").reshape(len(ids), heads, -1).transpose(1, 0, 2)
            for n in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        attn = (probs @ v).transpose(1, 0, 2).reshape(len(ids), -1)
        x = _layer_norm(
            x + lin(attn, "attention.output.dense"),
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
        )
        h = lin(x, "intermediate.dense")
        h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
        x = _layer_norm(
            x + lin(h, "output.dense"),
            w[p + "output.LayerNorm.weight"],
            w[p + "output.LayerNorm.bias"],
        )
    return x


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_bert_embeddings_match_a_plain_reference(tmp_path, pooling, build_bert):
    weights = bert_folder(tmp_path / "hf", pooling=pooling, normalize=pooling == "mean")
    path = convert(tmp_path / "hf", tmp_path / "b.gguf")
    meta, types, raw = tensors_of(path)
    assert meta["bert.pooling_type"] == (1 if pooling == "mean" else 2)
    assert meta["bert.normalize_embeddings"] is (pooling == "mean")
    assert meta["bert.attention.causal"] is False
    assert meta["tokenizer.ggml.token_type_count"] == 2
    assert meta["tokenizer.ggml.tokens"][BERT_WORDS.index("##s")] == "s"
    assert meta["tokenizer.ggml.tokens"][BERT_WORDS.index("cat")] == "\u2581cat"
    assert meta["tokenizer.ggml.bos_token_id"] == BERT_WORDS.index("[CLS]")
    assert meta["tokenizer.ggml.seperator_token_id"] == BERT_WORDS.index("[SEP]")
    assert types["position_embd.weight"] == "F32" and types["token_types.weight"] == "F32"
    assert not any(name.startswith("pooler") for name in raw)

    from ollamakit.lib.tokenizers import load_tokenizer

    with GGUFFile.open(path) as gguf:
        runner = build_bert(gguf, load_tokenizer(gguf.metadata))
    texts = ["The cats sat on a mat.", "a dog", "the dog sat on the cat, the mat"]
    batch = [runner.tokenizer.encode(t) for t in texts]
    assert batch[1] == [3, 12, 13, 4]
    for ids, got in zip(batch, runner.embed(batch)):
        hidden = bert_reference(weights, ids)
        want = hidden.mean(0) if pooling == "mean" else hidden[0]
        if pooling == "mean":
            want = want / np.linalg.norm(want)
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_bert_batches_of_different_lengths_do_not_mix(tmp_path, build_bert):
    bert_folder(tmp_path / "hf")
    path = convert(tmp_path / "hf", tmp_path / "b.gguf")

    with GGUFFile.open(path) as gguf:
        runner = build_bert(gguf)
    inputs = [[3] + [6 + (i % 9)] * n + [4] for i, n in enumerate([1, 30, 5, 12, 2, 40])]
    alone = [runner.embed([ids])[0] for ids in inputs]
    together = runner.embed(inputs)
    for a, b in zip(alone, together):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _edit_json(path, **changes):
    value = json.loads(path.read_text())
    value.update(changes)
    path.write_text(json.dumps(value))


@pytest.mark.parametrize(
    "breakage, message",
    [
        (
            lambda f: _edit_json(f / "config.json", architectures=["MambaForCausalLM"]),
            'unsupported architecture "MambaForCausalLM"',
        ),
        (lambda f: (f / "config.json").unlink(), "no config.json"),
        (lambda f: _edit_json(f / "config.json", hidden_size=48), "config.json implies"),
        (lambda f: _edit_json(f / "config.json", num_hidden_layers=3), "lacks tensors blk.2."),
        (
            lambda f: _edit_json(
                f / "config.json", rope_scaling={"rope_type": "dynamic", "factor": 4.0}
            ),
            "rope scaling 'dynamic'",
        ),
        (
            lambda f: _edit_json(
                f / "config.json", rope_scaling={"rope_type": "yarn", "factor": 4.0}
            ),
            "lacks original_max_position_embeddings",
        ),
        (lambda f: _edit_json(f / "config.json", num_attention_heads=True), "num_attention_heads"),
        (
            lambda f: _edit_json(
                f / "tokenizer.json",
                pre_tokenizer={
                    "type": "Sequence",
                    "pretokenizers": [
                        {"type": "Split", "pattern": {"Regex": "x+"}},
                        {"type": "ByteLevel", "use_regex": False},
                    ],
                },
            ),
            "splits words in a way no known model family does",
        ),
        (
            lambda f: _edit_json(f / "tokenizer.json", pre_tokenizer={"type": "Whitespace"}),
            "neither byte-level nor",
        ),
        (lambda f: (f / "tokenizer.json").write_text("{"), "tokenizer.json is not valid JSON"),
    ],
)
def test_unconvertible_folders_are_a_clear_400(tmp_path, breakage, message):
    qwen2_folder(tmp_path / "hf")
    breakage(tmp_path / "hf")
    with pytest.raises(InvalidModelFile) as info:
        with ModelFolder(folder_files(tmp_path / "hf")) as files:
            plan_conversion(files, "x")
    assert info.value.status == 400
    assert message in info.value.message


def test_unknown_tensor_and_unsupported_module_are_refused(tmp_path):
    from safetensors.numpy import save_file

    qwen2_folder(tmp_path / "q")
    save_file(
        {"vision_tower.proj.weight": np.zeros((2, 2), np.float32)},
        str(tmp_path / "q" / "extra.safetensors"),
    )
    with pytest.raises(InvalidModelFile, match="vision_tower.proj.weight"):
        with ModelFolder(folder_files(tmp_path / "q")) as files:
            plan_conversion(files)

    bert_folder(tmp_path / "b")
    modules = json.loads((tmp_path / "b" / "modules.json").read_text())
    modules.append(
        {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (tmp_path / "b" / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(InvalidModelFile, match="module Dense is not supported"):
        with ModelFolder(folder_files(tmp_path / "b")) as files:
            plan_conversion(files)
