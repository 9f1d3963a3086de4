"""Create from gpt-oss's original checkpoint layout (OpenAI's ``original/`` folder: ``block.N.*``
tensors, queries, keys and values in one matrix, its own config keys), as Ollama converts it.

The folder is the seeded Hugging Face gpt-oss folder of ``arch_folders`` (MXFP4 experts) laid out
as the original release lays it out, with a config naming ``GptOssForCausalLM`` and no
``max_position_embeddings``, which is how Ollama tells the layouts apart. It converts to the
tensors of the Hugging Face folder, but for ``attn_qkv`` (Ollama's name), which is their
``attn_q``, ``attn_k`` and ``attn_v`` one after another; and both files give the same greedy
tokens and logprobs through the engine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ollamakit_engine import load_runner
from ollamakit_ggml import GgmlBackend
from ollamakit_safetensors.convert import plan_conversion
from ollamakit_safetensors.folder import ModelFolder
from safetensors.numpy import load_file, save_file

import arch_folders
from hf_export import folder_files
from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf import GGUFFile
from ollamakit.testing import architectures as fixtures
from test_create_from_folder import upload

RENAMED = {
    "input_layernorm.weight": "attn.norm.scale",
    "self_attn.o_proj.weight": "attn.out.weight",
    "self_attn.o_proj.bias": "attn.out.bias",
    "self_attn.sinks": "attn.sinks",
    "post_attention_layernorm.weight": "mlp.norm.scale",
    "mlp.router.weight": "mlp.gate.weight",
    "mlp.router.bias": "mlp.gate.bias",
    "mlp.experts.gate_up_proj_blocks": "mlp.mlp1_weight.blocks",
    "mlp.experts.gate_up_proj_scales": "mlp.mlp1_weight.scales",
    "mlp.experts.gate_up_proj_bias": "mlp.mlp1_bias",
    "mlp.experts.down_proj_blocks": "mlp.mlp2_weight.blocks",
    "mlp.experts.down_proj_scales": "mlp.mlp2_weight.scales",
    "mlp.experts.down_proj_bias": "mlp.mlp2_bias",
}
TOP = {"model.embed_tokens.weight": "embedding.weight", "model.norm.weight": "norm.scale"}
TOP["lm_head.weight"] = "unembedding.weight"


def original_config(hf: dict) -> dict:
    """The original release's config.json keys for the Hugging Face config ``hf``, with the
    architecture named (Ollama converts nothing without it)."""
    rope = hf["rope_parameters"]
    return {
        "architectures": ["GptOssForCausalLM"],
        "num_hidden_layers": hf["num_hidden_layers"],
        "num_experts": hf["num_local_experts"],
        "experts_per_token": hf["num_experts_per_tok"],
        "vocab_size": hf["vocab_size"],
        "hidden_size": hf["hidden_size"],
        "intermediate_size": hf["intermediate_size"],
        "swiglu_limit": 7.0,
        "head_dim": hf["head_dim"],
        "num_attention_heads": hf["num_attention_heads"],
        "num_key_value_heads": hf["num_key_value_heads"],
        "sliding_window": hf["sliding_window"],
        "initial_context_length": rope["original_max_position_embeddings"],
        "rope_theta": rope["rope_theta"],
        "rope_scaling_factor": rope["factor"],
        "rope_ntk_alpha": 1.0,
        "rope_ntk_beta": 32.0,
        "rms_norm_eps": hf["rms_norm_eps"],
    }


def write_original(hf_folder: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    hf = json.loads((hf_folder / "config.json").read_text())
    weights = load_file(hf_folder / "model.safetensors")
    out = {TOP[name]: weights[name] for name in TOP}
    for i in range(hf["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for kind in ("weight", "bias"):
            parts = [weights[f"{p}self_attn.{x}_proj.{kind}"] for x in "qkv"]
            out[f"block.{i}.attn.qkv.{kind}"] = np.concatenate(parts)
        for name, original in RENAMED.items():
            out[f"block.{i}.{original}"] = weights[p + name]
    save_file(out, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(original_config(hf)))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(hf_folder / name, folder / name)
    return folder


def convert(folder: Path, out: Path) -> Path:
    with ModelFolder(folder_files(folder)) as files:
        return plan_conversion(files, "oss").write(out)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpt-oss-original")
    hf = arch_folders.write("gpt-oss", root / "hf")
    original = write_original(hf, root / "original")
    return convert(hf, root / "hf.gguf"), convert(original, root / "original.gguf")


def test_the_original_layout_converts_to_the_hugging_face_tensors(files):
    hf_path, original_path = files
    with GGUFFile.open(hf_path) as hf, GGUFFile.open(original_path) as original:
        names = {t.name for t in original.tensors}
        separate = {t.name for t in hf.tensors if ".attn_q." in t.name or ".attn_k." in t.name}
        separate |= {t.name for t in hf.tensors if ".attn_v." in t.name}
        fused = {n.replace(".attn_q.", ".attn_qkv.") for n in separate if ".attn_q." in n}
        assert names == ({t.name for t in hf.tensors} - separate) | fused
        for name in names - fused:
            assert original.tensor_info(name).ggml_type == hf.tensor_info(name).ggml_type, name
            assert original.raw(name).tobytes() == hf.raw(name).tobytes(), name
        for name in fused:
            parts = [hf.raw(name.replace(".attn_qkv.", f".attn_{x}.")) for x in "qkv"]
            np.testing.assert_array_equal(original.raw(name), np.concatenate(parts))
        # the keys as the Hugging Face file's, but YaRN's betas, which only its config states
        # (at ggml's defaults)
        betas = {"gpt-oss.rope.scaling.yarn_beta_fast", "gpt-oss.rope.scaling.yarn_beta_slow"}
        want = {k: v for k, v in hf.metadata.items() if k not in betas}
        assert dict(original.metadata) == want


def test_the_original_layout_runs_as_the_hugging_face_one(files):
    results = []
    for path in files:
        runner = load_runner(
            str(path),
            GgmlBackend(),
            {"num_thread": 2, "kv_cache_type": "f32"},
            with_tokenizer=False,
        )
        try:
            results.append(fixtures.ours_steps(runner, fixtures.prompt_ids(fixtures.PROMPTS[0]), 8))
        finally:
            runner.close()
    hf, original = results
    assert [s["id"] for s in original] == [s["id"] for s in hf]
    worst = max(float(np.abs(a["logprobs"] - b["logprobs"]).max()) for a, b in zip(original, hf))
    assert worst < 1e-4, worst


def test_the_original_layout_creates_and_generates(client, tmp_path):
    original = write_original(arch_folders.write("gpt-oss", tmp_path / "hf"), tmp_path / "o")
    reply = client.simulate_post(
        "/api/create",
        json={"model": "oss", "files": upload(client, folder_files(original)), "stream": False},
    )
    assert reply.status_code == 200, reply.text
    generated = client.simulate_post(
        "/api/generate",
        json={
            "model": "oss",
            "prompt": "Once upon a time",
            "raw": True,
            "stream": False,
            "options": {"num_predict": 4, "temperature": 0},
        },
    )
    assert generated.status_code == 200 and generated.json["eval_count"] >= 1


@pytest.mark.parametrize(
    "change,message",
    [
        # OpenAI's own config.json, which names no architecture: Ollama refuses it too
        (
            lambda c: c.pop("architectures"),
            r"does not name the model\'s architecture \(for gpt-oss\'s original layout, add "
            r'"architectures": \["GptOssForCausalLM"\]\)',
        ),
        (lambda c: c.update(rope_ntk_beta=16.0), "rope_ntk_beta other than 32"),
        (lambda c: c.pop("rope_scaling_factor"), "config.json lacks rope_scaling_factor"),
    ],
)
def test_what_the_original_layout_cannot_convert_is_refused(tmp_path, change, message):
    original = write_original(arch_folders.write("gpt-oss", tmp_path / "hf"), tmp_path / "o")
    config = json.loads((original / "config.json").read_text())
    change(config)
    (original / "config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidModelFile, match=message):
        convert(original, tmp_path / "out.gguf")


def test_float_experts_in_the_original_layout_are_refused(tmp_path):
    """Ollama would write them unsplit, as one gate-and-up tensor no engine reads."""
    original = write_original(arch_folders.write("gpt-oss", tmp_path / "hf"), tmp_path / "o")
    weights = load_file(original / "model.safetensors")
    for i in range(2):
        blocks = weights.pop(f"block.{i}.mlp.mlp1_weight.blocks")
        weights.pop(f"block.{i}.mlp.mlp1_weight.scales")
        weights[f"block.{i}.mlp.mlp1_weight"] = np.zeros(blocks.shape[:2] + (64,), np.float16)
    save_file(weights, str(original / "model.safetensors"))
    with pytest.raises(InvalidModelFile, match="converts with MXFP4 experts"):
        convert(original, tmp_path / "out.gguf")
