"""``/api/create`` with ``quantize``: progress lines, the stored layer, /api/show, and a real model
that still talks after quantization."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from ollamakit.lib.gguf import GGUFFile
from ollamakit_quant.quantizer import quantize_file

from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit.testing.reference import reference_answers

FOURTEEN = "Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_0, Q4_1, Q4_K_S, Q4_K_M, Q5_0, Q5_1, Q5_K_S, Q5_K_M, Q6_K, Q8_0"


def upload_file(client, path) -> str:
    data = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    response = client.simulate_post(f"/api/blobs/{digest}", body=data)
    assert response.status_code in (200, 201), response.text
    return digest


def create(client, **body) -> list[dict]:
    response = client.simulate_post("/api/create", json=body)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line]


def model_layer(client, models_dir, name):
    manifest = json.loads(
        (models_dir / "manifests" / "registry.ollama.ai" / "library" / name / "latest").read_bytes()
    )
    layer = next(
        layer
        for layer in manifest["layers"]
        if layer["mediaType"] == "application/vnd.ollama.image.model"
    )
    return models_dir / "blobs" / layer["digest"].replace(":", "-")


def test_create_quantizes_and_show_reports_the_type(client, models_dir, tmp_path):
    source = tiny_llama(
        tmp_path / "f16.gguf",
        n_layers=2,
        n_embd=256,
        n_heads=4,
        n_kv_heads=1,
        n_ff=256,
        dtype=np.float16,
    )
    events = create(
        client, model="tiny-q", files={"model.gguf": upload_file(client, source)}, quantize="q4_K_M"
    )
    status = "quantizing F16 model to Q4_K_M"
    progress = [e for e in events if e["status"] == status]
    assert progress[0] == {
        "status": status,
        "digest": "0000000000000000000",
        "total": 0,
        "completed": 0,
    }
    assert all(e["digest"] == "0" * 19 for e in progress)
    completed = [e["completed"] for e in progress[1:]]
    assert len(completed) == 2 * 9 + 3 and completed == sorted(completed)  # one line per tensor
    assert progress[-1]["total"] == progress[-1]["completed"] == source.stat().st_size
    assert events[-1] == {"status": "success"}

    shown = client.simulate_post("/api/show", json={"model": "tiny-q"}).json
    assert shown["details"]["quantization_level"] == "Q4_K_M"
    stored = model_layer(client, models_dir, "tiny-q")
    direct = quantize_file(source, tmp_path / "direct.gguf", "Q4_K_M")
    assert (
        stored.read_bytes() == direct.read_bytes()
    )  # deterministic, and exactly the quantizer's output
    with GGUFFile.open(stored) as gguf:
        # two layers: use_more_bits picks only the last (i >= 7 * 2 // 8)
        assert gguf.tensor_info("blk.0.attn_v.weight").type_name == "Q4_K"
        assert gguf.tensor_info("blk.1.attn_v.weight").type_name == "Q6_K"
        assert gguf.tensor_info("blk.0.attn_q.weight").type_name == "Q4_K"


def test_unknown_type_lists_all_fourteen(client, tmp_path):
    source = tiny_llama(tmp_path / "f16.gguf", n_layers=1, dtype=np.float16)
    response = client.simulate_post(
        "/api/create",
        json={
            "model": "x",
            "files": {"m.gguf": upload_file(client, source)},
            "quantize": "q3_K_XL",
        },
    )
    assert response.status_code == 400
    prefix = "unsupported quantization type Q3_K_XL - supported types are "
    message = response.json["error"]
    assert message.startswith(prefix)
    assert sorted(message[len(prefix) :].split(", ")) == sorted(FOURTEEN.split(", "))


@pytest.mark.real_model
@pytest.mark.slow
def test_real_model_quantized_through_create_still_generates(client, models_dir, smollm2_f16_path):
    """SmolLM2 in F16, quantized by /api/create to Q8_0: /api/show says so, and the quantized
    model follows the F16 source's own greedy continuation (Q8_0 is near-lossless)."""
    events = create(
        client,
        model="smol-q8",
        files={"model.gguf": upload_file(client, smollm2_f16_path)},
        quantize="q8_0",
    )
    assert any(e["status"] == "quantizing F16 model to Q8_0" for e in events)
    assert (
        client.simulate_post("/api/show", json={"model": "smol-q8"}).json["details"][
            "quantization_level"
        ]
        == "Q8_0"
    )
    import ollamakit_engine as engine
    import ollamakit_numpy as numpy_backend

    reference = reference_answers("llamacpp-greedy.json")
    prompt = list(reference["models"]["SmolLM2-135M-Instruct.Q4_1.gguf"]["greedy"][0]["prompt_ids"])
    backend = numpy_backend.NumpyBackend()

    def greedy(path, forced=None, steps=32):
        """Top choices and logits along ``forced`` (or the model's own greedy path)."""
        runner = engine.load_runner(path, backend, with_tokenizer=False)
        cache = runner.new_cache(num_ctx=256)
        logits = runner.forward([(cache, prompt)])[0]
        chosen, seen = [], []
        for step in range(steps):
            chosen.append(int(np.argmax(logits)))
            seen.append(logits)
            logits = runner.forward([(cache, [forced[step] if forced else chosen[-1]])])[0]
        runner.close()
        return chosen, seen

    source, source_logits = greedy(smollm2_f16_path)
    # Teacher forcing along the F16 continuation: Q8_0 must pick the same token wherever the
    # source's choice is clear; it may flip only a near-tie (Q8_0 moves logits by ~0.5).
    quantized, _ = greedy(model_layer(client, models_dir, "smol-q8"), forced=source)
    for step, (want, got, logits) in enumerate(zip(source, quantized, source_logits)):
        if want != got:
            assert logits[want] - logits[got] < 0.25, (step, want, got, logits[want] - logits[got])
    assert sum(a == b for a, b in zip(source, quantized)) >= 28, (source, quantized)
