"""OLLAMA_GO_TEMPLATE=false: a model with both templates is prompted through the GGUF's own."""

from __future__ import annotations

import hashlib

import pytest
from falcon.testing import TestClient

from ollamakit.config import Settings
from ollamakit.kernel import make_kernel
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit.web import create_app

JINJA = (
    "{% if tools %}TOOLS {% endif %}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GO = "GO {{ .Prompt }}"
TOOL = {
    "type": "function",
    "function": {
        "name": "f",
        "description": "d",
        "parameters": {"type": "object", "properties": {}},
    },
}


@pytest.fixture
def client_for(tmp_path):
    kernels = []

    def make(go_template: bool, with_jinja: bool = True) -> TestClient:
        kernel = make_kernel(Settings(models_dir=tmp_path / "models", go_template=go_template))
        kernels.append(kernel)
        return stored_model(kernel, tmp_path, with_jinja)

    yield make
    for kernel in kernels:
        kernel.close()


def stored_model(kernel, tmp_path, with_jinja: bool) -> TestClient:
    client = TestClient(create_app(kernel), headers={"Host": "localhost"})
    data = tiny_llama(tmp_path / "t.gguf", chat_template=JINJA if with_jinja else None).read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.simulate_post(f"/api/blobs/{digest}", body=data).status_code == 201
    assert (
        client.simulate_post(
            "/api/create", json={"model": "m", "files": {"t.gguf": digest}, "template": GO}
        ).status_code
        == 200
    )
    return client


def rendered(client, **extra) -> tuple[int, str]:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "_debug_render_only": True,
        "stream": False,
    }
    reply = client.simulate_post("/api/chat", json={**body, **extra})
    return reply.status_code, (reply.json.get("_debug_info") or {}).get(
        "rendered_template", reply.json.get("error")
    )


@pytest.mark.parametrize(
    "go_template, prompt",
    [(True, "GO hi"), (False, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")],
)
def test_the_setting_picks_the_template(client_for, go_template, prompt):
    client = client_for(go_template)
    assert rendered(client) == (200, prompt)
    status, text = rendered(client, tools=[TOOL])
    if go_template:
        assert status == 400 and "does not support tools" in text  # the Go template has no .Tools
    else:
        assert status == 200 and text.startswith("TOOLS ")
    assert (
        client.simulate_post("/api/show", json={"model": "m"}).json["template"] == GO
    )  # the stored model is unchanged


def test_without_a_jinja_template_the_go_template_stays(client_for):
    assert rendered(client_for(go_template=False, with_jinja=False)) == (200, "GO hi")


def test_the_variable_reads_as_ollama_reads_it(monkeypatch):
    for value, expected in (("", True), ("false", False), ("0", False), ("no", True), ("1", True)):
        monkeypatch.setenv("OLLAMA_GO_TEMPLATE", value)
        assert Settings.from_env().go_template is expected, value
