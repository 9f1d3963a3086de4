"""A native request's fields, checked: what chat, generate and embed share (``Common``), and
the fields of each, with Ollama's error words."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from ..config import parse_duration
from ..errors import BadRequest
from ..web.body import field

THINK_LEVELS = ("high", "medium", "low", "max")
MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_MESSAGES = 100_000
MESSAGE_TEXT_FIELDS = ("content", "thinking", "tool_name", "tool_call_id")
MAX_CONTEXT_TOKENS = 1 << 22


@dataclass
class Common:
    """Fields every inference request has, validated."""

    model: str
    stream: bool
    keep_alive: float | None  # seconds (inf: forever); None: not given
    options: dict | None
    think: bool | str | None
    logprobs: bool
    top_logprobs: int
    truncate: bool
    shift: bool
    format: object
    debug_render_only: bool

    @property
    def unload_requested(self) -> bool:
        return self.keep_alive == 0


def parse_keep_alive(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadRequest(f"Unsupported type: '{type(value).__name__}'")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def parse_think(value):
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value in THINK_LEVELS:
        return value
    if isinstance(value, str):
        raise BadRequest(
            f'invalid think value: "{value}" (must be "high", "medium", "low", "max", true, or false)'
        )
    raise BadRequest(
        f"json: cannot unmarshal {type(value).__name__} into field think of type bool or string"
    )


def parse_options(body: dict) -> dict | None:
    options = body.get("options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest(
            f"json: cannot unmarshal {type(options).__name__} into field options of type map"
        )
    return options


def parse_common(body: dict) -> Common:
    top_logprobs = field(body, "top_logprobs", int, 0)
    if not 0 <= top_logprobs <= 20:
        raise BadRequest("top_logprobs must be between 0 and 20")
    options = parse_options(body)
    return Common(
        model=field(body, "model", str, ""),
        stream=field(body, "stream", bool, True),
        keep_alive=parse_keep_alive(body.get("keep_alive")),
        options=options,
        think=parse_think(body.get("think")),
        logprobs=field(body, "logprobs", bool, False),
        top_logprobs=top_logprobs,
        truncate=field(body, "truncate", bool, True),
        shift=field(body, "shift", bool, True),
        format=body.get("format"),
        debug_render_only=field(body, "_debug_render_only", bool, False),
    )


def decode_images(images, where: str = "images") -> list[bytes]:
    if images is None:
        return []
    if not isinstance(images, list):
        raise BadRequest(
            f"json: cannot unmarshal {type(images).__name__} into field {where} of type []string"
        )
    decoded = []
    for image in images:
        if not isinstance(image, str):
            raise BadRequest(
                f"json: cannot unmarshal {type(image).__name__} into field {where} of type string"
            )
        if len(image) > MAX_IMAGE_BYTES * 4 // 3 + 4:
            raise BadRequest("image is too large")
        try:
            # strict: only the alphabet, padding only at the end (a2b_base64's strict_mode is 3.11's)
            decoded.append(base64.b64decode(image.encode("ascii"), validate=True))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            bad = next((i for i, c in enumerate(image) if not (c.isalnum() or c in "+/=")), 0)
            raise BadRequest(f"illegal base64 data at input byte {bad}") from None
    return decoded


def parse_messages(value) -> list[dict]:
    """Request messages, checked field by field; roles are lower-cased as Ollama does."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(
            f"json: cannot unmarshal {type(value).__name__} into field messages of type []Message"
        )
    if len(value) > MAX_MESSAGES:
        raise BadRequest("too many messages")
    messages = []
    for item in value:
        if not isinstance(item, dict):
            raise BadRequest(
                f"json: cannot unmarshal {type(item).__name__} into field messages of type Message"
            )
        message = {
            "role": field(item, "role", str, "").lower(),
            "content": field(item, "content", str, ""),
        }
        for key in MESSAGE_TEXT_FIELDS[1:]:
            if item.get(key) is not None:
                message[key] = field(item, key, str, "")
        images = decode_images(item.get("images"), "images")
        if images:
            message["images"] = images
        tool_calls = item.get("tool_calls")
        if tool_calls is not None:
            if not isinstance(tool_calls, list) or not all(isinstance(c, dict) for c in tool_calls):
                raise BadRequest("json: cannot unmarshal tool_calls: expected an array of objects")
            for call in tool_calls:
                check_tool_call(call)
            message["tool_calls"] = tool_calls
        messages.append(message)
    return messages


def check_tool_call(call: dict) -> None:
    """Ollama decodes a call's ``function`` into a struct and its ``arguments`` into an
    ordered map, so either in another shape (arguments as a JSON string, say) is a 400."""
    function = call.get("function")
    if function is None:
        return
    if not isinstance(function, dict):
        raise BadRequest(
            f"json: cannot unmarshal {type(function).__name__} into field "
            "tool_calls.function of type ToolCallFunction"
        )
    arguments = function.get("arguments")
    if arguments is not None and not isinstance(arguments, dict):
        raise BadRequest(
            f"json: cannot unmarshal {type(arguments).__name__} into field "
            "tool_calls.function.arguments: expected a JSON object"
        )


# where a tool's fields must be of a type, as Ollama's api.Tool declares them
TOOL_FIELD_TYPES = (
    (("type",), str, "string"),
    (("function",), dict, "ToolFunction"),
    (("function", "name"), str, "string"),
    (("function", "description"), str, "string"),
    (("function", "parameters"), dict, "ToolFunctionParameters"),
    (("function", "parameters", "type"), str, "string"),
    (("function", "parameters", "required"), list, "[]string"),
    (("function", "parameters", "properties"), dict, "ToolPropertiesMap"),
)


def parse_tools(body: dict) -> list | None:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise BadRequest(
            f"json: cannot unmarshal {type(tools).__name__} into field tools of type []Tool"
        )
    for tool in tools or ():
        check_tool(tool)
    return tools or None


def check_tool(tool) -> None:
    """A tool in another shape than Ollama's ``api.Tool`` is a 400 there (it is decoded into
    that struct), so here too, before it reaches a template."""
    if not isinstance(tool, dict):
        raise BadRequest(
            f"json: cannot unmarshal {type(tool).__name__} into field tools of type Tool"
        )
    for path, kind, go_type in TOOL_FIELD_TYPES:
        value: object = tool
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None and not isinstance(value, kind):
            raise BadRequest(
                f"json: cannot unmarshal {type(value).__name__} into field "
                f"tools.{'.'.join(path)} of type {go_type}"
            )
    required = ((tool.get("function") or {}).get("parameters") or {}).get("required") or ()
    if not all(isinstance(name, str) for name in required):
        raise BadRequest(
            "json: cannot unmarshal into field tools.function.parameters.required of type []string"
        )


def parse_context(body: dict) -> list[int]:
    """``/api/generate``'s ``context``: the token ids an earlier reply returned."""
    value = body.get("context")
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_CONTEXT_TOKENS:
        raise BadRequest("json: cannot unmarshal context: expected an array of integers")
    if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value):
        raise BadRequest("json: cannot unmarshal context: expected an array of integers")
    return value
