"""gemma4 created from its GGUF and from its Hugging Face folder: the same model.

The tiny gemma4 fixture (``ollamakit.testing.architectures``, whose answers are llama.cpp's in
``test_architectures``) is written back as the folder ``Gemma4ForCausalLM`` saves (the names
and config of ``arch_folders``, its own weights), and both are created through ``/api/create``:
the folder's model file holds the fixture's tensors bit for bit and generates the same tokens.
Neither has a vision tower, so an image sent to either is a 400, never read as text alone.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import save_file

import arch_folders
from hf_export import folder_files
from ollamakit.lib.gguf import GGUFFile
from ollamakit.testing import architectures as fixtures
from test_arch_folders import model_layer
from test_create_from_folder import upload

F16 = 1  # ggml type
HF_LAYER = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}


def export(gguf_path: Path, folder: Path) -> Path:
    """The fixture as a Hugging Face folder: its tensors under transformers' names (matrices
    float16 as in the file, norms and layer scalars float32), ``rope_freqs`` left to the
    converter to compute from the config."""
    arch_folders.write("gemma4", folder)  # config.json and the tokenizer's files
    weights = {}
    with GGUFFile.open(gguf_path) as gguf:
        for info in gguf.tensors:
            if info.name == "rope_freqs.weight":
                continue
            array = np.ascontiguousarray(gguf.tensor(info.name))
            if info.ggml_type == F16:
                array = array.astype(np.float16)
            if info.name.startswith("blk."):
                _, index, part, _ = info.name.split(".")
                name = f"model.layers.{index}." + (
                    "layer_scalar" if part == "layer_output_scale" else f"{HF_LAYER[part]}.weight"
                )
            else:
                name = {"token_embd.weight": "model.embed_tokens.weight"}.get(
                    info.name, "model.norm.weight"
                )
            weights[name] = array
    save_file(weights, str(folder / "model.safetensors"))
    return folder


def png() -> str:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gemma4")
    gguf = fixtures.build("gemma4", folder / "gemma4.gguf")
    return gguf, export(gguf, folder / "hf")


def greedy(client, model: str, prompt: str) -> list[tuple[str, float]]:
    reply = client.simulate_post(
        "/api/generate",
        json={
            "model": model,
            "prompt": prompt,
            "raw": True,
            "stream": False,
            "logprobs": True,
            "options": {"num_predict": 12, "temperature": 0, "num_ctx": fixtures.NUM_CTX},
        },
    )
    assert reply.status_code == 200, reply.text
    return [(entry["token"], round(entry["logprob"], 4)) for entry in reply.json["logprobs"]]


def test_the_folder_and_the_gguf_give_the_same_model(client, models_dir, sources):
    gguf, folder = sources
    digest = upload(client, {"m.gguf": gguf})["m.gguf"]
    created = client.simulate_post(
        "/api/create", json={"model": "g4-gguf", "files": {"m.gguf": digest}}
    )
    assert created.status_code == 200, created.text
    created = client.simulate_post(
        "/api/create",
        json={"model": "g4-folder", "files": upload(client, folder_files(folder))},
    )
    assert created.status_code == 200, created.text
    with (
        GGUFFile.open(model_layer(models_dir, "g4-folder")) as converted,
        GGUFFile.open(gguf) as original,
    ):
        assert sorted(t.name for t in converted.tensors) == sorted(t.name for t in original.tensors)
        for t in original.tensors:
            assert converted.raw(t.name).tobytes() == original.raw(t.name).tobytes(), t.name
        for key, value in original.metadata.items():
            if key.startswith("gemma4."):
                assert converted.metadata[key] == pytest.approx(value), key
    for prompt in fixtures.PROMPTS:
        assert greedy(client, "g4-folder", prompt) == greedy(client, "g4-gguf", prompt)


@pytest.mark.parametrize("source", ["gguf", "folder"])
def test_an_image_to_text_only_gemma4_is_refused(client, sources, source):
    gguf, folder = sources
    files = {"m.gguf": gguf} if source == "gguf" else folder_files(folder)
    name = f"g4-text-{source}"
    created = client.simulate_post(
        "/api/create", json={"model": name, "files": upload(client, files)}
    )
    assert created.status_code == 200, created.text
    shown = client.simulate_post("/api/show", json={"model": name}).json
    assert "vision" not in shown["capabilities"]
    body = {"model": name, "prompt": "what colour?", "images": [png()], "stream": False}
    reply = client.simulate_post("/api/generate", json=body)
    assert reply.status_code == 400
    assert reply.json == {"error": "this model is missing data required for image input"}
    chat = {
        "model": name,
        "messages": [{"role": "user", "content": "what colour?", "images": [png()]}],
        "stream": False,
    }
    reply = client.simulate_post("/api/chat", json=chat)
    assert reply.status_code == 400 and "image input" in reply.json["error"]


def test_configs_gemma4_runs_otherwise_are_refused_by_name(client, sources, tmp_path):
    """The E2B/E4B models' per-layer embeddings, shared keys and values, and 26B-A4B's
    experts: a 400 at create that names them."""
    _, folder = sources
    for change, named in (
        ({"hidden_size_per_layer_input": 256}, "per-layer embeddings"),
        ({"num_kv_shared_layers": 2}, "reuse another layer's keys and values"),
        ({"enable_moe_block": True}, "experts"),
        ({"use_bidirectional_attention": "all"}, "bidirectional attention"),
        ({"rope_parameters": {"sliding_attention": -1}}, "sliding_attention must be an object"),
        ({"rope_parameters": [1, 2]}, "rope_parameters must be an object"),
    ):
        config = json.loads((folder / "config.json").read_text())
        changed = tmp_path / "changed"
        changed.mkdir(exist_ok=True)
        for path in folder.iterdir():
            (changed / path.name).write_bytes(path.read_bytes())
        (changed / "config.json").write_text(json.dumps({**config, **change}))
        reply = client.simulate_post(
            "/api/create",
            json={"model": "g4-refused", "files": upload(client, folder_files(changed))},
        )
        assert reply.status_code == 400, change
        assert named in reply.json["error"]


def test_quantize_on_create_keeps_what_gemma4_reads_exactly(client, models_dir, sources):
    """A create with ``quantize`` quantizes the matrices and keeps the rope factors and each
    block's output scale as they are; the model generates."""
    _, folder = sources
    created = client.simulate_post(
        "/api/create",
        json={"model": "g4-q", "files": upload(client, folder_files(folder)), "quantize": "q4_K_M"},
    )
    assert created.status_code == 200, created.text
    with GGUFFile.open(model_layer(models_dir, "g4-q")) as gguf:
        types = {t.name: t.ggml_type for t in gguf.tensors}
        assert types["rope_freqs.weight"] == types["blk.0.layer_output_scale.weight"] == 0  # F32
        assert types["blk.1.attn_q.weight"] not in (0, F16)
    reply = client.simulate_post(
        "/api/generate",
        json={
            "model": "g4-q",
            "prompt": "Once",
            "raw": True,
            "stream": False,
            "options": {"num_predict": 4},
        },
    )
    assert reply.status_code == 200 and reply.json["eval_count"] >= 1
