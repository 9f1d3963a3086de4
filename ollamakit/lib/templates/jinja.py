"""Renders a GGUF's own Jinja ``tokenizer.chat_template`` for models without a Go template.

The template comes from a model file, so it runs in Jinja's immutable sandbox: no attribute
escapes (``__class__``), no mutation of the messages, bounded ``range``. The environment offers
what chat templates expect from the Hugging Face convention: ``messages``, ``tools``,
``add_generation_prompt``, ``bos_token``/``eos_token``, ``raise_exception`` and ``strftime_now``.
"""

from __future__ import annotations

import datetime
import json
from functools import lru_cache

from jinja2 import TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ollamakit.errors import OllamaError


class ChatTemplateError(OllamaError):
    """The model's chat template failed; a model problem, so a 500."""

    status = 500


class _RaisedByTemplate(Exception):
    pass


def _raise_exception(message):
    raise _RaisedByTemplate(str(message))


def _strftime_now(fmt):
    return datetime.datetime.now().strftime(str(fmt))


def _tojson(value, indent=None, ensure_ascii=False, separators=None, sort_keys=False):
    # Chat templates expect Python-json spacing (", " and ": "), as transformers produces.
    return json.dumps(
        value, indent=indent, ensure_ascii=ensure_ascii, separators=separators, sort_keys=sort_keys
    )


@lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


@lru_cache(maxsize=32)
def _compile(source: str):
    return _environment().from_string(source)


def jinja_messages(messages) -> list[dict]:
    """API messages in the shape chat templates read (tool-call arguments stay objects)."""
    out = []
    for msg in messages:
        item = {"role": msg.get("role") or "", "content": msg.get("content") or ""}
        if msg.get("thinking"):
            item["reasoning_content"] = msg["thinking"]
        if msg.get("tool_calls"):
            item["tool_calls"] = [
                {
                    "type": "function",
                    **({"id": c["id"]} if c.get("id") else {}),
                    "function": {
                        "name": (c.get("function") or {}).get("name") or "",
                        "arguments": (c.get("function") or {}).get("arguments") or {},
                    },
                }
                for c in msg["tool_calls"]
            ]
        if msg.get("tool_name"):
            item["name"] = msg["tool_name"]
        if msg.get("tool_call_id"):
            item["tool_call_id"] = msg["tool_call_id"]
        out.append(item)
    return out


def render_jinja(
    source: str,
    messages,
    *,
    tools=None,
    think=None,
    add_generation_prompt: bool = True,
    bos_token: str = "",
    eos_token: str = "",
    **extra,
) -> str:
    """Render a chat template; :class:`ChatTemplateError` if it is invalid, raises, or tries
    something the sandbox forbids."""
    try:
        template = _compile(source)
    except TemplateError as err:
        raise ChatTemplateError(f"chat template error: {err}") from None
    context = {
        "messages": jinja_messages(messages),
        "add_generation_prompt": add_generation_prompt,
        "bos_token": bos_token,
        "eos_token": eos_token,
        **extra,
    }
    if tools:
        context["tools"] = list(tools)
    if think is not None:
        context["enable_thinking"] = bool(think)
        if isinstance(think, str):
            context["reasoning_effort"] = think
    try:
        return template.render(**context)
    except _RaisedByTemplate as err:
        raise ChatTemplateError(f"chat template error: {err}") from None
    except SecurityError as err:
        raise ChatTemplateError(f"chat template error: forbidden by the sandbox: {err}") from None
    except (
        TemplateError,
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
        ZeroDivisionError,
        OverflowError,
        RecursionError,
    ) as err:
        raise ChatTemplateError(f"chat template error: {err}") from None


def jinja_capabilities(source: str) -> set[str]:
    """What Ollama infers from a Jinja chat template's text: tools and thinking."""
    caps: set[str] = set()
    if not source:
        return caps
    if "tools" in source or "tool_call" in source:
        caps.add("tools")
    if "<think>" in source and "</think>" in source:
        caps.add("thinking")
    elif (
        ("content.split('</think>')" in source or 'content.split("</think>")' in source)
        and "reasoning_content" not in source
        and "<SPECIAL_12>" not in source
    ):
        caps.add("thinking")
    return caps
