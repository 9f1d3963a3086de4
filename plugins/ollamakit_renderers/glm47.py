"""``glm-4.7``: GLM-4.7's prompt (``[gMASK]<sop>``, tools as spaced JSON, thinking kept in earlier
turns, ``<tool_call>name<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>`` calls) and the
reading of its thinking and calls, with the repair of calls whose tags do not balance."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ollamakit.interfaces import Renderer
from ollamakit.lib.structured import Parsed

from .common import (
    EventParser,
    call_function,
    function_of,
    go_marshal,
    image_tags,
    is_go_space,
    lstrip_go,
    overlap,
    properties_of,
    property_types,
    rstrip_go,
    strip_go,
    think_bool,
    tool_call,
    tool_json,
    trailing_space,
    with_spaces,
)
from .qwen3coder import direct_text, parse_value

THINK_OPEN, THINK_CLOSE, TOOL_OPEN, TOOL_CLOSE = (
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
)
KEY_OPEN, KEY_CLOSE, VALUE_OPEN, VALUE_CLOSE = (
    "<arg_key>",
    "</arg_key>",
    "<arg_value>",
    "</arg_value>",
)
ARG_TAGS = (KEY_OPEN, KEY_CLOSE, VALUE_OPEN, VALUE_CLOSE)
TOOLS_INTRO = (
    "<|system|>\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
TOOLS_OUTRO = (
    "</tools>\n\nFor each function call, output the function name and arguments within the following XML "
    "format:\n<tool_call>{function-name}<arg_key>{arg-key-1}</arg_key><arg_value>{arg-value-1}</arg_value>"
    "<arg_key>{arg-key-2}</arg_key><arg_value>{arg-value-2}</arg_value>...</tool_call>"
)


class GLM47Renderer(Renderer):
    def render(self, messages, tools, think) -> str:
        out = ["[gMASK]<sop>"]
        if tools:
            out.append(
                TOOLS_INTRO + "".join(with_spaces(tool_json(t)) + "\n" for t in tools) + TOOLS_OUTRO
            )
        thinking = think is None or think_bool(think)  # thinking unless told not to
        for n, message in enumerate(messages):
            role, content = message.get("role"), message.get("content") or ""
            if role == "user":
                out.append("<|user|>" + content)
            elif role == "assistant":
                # earlier turns keep their thinking
                out.append(
                    "<|assistant|>"
                    + (
                        THINK_OPEN + message["thinking"] + THINK_CLOSE
                        if message.get("thinking")
                        else THINK_CLOSE
                    )
                    + content
                )
                for call in message.get("tool_calls") or ():
                    name, arguments = call_function(call)
                    out.append(TOOL_OPEN + name)
                    for key, value in arguments.items():
                        text = value if isinstance(value, str) else go_marshal(value)
                        out.append(KEY_OPEN + key + KEY_CLOSE + VALUE_OPEN + text + VALUE_CLOSE)
                    out.append(TOOL_CLOSE)
            elif role == "tool":
                if n == 0 or messages[n - 1].get("role") != "tool":
                    out.append("<|observation|>")
                out.append("<tool_response>" + content + "</tool_response>")
            elif role == "system":
                out.append("<|system|>" + content)
        out.append("<|assistant|>" + (THINK_OPEN if thinking else THINK_CLOSE))
        return "".join(out)


# -- the parser ---------------------------------------------------------------------------


def escape_content(text: str) -> str:
    """XML-escape everything but the four argument tags."""
    out, in_tag = [], False
    for n, ch in enumerate(text):
        if ch == "<" and any(text.startswith(tag, n) for tag in ARG_TAGS):
            in_tag = True
        if in_tag:
            out.append(ch)
            in_tag = ch != ">"
        else:
            out.append({"&": "&amp;", "<": "&lt;", ">": "&gt;"}.get(ch, ch))
    return "".join(out)


def repair(text: str) -> str:
    """Balance the argument tags of a call whose tags a model got wrong: missing tags are put
    back in their cycle (key open, key close, value open, value close)."""

    def next_tag(s: str) -> tuple[int, str]:
        best, found = -1, ""
        for tag in ARG_TAGS:
            at = s.find(tag)
            if at >= 0 and (best < 0 or at < best):
                best, found = at, tag
        return best, found

    at, first = next_tag(text)
    if at < 0:
        return text
    prefix, s = text[:at], text[at:]
    out = []
    phase = 0
    if first != KEY_OPEN:
        space = next((n for n, ch in enumerate(prefix) if is_go_space(ch)), -1)
        if space >= 0:  # "name key</arg_key>...": the key lost its opening tag
            out.append(prefix[:space] + KEY_OPEN + lstrip_go(prefix[space:]))
            phase = 1
        else:
            out.append(prefix)
    else:
        out.append(prefix)
    while s:
        at, found = next_tag(s)
        expected = ARG_TAGS[phase]
        opening = phase % 2 == 0
        if at < 0:
            if not opening:
                out.append(s + expected)
                phase = (phase + 1) % 4
            break
        if found == expected:
            out.append(s[:at] + expected)
            s = s[at + len(expected) :]
            phase = (phase + 1) % 4
            continue
        found_phase = ARG_TAGS.index(found)
        if opening and at > 0:
            out.append(expected + s[:at])
            phase = (phase + 1) % 4
            s = s[at:]
            continue
        while phase != found_phase:
            tag = ARG_TAGS[phase]
            if phase % 2 == 1 and (phase + 1) % 4 == found_phase and at > 0:
                out.append(s[:at])
                s, at = s[at:], 0
            out.append(tag)
            phase = (phase + 1) % 4
    out.append(
        {1: KEY_CLOSE + VALUE_OPEN + VALUE_CLOSE, 2: VALUE_OPEN + VALUE_CLOSE, 3: VALUE_CLOSE}.get(
            phase, ""
        )
    )
    return "".join(out)


def read_call_xml(escaped: str):
    """(function name, keys, values) of ``<tool_call>`` + escaped + ``</tool_call>``."""
    root = ET.fromstring(TOOL_OPEN + escaped + TOOL_CLOSE)
    keys = [direct_text(e) for e in root.findall("arg_key")]
    values = [direct_text(e) for e in root.findall("arg_value")]
    return direct_text(root), keys, values


def parse_call(raw: str, tools) -> dict:
    escaped = escape_content(raw)
    try:
        name, keys, values = read_call_xml(escaped)
    except ET.ParseError as exc:
        try:
            name, keys, values = read_call_xml(repair(escaped))
        except ET.ParseError:
            raise ValueError(f"failed to parse XML: {exc}") from None
    name = strip_go(name)
    if not name:
        raise ValueError("empty function name")
    if len(keys) != len(values):
        raise ValueError(
            f"mismatched arg_key and arg_value counts: {len(keys)} keys, {len(values)} values"
        )
    props = next((properties_of(t) for t in tools or () if function_of(t).get("name") == name), {})
    arguments = {}
    for key, value in zip(keys, values):
        key = strip_go(key)
        prop = props.get(key)
        types = []
        if isinstance(prop, dict):
            any_of = prop.get("anyOf")
            types = (
                [t for p in any_of for t in property_types(p)] if any_of else property_types(prop)
            )
        arguments[key] = parse_value(value, types)
    return {"name": name, "arguments": arguments}


LOOKING, THINK_START, THINKING, THINK_DONE, CONTENT, TOOL_START, TOOL = (
    "looking",
    "think-start",
    "thinking",
    "think-done",
    "content",
    "tool-start",
    "tool",
)


class GLM46Parser(EventParser):
    has_tool_support = True
    has_thinking_support = True
    answer_after = THINK_CLOSE
    preserved_tokens = (THINK_OPEN, THINK_CLOSE, TOOL_OPEN, TOOL_CLOSE, *ARG_TAGS)

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.held, self.state, self.count, self.tools = "", LOOKING, 0, None

    def init(self, tools, last_message, think):
        self.tools, self.count = tools, 0
        return tools

    def add(self, text: str, done: bool) -> Parsed:
        self.held += text
        events = self.events()
        if done and self.state in (TOOL_START, TOOL):  # the output ended inside a call
            events.append(("call", self._final_call()))
        content, thinking, calls = [], [], []
        for kind, value in events:
            if kind == "call":
                call = parse_call(value, self.tools)
                calls.append(tool_call(call["name"], call["arguments"], self.count))
                self.count += 1
            else:
                (thinking if kind == "thinking" else content).append(value)
        return Parsed("".join(content), "".join(thinking), calls)

    def _final_call(self) -> str:
        """A call the output ended in, accepted only if it reads whole and names a declared
        tool with its required arguments."""
        raw = self.held
        keep = overlap(raw, TOOL_CLOSE)
        if keep:
            raw = rstrip_go(raw[: len(raw) - keep])
        try:
            name, keys, values = read_call_xml(escape_content(raw))
        except ET.ParseError as exc:
            raise ValueError(f"incomplete GLM tool call: {exc}") from None
        name = strip_go(name)
        problem = None
        tool = next((t for t in self.tools or () if function_of(t).get("name") == name), None)
        if not name:
            problem = "empty function name"
        elif len(keys) != len(values):
            problem = (
                f"mismatched arg_key and arg_value counts: {len(keys)} keys, {len(values)} values"
            )
        elif tool is None:
            problem = f'tool "{name}" is not declared'
        elif any(not strip_go(k) for k in keys):
            problem = "empty argument name"
        else:
            given = {strip_go(k) for k in keys}
            required = (function_of(tool).get("parameters") or {}).get("required") or []
            missing = next((r for r in required if r not in given), None)
            if missing is not None:
                problem = f'required argument "{missing}" is missing for tool "{name}"'
        if problem:
            raise ValueError(f"incomplete GLM tool call: {problem}")
        self.held, self.state = "", CONTENT
        return raw

    def _settle(self, events: list, kind: str, tag: str) -> bool:
        before = self.held[: len(self.held) - overlap(self.held, tag)]
        end = len(before) - trailing_space(before)
        if end:
            events.append((kind, self.held[:end]))
        self.held = self.held[end:]
        return False

    def _eat(self, events: list) -> bool:
        state = self.state
        if state == LOOKING:
            trimmed = lstrip_go(self.held)
            if trimmed.startswith(THINK_OPEN):
                self.held = lstrip_go(trimmed[len(THINK_OPEN) :])
                self.state = THINKING if self.held else THINK_START
                return True
            if THINK_OPEN.startswith(trimmed):
                return False
            self.state = CONTENT
            return True
        if state in (THINK_START, THINK_DONE, TOOL_START):
            return self._skip_space(
                {THINK_START: THINKING, THINK_DONE: CONTENT, TOOL_START: TOOL}[state]
            )
        if state == THINKING:
            if THINK_CLOSE in self.held:
                before, after = self._split(THINK_CLOSE)
                if before:
                    events.append(("thinking", before))
                self.state = CONTENT if after else THINK_DONE
                return True
            return self._settle(events, "thinking", THINK_CLOSE)
        if state == CONTENT:
            if TOOL_OPEN in self.held:
                before, after = self._split(TOOL_OPEN)
                if before:
                    events.append(("content", before))
                self.state = TOOL if after else TOOL_START
                return True
            return self._settle(events, "content", TOOL_OPEN)
        if TOOL_CLOSE in self.held:
            raw, _ = self._split(TOOL_CLOSE)
            events.append(("call", raw))
            self.state = CONTENT
            return True
        return False


class GLM47Parser(GLM46Parser):
    def init(self, tools, last_message, think):
        super().init(tools, last_message, think)
        if think is None or think_bool(think):  # the prompt ends inside <think>
            self.state = THINKING
        return tools


# -- glm-ocr ------------------------------------------------------------------------------


class GlmOcrRenderer(Renderer):
    """``glm-ocr``: GLM-OCR's prompt: GLM-4.7's layout with images, no thinking unless asked, and
    ``/nothink`` after user turns when thinking is turned off."""

    image_tags = True  # the server places images by [img-N] markers

    def render(self, messages, tools, think) -> str:
        out = ["[gMASK]<sop>"]
        if tools:
            out.append(
                TOOLS_INTRO + "".join(with_spaces(tool_json(t)) + "\n" for t in tools) + TOOLS_OUTRO
            )
        told_not_to = think is not None and not think_bool(think)
        offset = 0
        for n, message in enumerate(messages):
            role, content = message.get("role"), message.get("content") or ""
            images = len(message.get("images") or ())
            if role == "user":
                text, offset = (
                    image_tags(content, images, offset) if self.image_tags else (content, offset)
                )
                out.append(
                    "<|user|>\n"
                    + text
                    + ("/nothink" if told_not_to and not content.endswith("/nothink") else "")
                )
            elif role == "assistant":
                thinking = message.get("thinking")
                out.append(
                    "<|assistant|>\n"
                    + (
                        THINK_OPEN + strip_go(thinking) + THINK_CLOSE
                        if thinking
                        else "<think></think>"
                    )
                )
                if content:
                    out.append("\n" + strip_go(content))
                for call in message.get("tool_calls") or ():
                    name, arguments = call_function(call)
                    out.append("\n" + TOOL_OPEN + name)
                    for key, value in arguments.items():
                        text = value if isinstance(value, str) else go_marshal(value)
                        out.append(KEY_OPEN + key + KEY_CLOSE + VALUE_OPEN + text + VALUE_CLOSE)
                    out.append(TOOL_CLOSE)
                out.append("\n")
            elif role == "tool":
                if n == 0 or messages[n - 1].get("role") != "tool":
                    out.append("<|observation|>")
                text, offset = (
                    image_tags(content, images, offset) if self.image_tags else (content, offset)
                )
                out.append("\n<tool_response>\n" + text + "\n</tool_response>\n")
            elif role == "system":
                out.append("<|system|>\n" + content + "\n")
        out.append("<|assistant|>\n" + ("<think></think>\n" if told_not_to else ""))
        return "".join(out)


class GlmOcrParser(GLM46Parser):
    """``glm-ocr``: GLM-4.6's parser that does not think (it still skips a ``<think>`` block)."""

    has_thinking_support = False
    answer_after = None
