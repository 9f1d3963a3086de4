"""``functiongemma``: FunctionGemma's prompt (a developer turn declaring the functions, calls and
responses in its ``<start_function_call>call:name{key:value}`` notation with ``<escape>``-quoted
strings) and the reading of its calls."""

from __future__ import annotations

import re

from ollamakit.interfaces import Parser, Renderer
from ollamakit.lib.structured import Parsed

from .common import call_function, function_of, notation_value, overlap, strip_go, tool_call

DEFAULT_SYSTEM = "You can do function calling with the following functions:"
CALL_OPEN, CALL_CLOSE = "<start_function_call>", "<end_function_call>"
ESCAPE = "<escape>"


def arg_value(value) -> str:
    """A value in FunctionGemma's notation: strings between ``<escape>``, maps with sorted keys."""
    return notation_value(value, ESCAPE)


class FunctionGemmaRenderer(Renderer):
    leading_bos = "<bos>"

    def render(self, messages, tools, think) -> str:
        out = ["<bos>"]
        system = ""
        if messages and messages[0].get("role") in ("system", "developer"):
            system, messages = messages[0].get("content") or "", messages[1:]
        if system or tools:
            out.append("<start_of_turn>developer\n" + strip_go(system))
            if tools:
                if system:
                    out.append("\n")
                if strip_go(system) != DEFAULT_SYSTEM:
                    out.append(DEFAULT_SYSTEM)
            out.extend(self.declaration(t) for t in tools or ())
            out.append("<end_of_turn>\n")
        previous = ""
        for n, message in enumerate(messages):
            role, content = message.get("role"), message.get("content") or ""
            if role == "assistant":
                if previous != "tool_response":
                    out.append("<start_of_turn>model\n")
                previous = ""
                out.append(strip_go(content))
                calls = message.get("tool_calls") or []
                for call in calls:
                    name, arguments = call_function(call)
                    out.append(
                        CALL_OPEN
                        + "call:"
                        + name
                        + "{"
                        + ",".join(k + ":" + arg_value(arguments[k]) for k in sorted(arguments))
                        + "}"
                        + CALL_CLOSE
                    )
                if calls and n + 1 < len(messages) and messages[n + 1].get("role") == "tool":
                    out.append("<start_function_response>")
                    previous = "tool_call"
                else:
                    out.append("<end_of_turn>\n")
            elif role == "user":
                if previous != "tool_response":
                    out.append("<start_of_turn>user\n")
                previous = ""
                out.append(strip_go(content) + "<end_of_turn>\n")
            elif role == "tool":
                if previous != "tool_call":
                    out.append("<start_function_response>")
                out.append(
                    "response:"
                    + self.answered_call(messages, n)
                    + "{"
                    + arg_value(content)
                    + "}<end_function_response>"
                )
                previous = "tool_response"
            else:
                out.append(
                    "<start_of_turn>" + (role or "") + "\n" + strip_go(content) + "<end_of_turn>\n"
                )
        if previous != "tool_response":
            out.append("<start_of_turn>model\n")
        return "".join(out)

    @staticmethod
    def answered_call(messages: list[dict], n: int) -> str:
        """The name of the call a tool result answers: the same position among the results
        after the last assistant turn with calls."""
        for m in range(n - 1, -1, -1):
            calls = messages[m].get("tool_calls") or []
            if messages[m].get("role") == "assistant" and calls:
                position = sum(1 for k in range(m + 1, n) if messages[k].get("role") == "tool")
                return call_function(calls[position])[0] if position < len(calls) else ""
        return ""

    @staticmethod
    def declaration(tool) -> str:
        function = function_of(tool)
        params = function.get("parameters") if isinstance(function.get("parameters"), dict) else {}
        out = [
            "<start_function_declaration>declaration:"
            + (function.get("name") or "")
            + "{description:"
            + ESCAPE
            + (function.get("description") or "")
            + ESCAPE
        ]
        props = params.get("properties")
        kind = params.get("type") if isinstance(params.get("type"), str) else ""
        if isinstance(props, dict) or kind:
            parts = []
            if isinstance(props, dict) and props:
                fields = []
                for name in sorted(props):
                    prop = props[name] if isinstance(props[name], dict) else {}
                    field = (
                        name + ":{description:" + ESCAPE + (prop.get("description") or "") + ESCAPE
                    )
                    types = prop.get("type")
                    first = (
                        types
                        if isinstance(types, str)
                        else (types[0] if isinstance(types, list) and types else "")
                    )
                    if first:
                        field += ",type:" + ESCAPE + first.upper() + ESCAPE
                    fields.append(field + "}")
                parts.append("properties:{" + ",".join(fields) + "}")
            if params.get("required"):
                parts.append(
                    "required:[" + ",".join(ESCAPE + r + ESCAPE for r in params["required"]) + "]"
                )
            if kind:
                parts.append("type:" + ESCAPE + kind.upper() + ESCAPE)
            out.append(",parameters:{" + ",".join(parts) + "}")
        out.append("}<end_function_declaration>")
        return "".join(out)


# -- the parser ---------------------------------------------------------------------------

CALL = re.compile(r"call:([^{]+)\{(.*)\}")
FLOAT_PREFIX = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def split_arguments(text: str) -> list[str]:
    parts, current, depth, escaped, n = [], "", 0, False, 0
    while n < len(text):
        if text.startswith(ESCAPE, n):
            escaped = not escaped
            current += ESCAPE
            n += len(ESCAPE)
            continue
        ch = text[n]
        n += 1
        if escaped:
            current += ch
        elif ch in "{[":
            depth += 1
            current += ch
        elif ch in "}]":
            depth -= 1
            current += ch
        elif ch == "," and depth == 0:
            if current:
                parts.append(current)
                current = ""
        else:
            current += ch
    if current:
        parts.append(current)
    return parts


def parse_number(text: str):
    """fmt.Sscanf's %d (only if it reads the whole text back), then %f (a number at the start)."""
    whole = re.fullmatch(r"[+-]?\d+", text)
    if whole and str(int(text)) == text and -(2**63) <= int(text) < 2**63:
        return int(text)
    match = FLOAT_PREFIX.match(text.lstrip())
    return float(match.group()) if match else None


def parse_value(text: str):
    if len(text) >= 2 * len(ESCAPE) and text.startswith(ESCAPE) and text.endswith(ESCAPE):
        return text[len(ESCAPE) : -len(ESCAPE)]
    if text in ("true", "false"):
        return text == "true"
    number = parse_number(text)
    if number is not None:
        return number
    if text.startswith("[") and text.endswith("]"):
        return [parse_value(part) for part in split_arguments(text[1:-1])]
    if text.startswith("{") and text.endswith("}"):
        return {
            p.split(":", 1)[0]: parse_value(p.split(":", 1)[1])
            for p in split_arguments(text[1:-1])
            if ":" in p
        }
    return text


def parse_call(text: str) -> dict:
    match = CALL.search(text)
    if match is None:  # a call with nothing readable is still a call, unnamed
        return {"name": "", "arguments": {}}
    arguments = {}
    for part in split_arguments(match.group(2)):
        if ":" in part:
            key, value = part.split(":", 1)
            arguments[key] = parse_value(value)
    return {"name": match.group(1), "arguments": arguments}


class FunctionGemmaParser(Parser):
    has_tool_support = True
    preserved_tokens = (CALL_OPEN, CALL_CLOSE)

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.held, self.calling, self.count = "", False, 0

    def init(self, tools, last_message, think):
        self.calling, self.count = False, 0
        return tools

    def add(self, text: str, done: bool) -> Parsed:
        self.held += text
        content, calls = [], []
        for kind, value in self.events():
            if kind == "content":
                content.append(value)
            else:
                calls.append(tool_call(value["name"], value["arguments"], self.count))
                self.count += 1
        return Parsed("".join(content), "", calls)

    def events(self) -> list[tuple]:
        events: list[tuple] = []
        while self.held:
            if not self.calling:
                if CALL_OPEN in self.held:
                    before, self.held = self.held.split(CALL_OPEN, 1)
                    if before:
                        events.append(("content", before))
                    self.calling = True
                    continue
                keep = overlap(self.held, CALL_OPEN)
                if self.held[: len(self.held) - keep]:
                    events.append(("content", self.held[: len(self.held) - keep]))
                self.held = self.held[len(self.held) - keep :]
                break
            if CALL_CLOSE not in self.held:
                break
            inside, self.held = self.held.split(CALL_CLOSE, 1)
            events.append(("call", parse_call(inside)))
            self.calling = CALL_OPEN in self.held  # more calls follow
        return events
