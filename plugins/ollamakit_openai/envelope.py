"""What every ``/v1`` endpoint shares: OpenAI's error envelope, request bodies read through it,
and Server-Sent Events."""

from __future__ import annotations

import random
import time

from ollamakit.errors import BadRequest
from ollamakit.web import error_status, errors_in_envelope, sse_frame, sse_response

FINGERPRINT = "fp_ollama"


def error_type(status: int) -> str:
    return {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")


def error_envelope(exc: BaseException) -> tuple[int, dict]:
    status, message = error_status(exc)
    return status, {
        "error": {"message": message, "type": error_type(status), "param": None, "code": None}
    }


openai_errors = errors_in_envelope(
    error_envelope
)  # responders answering errors in OpenAI's envelope


def start_stream(resp, objects, events: bool = False) -> None:
    """Send objects as SSE, each a ``data:`` event (``events``: ``(name, object)`` pairs, each
    with its ``event:`` line, as the Responses API sends them; no ``[DONE]`` then). An error
    before the first is a plain reply in the envelope; after it, a last event carrying it."""

    def frames():
        for item in objects:
            yield sse_frame(item[1], item[0]) if events else sse_frame(item)
        if not events:
            yield b"data: [DONE]\n\n"

    sse_response(
        resp,
        frames(),
        error_envelope,
        lambda exc: sse_frame(error_envelope(exc)[1], "error" if events else None),
    )


def completion_id(prefix: str) -> str:
    return f"{prefix}-{random.randrange(999)}"


def now() -> int:
    return int(time.time())


# -- request fields --------------------------------------------------------------------------


def typed(body: dict, key: str, kinds, what: str):
    """``body[key]`` when it has one of ``kinds`` (None when absent); else a 400."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise BadRequest(f"invalid type for '{key}': expected {what}")
    if not isinstance(value, kinds):
        raise BadRequest(f"invalid type for '{key}': expected {what}")
    return value


def stop_list(body: dict) -> list[str] | None:
    stop = body.get("stop")
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list):
        for item in stop:
            if not isinstance(item, str):
                raise BadRequest(f"invalid type for 'stop' field: {type(item).__name__}")
        return stop
    raise BadRequest(f"invalid type for 'stop' field: {type(stop).__name__}")


def sampling_options(
    body: dict, stop: list[str] | None, top_p_zero_means_one: bool = False
) -> dict:
    """OpenAI's sampling fields as native ``options``: temperature and top_p default to 1.0."""
    number = (int, float)
    options: dict = {}
    max_tokens = typed(body, "max_tokens", int, "an integer")
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    seed = typed(body, "seed", int, "an integer")
    if seed is not None:
        options["seed"] = seed
    if stop is not None:
        options["stop"] = stop
    temperature = typed(body, "temperature", number, "a number")
    options["temperature"] = 1.0 if temperature is None else temperature
    top_p = typed(body, "top_p", number, "a number")
    options["top_p"] = 1.0 if top_p is None or (top_p_zero_means_one and top_p == 0) else top_p
    for key in ("frequency_penalty", "presence_penalty"):
        value = typed(body, key, number, "a number")
        if value is not None:
            options[key] = value
    return options


def include_usage(body: dict) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def usage(final: dict) -> dict:
    prompt, completion = int(final.get("prompt_eval_count", 0)), int(final.get("eval_count", 0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def go_type(value) -> str:
    """How Go's ``%T`` names a decoded JSON value, for messages that quote Ollama's."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"
