"""The compatibility layers reach native inference only through the kernel's run_chat /
run_generate / run_embed hooks: with the native API plugins left out and one small plugin
answering those hooks, /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses and
/v1/messages all work from it."""

from __future__ import annotations

from falcon.testing import TestClient

from ollamakit.config import Settings
from ollamakit.hookspecs import hookimpl
from ollamakit.kernel import make_kernel
from ollamakit.web import create_app


class Canned:
    """Native replies written by hand, and the requests they answered."""

    def __init__(self):
        self.requests = []

    def _reply(self, model, **message):
        yield {"model": model, "message": {"role": "assistant", "content": "hel", **message}, "done": False}
        yield {"model": model, "message": {"role": "assistant", "content": "lo"}, "done": False}
        yield {"model": model, "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
               "prompt_eval_count": 3, "eval_count": 2}

    @hookimpl
    def run_chat(self, request, relax_thinking):
        self.requests.append(("chat", request, relax_thinking))
        return self._reply(request["model"])

    @hookimpl
    def run_generate(self, request):
        self.requests.append(("generate", request))
        return ({**e, "response": e["message"]["content"]} for e in self._reply(request["model"]))

    @hookimpl
    def run_embed(self, request):
        self.requests.append(("embed", request))
        return {"model": request["model"], "embeddings": [[0.6, 0.8]], "prompt_eval_count": 1}


def test_the_layers_run_on_any_plugin_answering_the_hooks(tmp_path):
    canned = Canned()
    kernel = make_kernel(Settings(models_dir=tmp_path), plugins=[canned],
                         skip=("ollama_inference", "ollama_embed"))
    client = TestClient(create_app(kernel), headers={"Host": "localhost"})
    ask = [{"role": "user", "content": "hi"}]

    chat = client.simulate_post("/v1/chat/completions", json={"model": "m", "messages": ask}).json
    assert chat["choices"][0]["message"]["content"] == "hello" and chat["usage"]["total_tokens"] == 5
    text = client.simulate_post("/v1/completions", json={"model": "m", "prompt": "hi"}).json
    assert text["choices"][0]["text"] == "hello"
    vectors = client.simulate_post("/v1/embeddings", json={"model": "m", "input": "hi"}).json
    assert vectors["data"][0]["embedding"] == [0.6, 0.8]
    response = client.simulate_post("/v1/responses", json={"model": "m", "input": "hi"}).json
    assert response["output"][0]["content"][0]["text"] == "hello"
    message = client.simulate_post("/v1/messages", json={"model": "m", "max_tokens": 5, "messages": ask}).json
    assert message["content"] == [{"type": "text", "text": "hello"}] and message["stop_reason"] == "end_turn"
    assert [r[0] for r in canned.requests] == ["chat", "generate", "embed", "chat", "chat"]
    assert canned.requests[-1][2] is True and canned.requests[0][2] is False  # only Anthropic relaxes thinking


def test_without_any_plugin_the_layers_say_so(tmp_path):
    kernel = make_kernel(Settings(models_dir=tmp_path), skip=("ollama_inference", "ollama_embed"))
    client = TestClient(create_app(kernel), headers={"Host": "localhost"})
    reply = client.simulate_post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert reply.status_code == 404 and reply.json["error"]["message"] == "chat is not available: no installed plugin runs it"
