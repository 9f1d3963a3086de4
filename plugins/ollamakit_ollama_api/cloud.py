"""Ollama's cloud and account routes: ``/api/status``, ``/api/me``, ``/api/signout`` (and the
older ``DELETE /api/user/keys/{key}``) and ``/api/experimental/*``.

ollamakit has no cloud account, so each answers as Ollama does without one (``ollamakit.cloud``
says which answer and why); Ollama's own CLI and app then degrade as they do against an Ollama
that cannot reach its cloud, instead of meeting a 404.
"""

from __future__ import annotations

from ollamakit import cloud
from ollamakit.errors import BadRequest
from ollamakit.web import json_response

MAX_PROXY_BODY = 1 << 20
GB = 1000**3

# Ollama's built-in list (server/model_recommendations.go), which it serves whenever it cannot
# refresh it from ollama.com, the cloud switch on included.
DEFAULT_RECOMMENDATIONS = [
    {
        "model": "kimi-k2.6:cloud",
        "description": "State-of-the-art coding, long-horizon execution, and multimodal "
        "agent swarm capability",
        "context_length": 262_144,
        "max_output_tokens": 262_144,
    },
    {
        "model": "glm-5.1:cloud",
        "description": "Reasoning and code generation",
        "context_length": 202_752,
        "max_output_tokens": 131_072,
    },
    {
        "model": "qwen3.5:cloud",
        "description": "Reasoning, coding, and agentic tool use with vision",
        "context_length": 262_144,
        "max_output_tokens": 32_768,
    },
    {
        "model": "minimax-m2.7:cloud",
        "description": "Fast, efficient coding and real-world productivity",
        "context_length": 204_800,
        "max_output_tokens": 128_000,
    },
    {
        "model": "gemma4",
        "description": "Reasoning and code generation locally",
        "vram_bytes": 12 * GB,
    },
    {
        "model": "qwen3.5",
        "description": "Reasoning, coding, and visual understanding locally",
        "vram_bytes": 14 * GB,
    },
]


class Status:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_get(self, req, resp):
        json_response(resp, cloud.status(self.kernel.settings))


class Me:
    """Ollama asks ollama.com who is signed in; when that cannot be answered it says 503."""

    def on_post(self, req, resp):
        json_response(resp, {"error": "account unavailable"}, 503)


class Signout:
    """Nobody is ever signed in: Ollama's answer when ollama.com does not know this key."""

    def on_post(self, req, resp, key: str | None = None):
        json_response(resp, {"error": "you are not currently signed in"}, 401)

    on_delete = on_post


class WebProxy:
    """``web_search`` and ``web_fetch``, which Ollama forwards to ollama.com: the body is still
    required, then the request is refused (``cloud.refusal``)."""

    operation = ""

    def __init__(self, kernel):
        self.kernel = kernel

    def on_post(self, req, resp):
        body = req.bounded_stream.read(MAX_PROXY_BODY + 1)
        if len(body) > MAX_PROXY_BODY:
            raise BadRequest("request body too large")
        if not body.strip():
            raise BadRequest("missing request body")
        raise cloud.refusal(self.kernel.settings, self.operation)


class WebSearch(WebProxy):
    operation = cloud.WEB_SEARCH


class WebFetch(WebProxy):
    operation = cloud.WEB_FETCH


class ModelRecommendations:
    def on_get(self, req, resp):
        json_response(resp, {"recommendations": DEFAULT_RECOMMENDATIONS})
