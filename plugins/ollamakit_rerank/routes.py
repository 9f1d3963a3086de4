"""``POST /api/rerank`` and ``POST /v1/rerank``: documents ordered by their relevance to a query.

Both take the request of llama-server, Jina and Cohere: ``model``, ``query``, ``documents`` (strings,
or objects with a ``text``), ``top_n`` and ``return_documents``; TEI's ``texts`` and
``return_text`` too. Both answer ``results``, each with the document's ``index`` and its
``relevance_score`` (the model's raw score, as llama-server gives it), best first, at most
``top_n`` of them, with ``document: {"text"}`` when asked. ``/v1/rerank`` wraps them as Jina,
Cohere and llama-server do (``object``, ``usage``; a TEI request gets TEI's bare list) and answers
errors in llama-server's envelope; ``/api/rerank`` adds Ollama's durations and token count.
"""

from __future__ import annotations

from dataclasses import dataclass

from ollamakit import inference
from ollamakit.errors import BadRequest
from ollamakit.web import client_gone, error_status, errors_in_envelope, json_response, read_json


@dataclass
class RerankRequest:
    model: str
    query: str
    documents: list[str]
    top_n: int
    return_documents: bool
    tei: bool  # TEI's shape: ``texts`` in, a bare list of ``score`` (and ``text``) out
    native: dict  # what ``inference.rerank`` takes


def _flag(body: dict, key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f'"{key}" must be a boolean')
    return value


def _text(document) -> str:
    if isinstance(document, str):
        return document
    if isinstance(document, dict) and isinstance(document.get("text"), str):
        return document["text"]
    raise BadRequest('"documents" must be strings or objects with a "text" string')


def parse_request(body: dict) -> RerankRequest:
    model = body.get("model", "")
    if not isinstance(model, str):
        raise BadRequest('"model" must be a string')
    if not isinstance(body.get("query"), str):
        raise BadRequest(
            '"query" must be a string' if "query" in body else '"query" must be provided'
        )
    tei = "texts" in body and "documents" not in body
    documents = body.get("texts") if tei else body.get("documents")
    if not isinstance(documents, list) or not documents:
        raise BadRequest(f'"{"texts" if tei else "documents"}" must be a non-empty array')
    documents = [_text(document) for document in documents]
    top_n = body.get("top_n", len(documents))
    if top_n is None:
        top_n = len(documents)
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise BadRequest('"top_n" must be a positive integer')
    native = {"model": model, "query": body["query"], "documents": documents}
    for key in ("options", "keep_alive", "truncate"):
        if key in body:
            native[key] = body[key]
    return RerankRequest(
        model,
        body["query"],
        documents,
        top_n,
        _flag(body, "return_text" if tei else "return_documents"),
        tei,
        native,
    )


def score(kernel, request: RerankRequest, gone) -> dict:
    """The model's scores for the request's documents, one per document in their order."""
    return inference.rerank(kernel, request.native, gone=gone)


def ranked(request: RerankRequest, scores: list[float]) -> list[dict]:
    """The best ``top_n`` documents, highest score first (ties keep the documents' order)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[: request.top_n]
    label = "score" if request.tei else "relevance_score"
    results = []
    for index in order:
        result = {"index": index, label: scores[index]}
        if request.return_documents:
            if request.tei:
                result["text"] = request.documents[index]
            else:
                result["document"] = {"text": request.documents[index]}
        results.append(result)
    return results


class NativeRerank:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_post(self, req, resp):
        request = parse_request(read_json(req))
        reply = score(self.kernel, request, client_gone(req))
        json_response(
            resp,
            {
                "model": request.model,
                "results": ranked(request, reply["scores"]),
                "total_duration": reply.get("total_duration", 0),
                "load_duration": reply.get("load_duration", 0),
                "prompt_eval_count": reply.get("prompt_eval_count", 0),
            },
        )


def error_envelope(exc: BaseException) -> tuple[int, dict]:
    status, message = error_status(exc)
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "server_error")
    return status, {"error": {"code": status, "message": message, "type": kind}}


class Rerank:
    def __init__(self, kernel):
        self.kernel = kernel

    @errors_in_envelope(error_envelope)
    def on_post(self, req, resp):
        request = parse_request(read_json(req))
        reply = score(self.kernel, request, client_gone(req))
        results = ranked(request, reply["scores"])
        if request.tei:
            json_response(resp, results, 200, "application/json")
            return
        tokens = int(reply.get("prompt_eval_count", 0))
        json_response(
            resp,
            {
                "model": request.model,
                "object": "list",
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                "results": results,
            },
            200,
            "application/json",
        )
