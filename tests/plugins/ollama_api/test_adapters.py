"""A model created with a LoRA adapter answers with it, through a real server and the official
client; an adapter that does not fit its model is refused at create with nothing stored."""

from __future__ import annotations

import ollama
import pytest

from ollamakit.testing import agreement, models
from ollamakit.testing.gguf_factory import tiny_llama

from model_store_helpers import snapshot

pytestmark = [pytest.mark.real_model, pytest.mark.slow]

GREEDY = {"temperature": 0, "num_predict": 24, "seed": 1}


def answer(client, model: str) -> str:
    return client.generate(
        model=model, prompt=agreement.PROMPTS[0], raw=True, options=GREEDY
    ).response


def test_an_adapter_changes_the_answers_and_is_refused_where_it_does_not_fit(
    server, models_dir, tmp_path
):
    client = ollama.Client(host=server.url)
    base = client.create_blob(models.smollm2_q4_1())
    adapter = client.create_blob(models.smollm2_random_lora())
    client.create(model="smol", files={"smol.gguf": base})
    client.create(model="smol-tuned", files={"smol.gguf": base}, adapters={"lora.gguf": adapter})

    assert "ADAPTER " in client.show("smol-tuned").modelfile
    tuned, plain = answer(client, "smol-tuned"), answer(client, "smol")
    assert tuned and plain and tuned != plain
    assert answer(client, "smol-tuned") == tuned  # greedy: the same again, from the same runner

    # a llama adapter of another width: refused before any manifest is written
    other = tiny_llama(tmp_path / "tiny.gguf")
    wrong = client.create_blob(models.random_lora(other, tmp_path / "tiny-lora.gguf"))
    before = snapshot(models_dir)
    with pytest.raises(ollama.ResponseError) as refused:
        client.create(
            model="smol-wrong",
            files={"smol.gguf": base},
            adapters={"lora.gguf": wrong},
            stream=False,
        )
    assert refused.value.status_code == 400
    assert 'adapter "lora.gguf" does not fit the model' in refused.value.error
    assert "do not fit its shape" in refused.value.error
    assert snapshot(models_dir) == before
    assert "smol-wrong:latest" not in [m.model for m in client.list().models]
