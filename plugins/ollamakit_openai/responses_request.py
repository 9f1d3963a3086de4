"""A ``/v1/responses`` request read as Ollama reads it (``openai/responses.go``
``ResponsesRequest`` and ``FromResponsesRequest``) and turned into a native chat request.

Stateless: ``previous_response_id``, ``conversation``, ``background``, ``include`` and
``truncation`` are read and ignored, as in Ollama.
"""

from __future__ import annotations

import json

from ollamakit.errors import BadRequest

from .chat import image_data, think_from_effort
from .envelope import typed

CONTENT_TYPES = ("input_text", "input_image", "output_text", "input_file")
ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning", "web_search_call")

# The function a local model is given for the built-in web_search tool (Ollama's
# WebSearchFunctionTool); clients only ever see their own declaration echoed.
WEB_SEARCH_FUNCTION = {
    "type": "function",
    "function": {
        "name": "web_search",
        "description": "Search the web for current information.",
        "parameters": {
            "type": "object",
            "required": ["query"],
            "properties": {"query": {"type": "string", "description": "The search query."}},
        },
    },
}


def _content(raw, where: str) -> dict:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind not in CONTENT_TYPES:
        raise BadRequest(f"{where}unknown content type: {kind if isinstance(kind, str) else ''}")
    return raw


def _content_list(value, where: str, name: str) -> list[dict]:
    """A string (shorthand for one ``input_text``) or a list of content items."""
    if isinstance(value, str):
        return [{"type": "input_text", "text": value}]
    if not isinstance(value, list):
        raise BadRequest(f"{where}{name} must be a string or array")
    return [_content(raw, f"{where}{name}[{j}]: ") for j, raw in enumerate(value)]


def parse_item(raw, i: int) -> dict:
    """One input item, checked; a bare ``{role, content}`` is a message."""
    where = f"input[{i}]: "
    if not isinstance(raw, dict):
        raise BadRequest(f"{where}input item must be an object")
    kind = raw.get("type") or ("message" if raw.get("role") else "")
    if kind not in ITEM_TYPES:
        raise BadRequest(
            f"{where}input item missing required 'type' field"
            if not kind
            else f"{where}unknown input item type: {json.dumps(kind)}"
        )
    item = {**raw, "type": kind}
    if kind == "message" and raw.get("content") is not None:
        item["content"] = _content_list(raw["content"], where, "content")
    if kind == "function_call_output":
        output = raw.get("output")
        item["output_items"] = (
            None
            if output is None or isinstance(output, str)
            else _content_list(output, where, "output")
        )
        if item["output_items"] is not None:
            item["output"] = "".join(
                c.get("text") or ""
                for c in item["output_items"]
                if c["type"] in ("input_text", "output_text")
            )
    return item


def parse_input(value) -> tuple[str, list[dict]]:
    """``input``: a string (one user message) or a list of items."""
    if value is None or isinstance(value, str):
        return value or "", []
    if not isinstance(value, list):
        raise BadRequest("input must be a string or array")
    return "", [parse_item(raw, i) for i, raw in enumerate(value)]


def _text_and_images(contents: list[dict]) -> tuple[str, list[str]]:
    text, images = "", []
    for content in contents:
        if content["type"] in ("input_text", "output_text"):
            text += content.get("text") if isinstance(content.get("text"), str) else ""
        elif content["type"] == "input_image":
            if content.get("image_url"):  # a file_id alone is skipped
                images.append(image_data(content["image_url"]))
        else:
            raise BadRequest("file inputs are not currently supported")
    return text, images


def _arguments(raw) -> dict:
    if raw in (None, ""):
        return {}
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise BadRequest("failed to parse function call arguments: expected a JSON object")
    return arguments


def native_messages(instructions: str, text: str, items: list[dict]) -> list[dict]:
    """Ollama's conversion: reasoning waits for the next assistant turn, function calls join
    the assistant message before them, and an assistant message replayed between a call and
    its output is folded into the message holding that call."""
    messages: list[dict] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    if text:
        messages.append({"role": "user", "content": text})
    pending = ""
    last_calls: set[str] = set()  # the ids of the calls in messages[-1], for the folding below
    for i, item in enumerate(items):
        kind = item["type"]
        if kind == "reasoning":
            pending = (
                item.get("encrypted_content")
                if isinstance(item.get("encrypted_content"), str)
                else ""
            )
        elif kind == "message":
            content, images = _text_and_images(item.get("content") or [])
            message = {
                "role": item.get("role") if isinstance(item.get("role"), str) else "",
                "content": content,
                "images": images,
            }
            if message["role"] == "assistant" and pending:
                message["thinking"], pending = pending, ""
            following = items[i + 1] if i + 1 < len(items) else {}
            answered = (
                following.get("call_id")
                if following.get("type") == "function_call_output"
                else None
            )
            answered = answered if isinstance(answered, str) else None
            last = messages[-1] if messages else {}
            if (
                message["role"] == "assistant"
                and answered
                and last.get("role") == "assistant"
                and answered in last_calls
            ):
                if last["content"] and content:
                    last["content"] += "\n"
                last["content"] += content
                last["images"] = last.get("images", []) + images
                if message.get("thinking"):
                    last["thinking"] = message["thinking"]
                continue
            messages.append(message)
            last_calls = set()
        elif kind == "function_call":
            call = {
                "id": item.get("call_id") if isinstance(item.get("call_id"), str) else "",
                "function": {
                    "name": item.get("name") if isinstance(item.get("name"), str) else "",
                    "arguments": _arguments(item.get("arguments")),
                },
            }
            if messages and messages[-1]["role"] == "assistant":
                target = messages[-1]
                target.setdefault("tool_calls", []).append(call)
            else:
                target = {"role": "assistant", "content": "", "tool_calls": [call]}
                messages.append(target)
                last_calls = set()
            last_calls.add(call["id"])
            if pending:
                target["thinking"], pending = pending, ""
        elif kind == "function_call_output":
            content = item.get("output") if isinstance(item.get("output"), str) else ""
            images: list[str] = []
            if item.get("output_items"):
                content, images = _text_and_images(item["output_items"])
            messages.append(
                {
                    "role": "tool",
                    "content": content,
                    "images": images,
                    "tool_call_id": item.get("call_id")
                    if isinstance(item.get("call_id"), str)
                    else "",
                }
            )
            last_calls = set()
        # web_search_call items are history only: the assistant message after one holds its result
    if pending:
        messages.append({"role": "assistant", "content": "", "thinking": pending})
    return [{k: v for k, v in m.items() if v or k in ("role", "content")} for m in messages]


def _function(tool: dict) -> dict:
    parameters = tool.get("parameters")
    native = {
        "name": tool.get("name") if isinstance(tool.get("name"), str) else "",
        "description": tool.get("description") if isinstance(tool.get("description"), str) else "",
    }
    if isinstance(parameters, dict):
        native["parameters"] = parameters
    return {"type": tool.get("type"), "function": native}


def _expand(tool: dict) -> list[dict]:
    """A tool as native tools: a ``namespace`` gives its members, named ``<namespace>.<name>``."""
    if tool.get("type") != "namespace":
        return [_function(tool)]
    prefix = f"{tool['name']}." if isinstance(tool.get("name"), str) and tool["name"] else ""
    expanded = []
    for member in tool.get("tools") or ():
        if not isinstance(member, dict):
            raise BadRequest("invalid type for 'tools': expected objects")
        for native in _expand(member):
            if prefix and not native["function"]["name"].startswith(prefix):
                native["function"]["name"] = prefix + native["function"]["name"]
            expanded.append(native)
    return expanded


def has_web_search(tools: list[dict]) -> bool:
    return any(tool.get("type") == "web_search" for tool in tools)


def native_tools(tools: list[dict]) -> list[dict]:
    web_search = has_web_search(tools)
    native = []
    for tool in tools:
        if tool.get("type") == "web_search":
            native.append(WEB_SEARCH_FUNCTION)
            continue
        # the built-in tool owns its name: a function of the same name would make calls ambiguous
        native.extend(
            t for t in _expand(tool) if not (web_search and t["function"]["name"] == "web_search")
        )
    return native


class ResponsesRequest:
    """The request's fields, checked, with what the reply echoes back."""

    def __init__(self, body: dict):
        self.model = typed(body, "model", str, "a string") or ""
        self.instructions = typed(body, "instructions", str, "a string") or ""
        self.text_input, self.items = parse_input(body.get("input"))
        self.max_output_tokens = typed(body, "max_output_tokens", int, "an integer")
        self.temperature = typed(body, "temperature", (int, float), "a number")
        self.top_p = typed(body, "top_p", (int, float), "a number")
        self.truncation = typed(body, "truncation", str, "a string")
        self.background = typed(body, "background", bool, "a boolean") or False
        self.stream = typed(body, "stream", bool, "a boolean") or False
        reasoning = typed(body, "reasoning", dict, "an object") or {}
        self.effort = typed(reasoning, "effort", str, "a string") or ""
        self.summary = typed(reasoning, "summary", str, "a string") or ""
        text = typed(body, "text", dict, "an object")
        self.text_format = typed(text, "format", dict, "an object") if text is not None else None
        self.tools = typed(body, "tools", list, "an array") or []
        if not all(isinstance(tool, dict) for tool in self.tools):
            raise BadRequest("invalid type for 'tools': expected objects")

    @property
    def web_search(self) -> bool:
        return has_web_search(self.tools)

    def native(self) -> dict:
        options: dict = {"temperature": 1.0 if self.temperature is None else self.temperature}
        if self.top_p is not None:  # no default here, unlike chat completions (as in Ollama)
            options["top_p"] = self.top_p
        if self.max_output_tokens is not None:
            options["num_predict"] = self.max_output_tokens
        native = {
            "model": self.model,
            "messages": native_messages(self.instructions, self.text_input, self.items),
            "options": options,
        }
        think = think_from_effort(self.effort)
        if think is not None:
            native["think"] = think
        tools = native_tools(self.tools)
        if tools:
            native["tools"] = tools
        if (
            self.text_format
            and self.text_format.get("type") == "json_schema"
            and self.text_format.get("schema") is not None
        ):
            native["format"] = self.text_format["schema"]
        return native
