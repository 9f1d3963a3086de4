"""``nemotron-3-nano`` and ``nemotron-3.5-nano``: Nemotron 3's ChatML prompt (tools in Qwen3-Coder's
XML layout with Python-flavoured JSON, ``/think`` and ``/no_think`` toggles in 3, an effort hint in
3.5, earlier turns' thinking dropped) and the reading of its thinking and Qwen3-Coder calls."""

from __future__ import annotations

from ollamakit.interfaces import Parser, Renderer
from ollamakit.lib.structured import Parsed

from .common import (
    call_function,
    function_of,
    go_sprint,
    go_value,
    image_tags,
    lstrip_go,
    overlap,
    property_types,
    rstrip_go,
    strip_go,
    think_bool,
    trailing_space,
)
from .qwen3coder import TOOL_INSTRUCTIONS, Qwen3CoderParser
from ollamakit.lib.templates import to_json

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
THINK_OPEN, THINK_CLOSE, TOOL_OPEN = "<think>", "</think>", "<tool_call>"
TOOLS_INTRO = "# Tools\n\nYou have access to the following functions:\n\n<tools>"
QUOTE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_quote(text: str) -> str:
    """strconv.Quote: printable characters as they are, others escaped."""
    out = ['"']
    for ch in text:
        if ch in QUOTE_ESCAPES:
            out.append(QUOTE_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def property_json(prop) -> str:
    """A tool property the way the template prints it: its known fields in Go's order."""
    prop = prop if isinstance(prop, dict) else {}
    parts = []
    if prop.get("anyOf"):
        parts.append('"anyOf": [' + ", ".join(property_json(p) for p in prop["anyOf"]) + "]")
    types = property_types(prop)
    if types:
        parts.append('"type": ' + (go_quote(types[0]) if len(types) == 1 else python_json(types)))
    if prop.get("items") is not None:
        parts.append('"items": ' + python_json(prop["items"]))
    if prop.get("description"):
        parts.append('"description": ' + go_quote(prop["description"]))
    if prop.get("enum"):
        parts.append('"enum": ' + python_json(prop["enum"]))
    if isinstance(prop.get("properties"), dict):
        parts.append('"properties": ' + properties_json(prop["properties"]))
    if prop.get("required"):
        parts.append('"required": ' + python_json(prop["required"]))
    return "{" + ", ".join(parts) + "}"


def properties_json(props: dict) -> str:
    return "{" + ", ".join(go_quote(k) + ": " + property_json(v) for k, v in props.items()) + "}"


def python_json(value) -> str:
    """JSON with a space after ``:`` and ``,``, keys sorted, strings quoted as Go quotes them."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return to_json(go_value(value))
    if isinstance(value, list):
        return "[" + ", ".join(python_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(go_quote(k) + ": " + python_json(value[k]) for k in sorted(value)) + "}"
        )
    return "null"


def template_value(value) -> str:
    """A value as the template prints it: containers as JSON, scalars as Python's str()."""
    if value is None:
        return "None"
    if isinstance(value, (dict, list)):
        return python_json(value)
    if isinstance(value, bool):
        return "True" if value else "False"
    return value if isinstance(value, str) else go_sprint(value)


def strip_toggles(text: str) -> str:
    """``/think`` and ``/no_think`` removed (a real ``</think>`` kept)."""
    text = text.replace(THINK_CLOSE, "<_end_think>").replace("/think", "").replace("/no_think", "")
    return text.replace("<_end_think>", THINK_CLOSE)


class Nemotron3NanoRenderer(Renderer):
    v35 = False

    def thinks(self, messages, think) -> bool:
        enabled = think is None or think_bool(think)
        if self.v35:  # only the request decides; toggles are ordinary text
            return enabled
        for message in messages:
            if message.get("role") in ("user", "system"):
                content = message.get("content") or ""
                if "/think" in content.replace(THINK_CLOSE, ""):
                    enabled = True
                elif "/no_think" in content:
                    enabled = False
        return enabled

    def render(self, messages, tools, think) -> str:
        thinking = self.thinks(messages, think)
        medium = self.v35 and think == "medium"
        system = ""
        if messages and messages[0].get("role") == "system":
            system = messages[0].get("content") or ""
            system = system if self.v35 else strip_toggles(system)
            messages = messages[1:]
        last_user = max((n for n, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        out = [IM_START + "system\n" + system]
        if tools:
            out.append(("\n\n" if system else "") + self.tools(tools))
        out.append(IM_END + "\n")
        offset = 0
        for n, message in enumerate(messages):
            role = message.get("role")
            if role == "assistant":
                content = self.content(message)
                earlier = n < last_user
                out.append(IM_START + "assistant\n")
                if message.get("tool_calls"):
                    out.append(self.call_content(content, earlier))
                    for call in message["tool_calls"]:
                        name, arguments = call_function(call)
                        out.append(TOOL_OPEN + "\n<function=" + name + ">\n")
                        for key, value in arguments.items():
                            out.append(
                                "<parameter="
                                + key
                                + ">\n"
                                + template_value(value)
                                + "\n</parameter>\n"
                            )
                        out.append("</function>\n</tool_call>\n")
                else:
                    out.append(self.answer_content(content, earlier))
                out.append(IM_END + "\n")
            elif role in ("user", "system"):
                text, _ = image_tags(
                    message.get("content") or "", len(message.get("images") or ()), offset
                )
                if not self.v35:
                    text = strip_go(strip_toggles(text))
                elif role == "user" and n == last_user and medium:
                    text += "\n\n{reasoning effort: efficient}"
                offset += len(message.get("images") or ())
                out.append(IM_START + role + "\n" + text + IM_END + "\n")
            elif role == "tool":
                previous_tool = n > 0 and messages[n - 1].get("role") == "tool"
                next_tool = n + 1 < len(messages) and messages[n + 1].get("role") == "tool"
                text, _ = image_tags(
                    message.get("content") or "", len(message.get("images") or ()), offset
                )
                offset += len(message.get("images") or ())
                if (
                    n > 0 and not previous_tool
                ):  # a tool result with nothing before it opens no user turn
                    out.append(IM_START + "user\n")
                out.append("<tool_response>\n" + text + "\n</tool_response>\n")
                if not next_tool:
                    out.append(IM_END + "\n")
            else:
                out.append(
                    IM_START + (role or "") + "\n" + (message.get("content") or "") + IM_END + "\n"
                )
        out.append(IM_START + "assistant\n" + ("<think>\n" if thinking else "<think></think>"))
        return "".join(out)

    def content(self, message: dict) -> str:
        content = message.get("content") or ""
        if message.get("thinking"):
            if self.v35:
                return "<think>\n" + message["thinking"] + THINK_CLOSE + content
            return "<think>\n" + message["thinking"] + "\n</think>\n" + content
        if THINK_OPEN not in content and THINK_CLOSE not in content:
            return "<think></think>" + content
        return content

    @staticmethod
    def answer_content(content: str, earlier: bool) -> str:
        """An answer; an earlier turn's thinking is left out."""
        if earlier and THINK_OPEN in content and THINK_CLOSE in content:
            content = "<think></think>" + content.split(THINK_CLOSE)[-1]
        return strip_go(content)

    @staticmethod
    def call_content(content: str, earlier: bool) -> str:
        if not strip_go(content):
            return "<think></think>"
        if not earlier:
            return strip_go(content) + "\n"
        if THINK_CLOSE in content:
            content = content.split(THINK_CLOSE)[-1]
        elif THINK_OPEN in content:
            content = content.split(THINK_OPEN)[0]
        return strip_go("<think></think>" + strip_go(content)) + "\n"

    @staticmethod
    def tools(tools) -> str:
        out = [TOOLS_INTRO]
        for tool in tools:
            function = function_of(tool)
            params = (
                function.get("parameters") if isinstance(function.get("parameters"), dict) else {}
            )
            out.append("\n<function>\n<name>" + (function.get("name") or "") + "</name>")
            if function.get("description"):
                out.append("\n<description>" + strip_go(function["description"]) + "</description>")
            out.append("\n<parameters>")
            props = params.get("properties")
            for name, prop in props.items() if isinstance(props, dict) else ():
                prop = prop if isinstance(prop, dict) else {}
                out.append("\n<parameter>\n<name>" + name + "</name>")
                types = property_types(prop)
                if types:
                    kind = (
                        types[0]
                        if len(types) == 1
                        else "[" + ", ".join("'" + t + "'" for t in types) + "]"
                    )
                    out.append("\n<type>" + kind + "</type>")
                if prop.get("description"):
                    out.append("\n<description>" + strip_go(prop["description"]) + "</description>")
                if prop.get("enum"):
                    out.append("\n<enum>" + python_json(prop["enum"]) + "</enum>")
                if prop.get("anyOf"):
                    out.append(
                        "\n<anyOf>["
                        + ", ".join(property_json(p) for p in prop["anyOf"])
                        + "]</anyOf>"
                    )
                if prop.get("items") is not None:
                    out.append("\n<items>" + python_json(prop["items"]) + "</items>")
                if isinstance(prop.get("properties"), dict):
                    out.append(
                        "\n<properties>" + properties_json(prop["properties"]) + "</properties>"
                    )
                if prop.get("required"):
                    out.append("\n<required>" + python_json(prop["required"]) + "</required>")
                out.append("\n</parameter>")
            if "$defs" in params:
                out.append("\n<$defs>" + template_value(params["$defs"]) + "</$defs>")
            if params.get("items") is not None:
                out.append("\n<items>" + template_value(params["items"]) + "</items>")
            if params.get("required"):
                out.append("\n<required>" + python_json(params["required"]) + "</required>")
            out.append("\n</parameters>\n</function>")
        out.append("\n</tools>" + TOOL_INSTRUCTIONS)
        return "".join(out)


class Nemotron35NanoRenderer(Nemotron3NanoRenderer):
    v35 = True


THINKING, AFTER_THINKING, CONTENT = "thinking", "after-thinking", "content"


class Nemotron3NanoParser(Parser):
    has_tool_support = True
    has_thinking_support = True
    answer_after = THINK_CLOSE
    preserved_tokens = (THINK_OPEN, THINK_CLOSE, TOOL_OPEN, "</tool_call>")

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.tools = Qwen3CoderParser(kernel)
        self.held, self.state = "", CONTENT
        self.may_open = self.skip_space = False

    def init(self, tools, last_message, think):
        self.tools = Qwen3CoderParser(self.kernel)
        self.tools.init(tools, None, None)
        self.held, self.may_open, self.skip_space = "", False, False
        thinking = think is None or think_bool(think)
        prefilled = bool(
            last_message and last_message.get("role") == "assistant" and last_message.get("content")
        )
        if thinking and not prefilled:
            self.state, self.may_open = THINKING, True
        else:
            self.state = CONTENT
        return tools

    def add(self, text: str, done: bool) -> Parsed:
        if self.state == CONTENT:
            return self.tools.add(text, done)
        if self.state == AFTER_THINKING:
            text = lstrip_go(text)
            if not text:
                return Parsed()
            self.state = CONTENT
            return self.tools.add(text, done)
        self.held += text
        if self.skip_space:
            self.held = lstrip_go(self.held)
            if not self.held:
                return Parsed()
            self.skip_space = False
        if self._strip_opening_tag():
            return self.add("", done)
        if self.may_open:
            trimmed = lstrip_go(self.held)
            if not trimmed or overlap(trimmed, THINK_OPEN) == len(trimmed):
                self.held = trimmed
                return Parsed()
        held = self.held
        close, tool = held.find(THINK_CLOSE), held.find(TOOL_OPEN)
        if close >= 0 and (tool < 0 or close < tool):
            end, rest = close, lstrip_go(held[close + len(THINK_CLOSE) :])
        elif tool >= 0:
            end, rest = tool, held[tool:]  # the call stays for the call parser
        else:
            return Parsed("", self._thinking(held))
        thought = rstrip_go(held[:end])
        self.held = ""
        if not rest:
            self.state = AFTER_THINKING
            return Parsed("", thought)
        self.state = CONTENT
        parsed = self.tools.add(rest, done)
        return Parsed(parsed.content, thought, parsed.tool_calls)

    def _thinking(self, held: str) -> str:
        keep = max(overlap(held, THINK_CLOSE), overlap(held, TOOL_OPEN))
        before = held[: len(held) - keep]
        end = len(before) - trailing_space(before)
        self.held = held[end:]
        return held[:end]

    def _strip_opening_tag(self) -> bool:
        """A leading ``<think>`` the model wrote itself is dropped."""
        if not self.may_open:
            return False
        trimmed = lstrip_go(self.held)
        if not trimmed:
            self.held = ""
            return False
        if trimmed.startswith(THINK_OPEN):
            self.held = lstrip_go(trimmed[len(THINK_OPEN) :])
            self.may_open, self.skip_space = False, True
            return True
        if overlap(trimmed, THINK_OPEN) == len(trimmed):
            self.held = trimmed
            return False
        self.may_open = False
        return False
