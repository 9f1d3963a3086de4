"""A server run with ``OLLAMAKIT_NUMERICS=llama.cpp`` answers ``/api/generate`` with llama.cpp's
own greedy tokens, through the official client, where the default float32 engine parts from them."""

from __future__ import annotations

import pytest

from ollamakit.testing.reference import reference_answers

TOKENS = 6  # float32 parts from llama.cpp at the 3rd token of this prompt


@pytest.mark.real_model
def test_llamacpp_numerics_server_generates_llamacpps_tokens(tmp_path):
    import ollama

    from ollamakit.testing import models
    from ollamakit.testing.fixtures import ServerProcess

    case = reference_answers("llamacpp-greedy.json")["models"]["SmolLM2-135M-Instruct.Q4_1.gguf"]["greedy"][2]
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    server = ServerProcess(models_dir, env={"OLLAMAKIT_NUMERICS": "llama.cpp"}).start()
    try:
        client = ollama.Client(host=server.url, timeout=600)
        client.create(model="smol", files={"smol.gguf": client.create_blob(models.smollm2_q4_1())})
        reply = client.generate(
            model="smol", prompt=case["prompt"], raw=True, options={"temperature": 0, "num_predict": TOKENS}
        )
    finally:
        server.stop()
    assert reply.eval_count == TOKENS and reply.done_reason == "length"
    assert reply.response and case["greedy_text"].startswith(reply.response)
