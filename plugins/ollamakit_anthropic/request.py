"""A Messages API request read as Ollama reads it (``anthropic/anthropic.go``
``MessagesRequest``, ``FromMessagesRequest`` and ``EstimateInputTokens``; the checks of
``middleware/anthropic.go``) and turned into a native chat request."""

from __future__ import annotations

import binascii
import json

from ollamakit.errors import BadRequest

# The function a local model is given for Anthropic's built-in web_search_* tools.
WEB_SEARCH_FUNCTION = {
    "type": "function",
    "function": {
        "name": "web_search",
        "description": "Search the web for current information. Use this to find up-to-date information about any topic.",
        "parameters": {
            "type": "object",
            "required": ["query"],
            "properties": {
                "query": {"type": "string", "description": "The search query to look up on the web"}
            },
        },
    },
}


def typed(body: dict, key: str, kinds, what: str):
    """``body[key]`` when it has one of ``kinds`` (None when absent or null); else a 400."""
    value = body.get(key)
    if value is None:
        return None
    allowed = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise BadRequest(f"invalid type for '{key}': expected {what}")
    return value


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def image(source) -> str:
    """A base64 image source's data, checked; URL and file sources are refused."""
    if not isinstance(source, dict):
        raise BadRequest("invalid image source")
    if source.get("type") != "base64":
        raise BadRequest(
            f"invalid image source type: {_text(source.get('type'))}. Only base64 images are supported."
        )
    data = _text(source.get("data"))
    try:
        binascii.a2b_base64(data.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise BadRequest("invalid base64 image data") from None
    return data


def tool_result_content(content) -> tuple[str, list[str]]:
    """A tool result's content: a string, or text and image blocks (others are skipped)."""
    if isinstance(content, str):
        return content, []
    text, images = "", []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            text += _text(block.get("text"))
        elif block.get("type") == "image":
            if not isinstance(block.get("source"), dict):
                raise BadRequest("invalid tool_result image source")
            images.append(image(block["source"]))
    return text, images


def web_search_result_text(content) -> str:
    """A replayed web_search_tool_result as the text the model saw."""

    def error(code) -> str:
        return (
            f"web_search_tool_result_error: {code}"
            if _text(code)
            else "web_search_tool_result_error"
        )

    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        if content.get("type") == "web_search_tool_result_error":
            return error(content.get("error_code"))
        return json.dumps(content, separators=(",", ":"))
    lines = []
    for item in content if isinstance(content, list) else ():
        if isinstance(item, dict) and item.get("type") == "web_search_result":
            lines.append(f"- {_text(item.get('title'))}: {_text(item.get('url'))}\n")
        elif isinstance(item, dict) and item.get("type") == "web_search_tool_result_error":
            return error(item.get("error_code"))
    return "".join(lines)


def _blocks(content, i: int) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise BadRequest(
            f"invalid type for 'messages[{i}].content': expected a string or an array of blocks"
        )
    return content


def _arguments(block: dict) -> dict:
    arguments = block.get("input")
    return arguments if isinstance(arguments, dict) else {}


def convert_message(message: dict, i: int) -> list[dict]:
    """One Anthropic message as native messages: tool results become ``tool`` messages (before
    the rest of a user turn), everything else one message of the turn's role."""
    role = _text(message.get("role")).lower()
    text, images, calls, thinking, results = "", [], [], "", []
    for block in _blocks(message.get("content"), i):
        kind = block.get("type")
        if kind == "text":
            text += _text(block.get("text"))
        elif kind == "image":
            if block.get("source") is None:
                raise BadRequest("invalid image source")
            images.append(image(block["source"]))
        elif kind in ("tool_use", "server_tool_use"):
            if kind == "tool_use" and not _text(block.get("id")):
                raise BadRequest("tool_use block missing required 'id' field")
            if kind == "tool_use" and not _text(block.get("name")):
                raise BadRequest("tool_use block missing required 'name' field")
            calls.append(
                {
                    "id": _text(block.get("id")),
                    "function": {"name": _text(block.get("name")), "arguments": _arguments(block)},
                }
            )
        elif kind == "tool_result":
            content, result_images = tool_result_content(block.get("content"))
            results.append(
                {
                    "role": "tool",
                    "content": content,
                    "images": result_images,
                    "tool_call_id": _text(block.get("tool_use_id")),
                }
            )
        elif kind == "web_search_tool_result":
            results.append(
                {
                    "role": "tool",
                    "content": web_search_result_text(block.get("content")),
                    "tool_call_id": _text(block.get("tool_use_id")),
                }
            )
        elif kind == "thinking":
            thinking = _text(block.get("thinking"))
        # other block kinds are skipped, as in Ollama
    converted = []
    if role == "user":
        converted += results
    if text or images or calls or thinking:
        converted.append(
            {
                "role": role,
                "content": text,
                "images": images,
                "tool_calls": calls,
                "thinking": thinking,
            }
        )
    if role != "user":
        converted += results
    return [{k: v for k, v in m.items() if v or k in ("role", "content")} for m in converted]


def system_text(system) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "".join(
            _text(b.get("text")) for b in system if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def is_web_search(tool: dict) -> bool:
    return _text(tool.get("type")).startswith("web_search")


def native_tools(tools: list[dict]) -> list[dict]:
    builtin = any(is_web_search(t) for t in tools)
    native = []
    for tool in tools:
        if is_web_search(tool):
            native.append(WEB_SEARCH_FUNCTION)
            continue
        if builtin and tool.get("name") == "web_search":  # the built-in tool owns the name
            continue
        schema = tool.get("input_schema")
        if schema is not None and not isinstance(schema, dict):
            raise BadRequest(
                f"invalid input_schema for tool {json.dumps(_text(tool.get('name')))}: expected an object"
            )
        function = {"name": _text(tool.get("name")), "description": _text(tool.get("description"))}
        if schema:
            function["parameters"] = schema
        native.append({"type": "function", "function": function})
    return native


def think(body: dict):
    """``thinking`` enabled/disabled, else ``output_config.effort`` (``xhigh`` is ``high``)."""
    thinking = typed(body, "thinking", dict, "an object")
    if thinking is not None and thinking.get("type") == "enabled":
        return True
    if thinking is not None and thinking.get("type") == "disabled":
        return False
    config = typed(body, "output_config", dict, "an object")
    if config is not None:
        effort = _text(config.get("effort")).strip().lower()
        effort = "high" if effort == "xhigh" else effort
        if effort in ("high", "medium", "low", "max"):
            return effort
    return None


def _block_size(block) -> int:
    if not isinstance(block, dict):
        return 0
    size = len(_text(block.get("text")).encode()) + len(_text(block.get("thinking")).encode())
    if block.get("type") in ("tool_use", "tool_result"):
        size += len(json.dumps(block, separators=(",", ":"), ensure_ascii=False).encode())
    return size


def estimate_input_tokens(body: dict) -> int:
    """Ollama's estimate for ``message_start`` (a quarter of the bytes), used until the prompt
    has been counted."""
    system, messages = body.get("system"), body.get("messages") or []
    total = (
        len(system.encode())
        if isinstance(system, str)
        else sum(_block_size(b) for b in (system if isinstance(system, list) else ()))
    )
    for message in messages:
        total += len(_text(message.get("role")).encode())
        content = message.get("content")
        total += (
            len(content.encode())
            if isinstance(content, str)
            else sum(_block_size(b) for b in content or [])
        )
    for tool in body.get("tools") or []:
        schema = tool.get("input_schema")
        total += len(_text(tool.get("name")).encode()) + len(
            _text(tool.get("description")).encode()
        )
        total += (
            len(json.dumps(schema, separators=(",", ":")).encode()) if schema is not None else 0
        )
    tokens = total // 4
    return 1 if tokens == 0 and (messages or system is not None) else tokens


class MessagesRequest:
    """The request, checked in Ollama's order, and its native chat request."""

    def __init__(self, body: dict):
        self.body = body
        self.model = typed(body, "model", str, "a string") or ""
        max_tokens = typed(body, "max_tokens", int, "an integer") or 0
        messages = typed(body, "messages", list, "an array") or []
        if not all(isinstance(m, dict) for m in messages):
            raise BadRequest("invalid type for 'messages': expected an array of objects")
        self.stream = typed(body, "stream", bool, "a boolean") or False
        self.tools = typed(body, "tools", list, "an array") or []
        if not all(isinstance(t, dict) for t in self.tools):
            raise BadRequest("invalid type for 'tools': expected an array of objects")
        stop = typed(body, "stop_sequences", list, "an array") or []
        if not all(isinstance(s, str) for s in stop):
            raise BadRequest("invalid type for 'stop_sequences': expected an array of strings")
        if not self.model:
            raise BadRequest("model is required")
        if max_tokens <= 0:
            raise BadRequest("max_tokens is required and must be positive")
        if not messages:
            raise BadRequest("messages is required")

        native_messages = []
        system = system_text(body.get("system"))
        if system:
            native_messages.append({"role": "system", "content": system})
        for i, message in enumerate(messages):
            native_messages += convert_message(message, i)
        options: dict = {"num_predict": max_tokens}
        for key, kinds in (("temperature", (int, float)), ("top_p", (int, float)), ("top_k", int)):
            value = typed(body, key, kinds, "a number")
            if value is not None:
                options[key] = value
        if stop:
            options["stop"] = stop
        self.native = {"model": self.model, "messages": native_messages, "options": options}
        tools = native_tools(self.tools)
        if tools:
            self.native["tools"] = tools
        thinking = think(body)
        if thinking is not None:
            self.native["think"] = thinking

    @property
    def web_search(self) -> bool:
        return any(is_web_search(t) for t in self.tools)
