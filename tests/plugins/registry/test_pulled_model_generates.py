"""A pulled model runs: it generates exactly what the model it was pushed from generates."""

from __future__ import annotations

import pytest
from registry_helpers import create_smol


@pytest.mark.real_model
@pytest.mark.slow
def test_pulled_model_generates_like_the_original(instance, local_registry, smol_gguf):
    source, target = instance("source"), instance("target")
    name = f"{local_registry.host}/library/smol:latest"
    create_smol(source, name, smol_gguf)
    assert source.push(name)[-1] == {"status": "success"}
    assert target.pull(name)[-1] == {"status": "success"}

    request = {
        "model": name,
        "prompt": "The capital of France is",
        "stream": False,
        "options": {"temperature": 0, "num_predict": 8, "seed": 1},
    }
    replies = []
    for inst in (source, target):
        result = inst.client.simulate_post("/api/generate", json=request)
        assert result.status_code == 200, result.text
        replies.append(result.json["response"])
    assert replies[0] and replies[0] == replies[1]
