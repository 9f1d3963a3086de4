"""What the renderers and parsers share: Go's view of the API's JSON (a tool as Go's structs hold
it, values printed as Go prints them) and the little string tools of streaming parsers."""

from __future__ import annotations

import json
import re

from ollamakit.interfaces import Parser
from ollamakit.lib.structured import Parsed
from ollamakit.lib.templates import format_v, property_value, to_json


# -- Go's view of values -------------------------------------------------------------------


def go_value(value):
    """A JSON value as Go holds it after decoding into ``any``: numbers are float64."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {k: go_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [go_value(v) for v in value]
    return value


def go_sprint(value) -> str:
    """fmt's ``%v`` of a decoded JSON value."""
    return format_v(go_value(value))


def go_marshal(value) -> str:
    """encoding/json of a decoded JSON value (maps with sorted keys, HTML characters escaped)."""
    return to_json(go_value(value))


def notation_value(value, quote: str, null: str = "<nil>", quoted_keys: bool = False) -> str:
    """A value in the Gemma family's call notation: strings between ``quote`` markers, whole
    numbers without a fraction, maps with sorted keys (bare, or quoted when ``quoted_keys``),
    ``null`` for a null."""
    value = go_value(value)
    if value is None:
        return null
    if isinstance(value, str):
        return quote + value + quote
    if isinstance(value, bool):
        return "true" if value else "false"
    if (
        isinstance(value, float)
        and value == value
        and abs(value) != float("inf")
        and value == int(value)
        and -(2**63) <= value < 2**63
    ):
        return str(int(value))
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(
                (quote + k + quote if quoted_keys else k)
                + ":"
                + notation_value(value[k], quote, null, quoted_keys)
                for k in sorted(value)
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(notation_value(v, quote, null, quoted_keys) for v in value) + "]"
    return go_sprint(value)


def ordered_json(pairs) -> str:
    """A JSON object whose members keep their order, from (key, JSON text) pairs."""
    return "{" + ",".join(to_json(str(key)) + ":" + text for key, text in pairs) + "}"


def arguments_json(arguments: dict) -> str:
    """encoding/json of a tool call's arguments: Ollama keeps their order (nested maps sort)."""
    return ordered_json((key, go_marshal(value)) for key, value in arguments.items())


def parameters_json(params) -> str:
    """encoding/json of ``api.ToolFunctionParameters``: type, $defs, items, required, then the
    properties in their order (null when absent)."""
    params = params if isinstance(params, dict) else {}
    kind = params.get("type")
    pairs = [("type", to_json(kind if isinstance(kind, str) else ""))]
    for key in ("$defs", "items"):
        if params.get(key) is not None:
            pairs.append((key, go_marshal(params[key])))
    if params.get("required"):
        pairs.append(("required", go_marshal(list(params["required"]))))
    props = params.get("properties")
    pairs.append(
        (
            "properties",
            ordered_json((name, to_json(property_value(p))) for name, p in props.items())
            if isinstance(props, dict)
            else "null",
        )
    )
    return ordered_json(pairs)


def tool_json(tool) -> str:
    """encoding/json of ``api.Tool``: type, items, then the function (name, description, parameters)."""
    tool = tool if isinstance(tool, dict) else {}
    function = function_of(tool)
    pairs = [("type", to_json(tool.get("type") if isinstance(tool.get("type"), str) else ""))]
    if tool.get("items") is not None:
        pairs.append(("items", go_marshal(tool["items"])))
    inner = [("name", to_json(function.get("name") or ""))]
    if function.get("description"):
        inner.append(("description", to_json(function["description"])))
    inner.append(("parameters", parameters_json(function.get("parameters"))))
    pairs.append(("function", ordered_json(inner)))
    return ordered_json(pairs)


def with_spaces(compact: str) -> str:
    """Compact JSON with a space after each ``:`` and ``,`` outside strings (how some models saw
    their tools in training)."""
    out, in_string, escaped = [], False, False
    for ch in compact:
        out.append(ch)
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in ":,":
            out.append(" ")
    return "".join(out)


def _not_json(name: str):
    raise ValueError(f"{name} is not JSON")


def go_json(text: str):
    """encoding/json's reading of a JSON text: as json.loads, without NaN and Infinity."""
    return json.loads(text, parse_constant=_not_json)


def go_int(raw: str) -> int | None:
    """strconv.ParseInt(raw, 10, 64): an optional sign and decimal digits, within 64 bits."""
    if not re.fullmatch(r"[+-]?[0-9]+", raw):
        return None
    value = int(raw)
    return value if -(2**63) <= value < 2**63 else None


def go_float(raw: str) -> float | None:
    """strconv.ParseFloat(raw, 64) for decimal text: no spaces or underscores around or in it."""
    if not raw or raw != raw.strip() or "_" in raw:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def go_indent(compact: str, indent: str) -> str:
    """encoding/json.Indent of compact JSON: one member per line, empty objects and arrays kept
    as ``{}`` and ``[]``."""
    out, depth, in_string, escaped = [], 0, False, False
    n = 0
    while n < len(compact):
        ch = compact[n]
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif ch in "{[":
            if n + 1 < len(compact) and compact[n + 1] in "}]":
                out.append(ch + compact[n + 1])
                n += 2
                continue
            depth += 1
            out.append(ch + "\n" + indent * depth)
        elif ch in "}]":
            depth -= 1
            out.append("\n" + indent * depth + ch)
        elif ch == ",":
            out.append(",\n" + indent * depth)
        elif ch == ":":
            out.append(": ")
        else:
            out.append(ch)
        n += 1
    return "".join(out)


def property_fields(prop) -> dict:
    """A tool property as Go's ``api.ToolProperty`` marshals it, read back into a map: only
    its known fields, empty ones left out."""
    return json.loads(to_json(property_value(prop)))


def parameters_fields(params) -> dict:
    """A tool's ``parameters`` as Go's ``api.ToolFunctionParameters`` marshals it, as a map."""
    params = params if isinstance(params, dict) else {}
    out = {"type": params.get("type") if isinstance(params.get("type"), str) else ""}
    for key in ("$defs", "items"):
        if params.get(key) is not None:
            out[key] = params[key]
    if params.get("required"):
        out["required"] = list(params["required"])
    props = params.get("properties")
    out["properties"] = (
        {k: property_fields(v) for k, v in props.items()} if isinstance(props, dict) else None
    )
    return out


def function_of(tool) -> dict:
    tool = tool if isinstance(tool, dict) else {}
    function = tool.get("function")
    return function if isinstance(function, dict) else {}


def properties_of(tool) -> dict:
    props = (function_of(tool).get("parameters") or {}).get("properties")
    return props if isinstance(props, dict) else {}


def property_types(prop) -> list[str]:
    """A property's ``type``, a string or a list, as a list."""
    kind = prop.get("type") if isinstance(prop, dict) else None
    if isinstance(kind, str):
        return [kind]
    return [t for t in kind or () if isinstance(t, str)] if isinstance(kind, list) else []


def think_bool(think) -> bool:
    """Ollama's ``ThinkValue.Bool``: true, or a thinking level."""
    return think is True or think in ("high", "medium", "low", "max")


def image_tags(content: str, count: int, offset: int) -> tuple[str, int]:
    """A message's images as ``[img-N]`` markers (N counted across the conversation from
    ``offset``): each in place of a literal ``[img]``, the rest in front, with a space before
    text that does not start with one. Content that already has markers is left alone."""
    if not count:
        return content, offset
    if "[img-" in content:
        return content, offset + count
    prefix = ""
    for n in range(count):
        tag = f"[img-{offset + n}]"
        if "[img]" in content:
            content = content.replace("[img]", tag, 1)
        else:
            prefix += tag
    if prefix and content and not is_go_space(content[0]):
        prefix += " "
    return prefix + content, offset + count


def call_function(call) -> tuple[str, dict]:
    """(name, arguments) of a message's tool call."""
    function = (call or {}).get("function") if isinstance(call, dict) else None
    function = function if isinstance(function, dict) else {}
    arguments = function.get("arguments")
    return function.get("name") or "", arguments if isinstance(arguments, dict) else {}


def tool_call(name: str, arguments: dict, index: int = 0) -> dict:
    return {"function": {"index": index, "name": name, "arguments": arguments}}


# -- streaming ------------------------------------------------------------------------------


def overlap(text: str, delim: str) -> int:
    """The length of the longest end of ``text`` that begins ``delim``."""
    for length in range(min(len(delim), len(text)), 0, -1):
        if text.endswith(delim[:length]):
            return length
    return 0


# Go's unicode.IsSpace is Python's isspace() less the separators U+001C..U+001F. A parser holds
# back a run of space until what follows it comes, and strips the run again at every token: the
# strips below take str's own (about 0.3 ns a character) and step back over a separator only
# where one is there, since a loop in Python made a model's long run of blank lines minutes long.
SEPARATORS = "\x1c\x1d\x1e\x1f"


def is_go_space(ch: str) -> bool:
    return ch.isspace() and ch not in SEPARATORS


def lstrip_go(text: str) -> str:
    stripped = text.lstrip()
    head = text[: len(text) - len(stripped)]
    cut = min((at for at in map(head.find, SEPARATORS) if at >= 0), default=-1)
    return stripped if cut < 0 else text[cut:]


def rstrip_go(text: str) -> str:
    stripped = text.rstrip()
    tail = text[len(stripped) :]
    cut = max(map(tail.rfind, SEPARATORS))
    return stripped if cut < 0 else text[: len(stripped) + cut + 1]


def strip_go(text: str) -> str:
    """Go's strings.TrimSpace."""
    return rstrip_go(lstrip_go(text))


def trailing_space(text: str) -> int:
    return len(text) - len(rstrip_go(text))


class EventParser(Parser):
    """A parser that cuts its held text into events, ``("content" | "thinking", text)`` and
    ``("call", raw)``: a subclass gives ``events()`` (which consumes ``self.held``) and, when a
    raw call is not already ``{"name", "arguments"}``, ``read_call``. Calls are numbered in
    the order they come."""

    held = ""
    count = 0
    state = ""

    def events(self) -> list[tuple]:
        """What the held text settles: ``_eat`` step by step, until a step says to wait."""
        events: list[tuple] = []
        while self._eat(events):
            pass
        return events

    def _eat(self, events: list) -> bool:
        """One step over ``self.held``: append what it settles; True when another step may
        settle more."""
        raise NotImplementedError

    def read_call(self, raw) -> dict:
        return raw

    def _split(self, tag: str) -> tuple[str, str]:
        """Text before ``tag`` (less its trailing space) and after it (less leading space)."""
        before, after = self.held.split(tag, 1)
        self.held = lstrip_go(after)
        return rstrip_go(before), self.held

    def _skip_space(self, then: str) -> bool:
        """Drop leading space; once there is more, go on in state ``then``."""
        self.held = lstrip_go(self.held)
        if not self.held:
            return False
        self.state = then
        return True

    def _think_until(self, events: list, closing: str, then: str) -> bool:
        """The thinking state's step: the thought up to ``closing`` (less the space around it),
        then state ``then``; before ``closing`` comes, all but what may start it and the space
        before that."""
        held = self.held
        if closing in held:
            thought, rest = held.split(closing, 1)
            self.held, self.state = lstrip_go(rest), then
            if rstrip_go(thought):
                events.append(("thinking", rstrip_go(thought)))
            return True
        before = held[: len(held) - overlap(held, closing)]
        end = len(before) - trailing_space(before)
        if end:
            events.append(("thinking", held[:end]))
        self.held = held[end:]
        return False

    def add(self, text: str, done: bool) -> Parsed:
        self.held += text
        content, thinking, calls = [], [], []
        for kind, value in self.events():
            if kind == "call":
                call = self.read_call(value)
                calls.append(tool_call(call["name"], call["arguments"], self.count))
                self.count += 1
            else:
                (thinking if kind == "thinking" else content).append(value)
        return Parsed("".join(content), "".join(thinking), calls)


class PassthroughParser(Parser):
    """``passthrough``: the output as it comes, no thinking and no tool calls."""

    def add(self, text: str, done: bool) -> Parsed:
        return Parsed(text)
