"""The rerank routes reach the engine only through the kernel's run_rerank hook: with the native
plugins left out and one small plugin answering it, /api/rerank and /v1/rerank work from it."""

from __future__ import annotations

from falcon.testing import TestClient

from ollamakit.config import Settings
from ollamakit.errors import BadRequest
from ollamakit.hookspecs import hookimpl
from ollamakit.kernel import make_kernel
from ollamakit.web import create_app


class Canned:
    def __init__(self):
        self.requests = []

    @hookimpl
    def run_rerank(self, request):
        self.requests.append(request)
        if request["model"] == "embedder":
            raise BadRequest('"embedder" does not support rerank')
        return {"model": request["model"], "scores": [float(len(d)) for d in request["documents"]],
                "prompt_eval_count": 12, "total_duration": 5, "load_duration": 2}


def client_with(models_dir, plugins=()) -> TestClient:
    kernel = make_kernel(Settings(models_dir=models_dir), plugins=list(plugins), skip=("ollama_inference", "ollama_embed"))
    return TestClient(create_app(kernel), headers={"Host": "localhost"})


def test_routes_run_on_any_plugin_answering_the_hook(tmp_path):
    canned = Canned()
    client = client_with(tmp_path, [canned])
    body = {"model": "m", "query": "q", "documents": ["bb", {"text": "dddd"}, "a", "ccc"], "top_n": 2,
            "keep_alive": "1m", "options": {"num_ctx": 64}}
    native = client.simulate_post("/api/rerank", json=body).json
    assert native == {"model": "m", "results": [{"index": 1, "relevance_score": 4.0},
                                                 {"index": 3, "relevance_score": 3.0}],
                      "total_duration": 5, "load_duration": 2, "prompt_eval_count": 12}
    assert canned.requests[-1] == {"model": "m", "query": "q", "documents": ["bb", "dddd", "a", "ccc"],
                                   "keep_alive": "1m", "options": {"num_ctx": 64}}
    v1 = client.simulate_post("/v1/rerank", json={**body, "return_documents": True}).json
    assert v1 == {"model": "m", "object": "list", "usage": {"prompt_tokens": 12, "total_tokens": 12},
                  "results": [{"index": 1, "relevance_score": 4.0, "document": {"text": "dddd"}},
                              {"index": 3, "relevance_score": 3.0, "document": {"text": "ccc"}}]}
    tei = client.simulate_post("/v1/rerank", json={"model": "m", "query": "q", "texts": ["x", "yy"]}).json
    assert tei == [{"index": 1, "score": 2.0}, {"index": 0, "score": 1.0}]
    ties = client.simulate_post("/api/rerank", json={"model": "m", "query": "q", "documents": ["a", "b", "cc"]}).json
    assert [r["index"] for r in ties["results"]] == [2, 0, 1]


def test_the_hooks_refusal_is_a_400_in_each_envelope(tmp_path):
    client = client_with(tmp_path, [Canned()])
    body = {"model": "embedder", "query": "q", "documents": ["d"]}
    native = client.simulate_post("/api/rerank", json=body)
    assert (native.status_code, native.json) == (400, {"error": '"embedder" does not support rerank'})
    v1 = client.simulate_post("/v1/rerank", json=body)
    assert (v1.status_code, v1.json) == (400, {"error": {"code": 400, "message": '"embedder" does not support rerank',
                                                         "type": "invalid_request_error"}})


def test_without_a_plugin_answering_the_hook(tmp_path):
    client = client_with(tmp_path)
    reply = client.simulate_post("/api/rerank", json={"model": "m", "query": "q", "documents": ["d"]})
    assert reply.status_code == 404 and reply.json == {"error": "reranking is not available: no installed plugin runs it"}
