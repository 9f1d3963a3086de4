"""``qwen3-coder``: Qwen3-Coder's ChatML prompt with its XML-like tool format, and the parser for
its tool calls::

    <tool_call>
    <function=get_weather>
    <parameter=city>
    Paris
    </parameter>
    </function>
    </tool_call>

Argument values are text; the parser gives them the type the tool's parameter declares.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from ollamakit.interfaces import Parser, Renderer
from ollamakit.lib.structured import Parsed

from .common import (
    call_function,
    function_of,
    go_marshal,
    go_sprint,
    overlap,
    parameters_fields,
    properties_of,
    property_fields,
    property_types,
    rstrip_go,
    lstrip_go,
    trailing_space,
    tool_call,
)

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"
DEFAULT_SYSTEM = (
    "You are Qwen, a helpful AI assistant that can interact with a computer to solve tasks."
)
TOOL_INSTRUCTIONS = (
    "\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:\n\n"
    "<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n"
    "<parameter=example_parameter_2>\nThis is the value for the second parameter\nthat can span\nmultiple lines\n"
    "</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n"
    "- Function calls MUST follow the specified format: an inner <function=...></function> block must be nested "
    "within <tool_call></tool_call> XML tags\n"
    "- Required parameters MUST be specified\n"
    "- You may provide optional reasoning for your function call in natural language BEFORE the function call, "
    "but NOT after\n"
    "- If there is no function call available, answer the question like normal with your current knowledge and do "
    "not tell the user about function calls\n</IMPORTANT>"
)


def extra_keys(fields: dict, handled: tuple[str, ...]) -> str:
    """The fields a definition has beyond ``handled``, each as ``<key>value</key>``: maps and
    lists as JSON, other values as text (sorted: Go's map order is random)."""
    out = []
    for key in sorted(fields):
        value = fields[key]
        if key in handled or value is None:
            continue
        text = go_marshal(value) if isinstance(value, (dict, list)) else go_sprint(value)
        out.append(f"\n<{key}>{text}</{key}>")
    return "".join(out)


def definition_type(types: list[str]) -> str:
    if not types:
        return "[]"
    return types[0] if len(types) == 1 else go_marshal(types)


def argument_text(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return go_marshal(value)
    return go_sprint(value)


class Qwen3CoderRenderer(Renderer):
    def render(self, messages, tools, think) -> str:
        out: list[str] = []
        system = ""
        turns = []
        for message in messages:
            if message.get("role") != "system":
                turns.append(message)
            elif not system:  # the first system message wins
                system = message.get("content") or ""
        if system or tools:
            out.append(IM_START + "system\n" + (system or DEFAULT_SYSTEM))
            if tools:
                out.append(self._tools(tools))
            out.append(IM_END + "\n")
        for n, message in enumerate(turns):
            role, content = message.get("role") or "", message.get("content") or ""
            last = n == len(turns) - 1
            prefill = last and role == "assistant"
            if role == "assistant" and message.get("tool_calls"):
                out.append(IM_START + "assistant\n")
                if content:
                    out.append(content + "\n")
                for call in message["tool_calls"]:
                    name, arguments = call_function(call)
                    out.append("\n<tool_call>\n<function=" + name + ">")
                    for key, value in arguments.items():
                        out.append(
                            "\n<parameter=" + key + ">\n" + argument_text(value) + "\n</parameter>"
                        )
                    out.append("\n</function>\n</tool_call>")
                out.append(IM_END + "\n")
            elif role == "assistant":
                out.append(IM_START + "assistant\n" + content)
                if not prefill:
                    out.append(IM_END + "\n")
            elif role == "tool":
                # consecutive tool results share one user turn, each in its own tags
                if n == 0 or turns[n - 1].get("role") != "tool":
                    out.append(IM_START + "user")
                out.append("\n<tool_response>\n" + content + "\n</tool_response>")
                if last or turns[n + 1].get("role") != "tool":
                    out.append(IM_END + "\n")
            else:
                out.append(IM_START + role + "\n" + content + IM_END + "\n")
            if last and not prefill:
                out.append(IM_START + "assistant\n")
        return "".join(out)

    @staticmethod
    def _tools(tools) -> str:
        out = ["\n\n# Tools\n\nYou have access to the following functions:\n\n<tools>"]
        for tool in tools:
            function = function_of(tool)
            out.append("\n<function>\n<name>" + (function.get("name") or "") + "</name>")
            if function.get("description"):
                out.append("\n<description>" + function["description"] + "</description>")
            out.append("\n<parameters>")
            for name, prop in properties_of(tool).items():
                fields = property_fields(prop)
                out.append("\n<parameter>\n<name>" + name + "</name>")
                types = property_types(fields)
                if types:
                    out.append("\n<type>" + definition_type(types) + "</type>")
                if fields.get("description"):
                    out.append("\n<description>" + fields["description"] + "</description>")
                out.append(extra_keys(fields, ("type", "description")))
                out.append("\n</parameter>")
            out.append(
                extra_keys(parameters_fields(function.get("parameters")), ("type", "properties"))
            )
            out.append("\n</parameters>\n</function>")
        out.append("\n</tools>" + TOOL_INSTRUCTIONS)
        return "".join(out)


# -- the parser ---------------------------------------------------------------------------

TAG = re.compile(r"<(\w+)=([^>]+)>")
XML_TAG = re.compile(r"</?(?:function|parameter)(?:\s+name=\"[^\"]*\")?>")


def to_xml(raw: str) -> str:
    """``<function=name>`` becomes ``<function name="name">``, and the text between tags is
    escaped, so that an XML parser reads the call."""
    transformed = TAG.sub(
        lambda m: (
            f'<{m.group(1)} name="{escape(m.group(2), {chr(34): "&#34;", chr(39): "&#39;"})}">'
        ),
        raw,
    )
    out, last = [], 0
    for m in XML_TAG.finditer(transformed):
        out.append(escape(transformed[last : m.start()]))
        out.append(m.group())
        last = m.end()
    out.append(escape(transformed[last:]))
    return "".join(out)


def first_element(text: str):
    """The first element of ``text``, read as Go's xml.Unmarshal reads it: text before it and
    anything after it are ignored."""
    reader = ET.XMLPullParser(events=("start", "end"))
    depth = 0
    try:
        reader.feed("<calls>" + text)
        for event, element in reader.read_events():
            depth += 1 if event == "start" else -1
            if event == "end" and depth == 1:
                return element
    except ET.ParseError as exc:
        raise ValueError(f"error parsing tool call: {exc}") from None
    raise ValueError("error parsing tool call: unexpected EOF")


def direct_text(element) -> str:
    """The character data directly inside ``element`` (Go's ``,chardata``)."""
    return (element.text or "") + "".join(child.tail or "" for child in element)


def parse_call(raw: str, tools) -> dict:
    root = first_element(to_xml(raw))
    if root.tag != "function":
        raise ValueError(f"expected element type <function> but have <{root.tag}>")
    name = root.get("name") or ""
    props = next((properties_of(t) for t in tools or () if function_of(t).get("name") == name), {})
    arguments = {}
    for parameter in root.findall("parameter"):
        prop = props.get(parameter.get("name") or "")
        types = []
        if isinstance(prop, dict):
            any_of = prop.get("anyOf")
            types = (
                [t for p in any_of for t in property_types(p)] if any_of else property_types(prop)
            )
        arguments[parameter.get("name") or ""] = parse_value(direct_text(parameter), types)
    return {"name": name, "arguments": arguments}


def parse_value(raw: str, types: list[str]):
    """A parameter's text as the type its tool declares: one leading and one trailing newline
    dropped; ``null`` is null whatever the type; with several types, the most specific that
    reads (boolean, integer, number, array, object, then string)."""
    raw = raw.removeprefix("\n").removesuffix("\n")
    return typed_value(raw, types)


def typed_value(raw: str, types: list[str]):
    if raw.lower() == "null":
        return None
    if not types:
        return raw
    only = len(types) == 1
    kinds = set(types)
    if "boolean" in kinds:
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        if only:
            return False
    if "integer" in kinds:
        number = _go_int(raw)
        if number is not None:
            return number
        if only:
            return raw
    if "number" in kinds:
        number = _go_float(raw)
        if number is not None:
            return int(number) if number == int(number) and abs(number) < 2**63 else number
        if only:
            return raw
    for kind, wanted in (("array", list), ("object", dict)):
        if kind in kinds:
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            if isinstance(value, wanted):
                return value
            if only:
                return raw
    return raw


def _go_int(raw: str) -> int | None:
    # strconv.ParseInt(raw, 10, 64): an optional sign and decimal digits, within 64 bits
    if not re.fullmatch(r"[+-]?[0-9]+", raw):
        return None
    value = int(raw)
    return value if -(2**63) <= value < 2**63 else None


def _go_float(raw: str) -> float | None:
    # strconv.ParseFloat: no spaces around, no "_"-less Python-only forms
    if raw != raw.strip() or "_" in raw or not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


class Qwen3CoderParser(Parser):
    has_tool_support = True
    preserved_tokens = (TOOL_OPEN, TOOL_CLOSE)

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.tools = None
        self.held = ""
        self.calling = False
        self.count = 0

    def init(self, tools, last_message, think):
        self.tools, self.count = tools, 0
        return tools

    def add(self, text: str, done: bool) -> Parsed:
        self.held += text
        content, calls = [], []
        for kind, value in self.events():
            if kind == "content":
                content.append(value)
            else:
                call = parse_call(value, self.tools)
                calls.append(tool_call(call["name"], call["arguments"], self.count))
                self.count += 1
        return Parsed("".join(content), "", calls)

    def events(self) -> list[tuple[str, str]]:
        """What the held text settles: ``("content", text)`` and ``("call", raw)`` in order."""
        events = []
        while True:
            if not self.calling:
                if TOOL_OPEN in self.held:
                    before, self.held = self.held.split(TOOL_OPEN, 1)
                    if rstrip_go(before):
                        events.append(("content", rstrip_go(before)))
                    self.calling = True
                    continue
                # hold back a possible start of the tag, and the space that may precede one
                keep = overlap(self.held, TOOL_OPEN)
                settled = self.held[: len(self.held) - keep]
                end = len(settled) - trailing_space(settled)
                if end:
                    events.append(("content", self.held[:end]))
                self.held = self.held[end:]
                return events
            if TOOL_CLOSE not in self.held:
                return events  # a call is read whole, once it is closed
            raw, after = self.held.split(TOOL_CLOSE, 1)
            self.held = lstrip_go(after)
            self.calling = False
            events.append(("call", raw))
