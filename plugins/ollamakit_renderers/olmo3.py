"""``olmo3`` and ``olmo3.1`` (Olmo 3 Instruct: ChatML, tools as spaced JSON in ``<functions>``,
calls as ``name(key=value)`` lines in ``<function_calls>``), and ``olmo3-think`` /
``olmo3-32b-think`` (Olmo 3 Think: the prompt ends inside ``<think>``; no tools)."""

from __future__ import annotations

import re

from ollamakit.interfaces import Parser, Renderer
from ollamakit.lib.structured import Parsed

from .common import (
    call_function,
    go_float,
    go_int,
    go_marshal,
    lstrip_go,
    overlap,
    rstrip_go,
    tool_call,
    tool_json,
    trailing_space,
    with_spaces,
)

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
CALLS_OPEN, CALLS_CLOSE = "<function_calls>", "</function_calls>"
THINK_CLOSE = "</think>"
OLMO3_SYSTEM = "You are a helpful function-calling AI assistant. "
OLMO31_SYSTEM = (
    "You are Olmo, a helpful AI assistant built by Ai2. Your date cutoff is December 2024, and your model "
    "weights are available at https://huggingface.co/allenai. "
)
NO_FUNCTIONS = "You do not currently have access to any functions. "
WITH_FUNCTIONS = (
    "You are provided with function signatures within <functions></functions> XML tags. You may call one "
    "or more functions to assist with the user query. Output any function calls within "
    "<function_calls></function_calls> XML tags. Do not make assumptions about what values to plug into "
    "functions."
)
THINK_SUFFIX = " You do not currently have access to any functions. <functions></functions>"
THINK_32B_SYSTEM = "You are a helpful AI assistant."
THINK_31_SYSTEM = (
    "You are Olmo, a helpful AI assistant built by Ai2. Your date cutoff is December 2024, and your model "
    "weights are available at https://huggingface.co/allenai."
)


def first_system(messages) -> tuple[dict | None, list[dict]]:
    system = next((m for m in messages if m.get("role") == "system"), None)
    return system, [m for m in messages if m.get("role") != "system"]


def functions_json(tools) -> str:
    return with_spaces("[" + ",".join(tool_json(t) for t in tools) + "]")


class Olmo3Renderer(Renderer):
    default_system = OLMO3_SYSTEM

    def render(self, messages, tools, think) -> str:
        system, turns = first_system(messages)
        out = [IM_START + "system\n"]
        if system is not None:
            out.append(system.get("content") or "")
            if tools:
                out.append("<functions>" + functions_json(tools) + "</functions>")
        else:
            out.append(self.default_system)
            if tools:
                out.append(WITH_FUNCTIONS + "<functions>" + functions_json(tools) + "</functions>")
            else:
                out.append(NO_FUNCTIONS + "<functions></functions>")
        out.append(IM_END + "\n")
        for n, message in enumerate(turns):
            role, content = message.get("role"), message.get("content") or ""
            if role == "user":
                out.append(IM_START + "user\n" + content + IM_END + "\n")
            elif role == "assistant":
                calls = message.get("tool_calls") or []
                out.append(IM_START + "assistant\n" + content)
                if calls:
                    lines = []
                    for call in calls:
                        name, arguments = call_function(call)
                        pairs = ", ".join(
                            f"{key}={go_marshal(arguments[key])}" for key in sorted(arguments)
                        )
                        lines.append(f"{name}({pairs})")
                    out.append(CALLS_OPEN + "\n".join(lines) + CALLS_CLOSE)
                if n < len(turns) - 1 or calls:  # a last answer with content only is continued
                    out.append(IM_END + "\n")
            elif role == "tool":
                out.append(IM_START + "environment\n" + content + IM_END + "\n")
        last = turns[-1] if turns else None
        if not (
            last
            and last.get("role") == "assistant"
            and not last.get("tool_calls")
            and last.get("content")
        ):
            out.append(IM_START + "assistant\n")
        return "".join(out)


class Olmo31Renderer(Olmo3Renderer):
    default_system = OLMO31_SYSTEM


class Olmo3ThinkRenderer(Renderer):
    """Olmo-3-7B-Think and Olmo-3.1-32B-Think."""

    default_system = THINK_31_SYSTEM

    def render(self, messages, tools, think) -> str:
        system, turns = first_system(messages)
        out = [IM_START + "system\n"]
        out.append(
            (system.get("content") or "") + THINK_SUFFIX
            if system is not None
            else self.default_system
        )
        out.append(IM_END + "\n")
        for message in turns:
            role, content = message.get("role"), message.get("content") or ""
            if role in (
                "user",
                "assistant",
            ):  # tool results are left out: these models have no tools
                out.append(IM_START + role + "\n" + content + IM_END + "\n")
        out.append(IM_START + "assistant\n<think>")
        return "".join(out)


class Olmo3Think32BRenderer(Olmo3ThinkRenderer):
    """Olmo-3-32B-Think."""

    default_system = THINK_32B_SYSTEM


# -- parsers -------------------------------------------------------------------------------

CALL = re.compile(r"^(\w+)\((.*)\)$", re.S)


def split_arguments(text: str) -> list[str]:
    """Top-level comma-separated parts, commas inside quotes or brackets kept."""
    parts, current, depth, quote, escaped = [], [], 0, "", False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quote:
            current.append(ch)
            escaped = True
        elif ch in "\"'" and not quote:
            quote = ch
            current.append(ch)
        elif quote and ch == quote:
            quote = ""
            current.append(ch)
        elif not quote and ch in "([{":
            depth += 1
            current.append(ch)
        elif not quote and ch in ")]}":
            depth -= 1
            current.append(ch)
        elif not quote and ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current:
        parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    text = text.replace("\\\\", "\x00").replace('\\"', '"').replace("\\'", "'")
    return text.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r").replace("\x00", "\\")


def parse_value(text: str):
    """A Python-ish literal: a quoted string, True/False, None, a number, a list or a dict;
    anything else is the text itself."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return unescape(text[1:-1])
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    if text in ("null", "None", "nil"):
        return None
    number = go_int(text)
    if number is None:
        number = go_float(text)
    if number is not None:
        return number
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [parse_value(part) for part in split_arguments(inner)] if inner else []
    if text.startswith("{") and text.endswith("}"):
        obj = {}
        for part in split_arguments(text[1:-1].strip()):
            part = part.strip()
            if not part:
                continue
            if ":" not in part:
                raise ValueError(f"invalid object entry: {part}")
            key, value = part.split(":", 1)
            key = key.strip()
            if len(key) >= 2 and key[0] == key[-1] and key[0] in "\"'":
                key = key[1:-1]
            obj[key] = parse_value(value)
        return obj
    return text


def parse_call(line: str) -> dict:
    match = CALL.match(line)
    if match is None:
        raise ValueError("invalid function call format")
    arguments = {}
    for part in split_arguments(match.group(2).strip()):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"invalid argument format: {part}")
        key, value = part.split("=", 1)
        arguments[key.strip()] = parse_value(value)
    return {"name": match.group(1), "arguments": arguments}


def parse_calls(text: str) -> list[dict]:
    """One ``name(key=value, ...)`` per line; any line that does not read voids them all."""
    return (
        [parse_call(line.strip()) for line in text.strip().split("\n") if line.strip()]
        if text.strip()
        else []
    )


CONTENT, CALLS, CALLS_DONE = "content", "calls", "calls-done"


class Olmo3Parser(Parser):
    has_tool_support = True
    preserved_tokens = (CALLS_OPEN, CALLS_CLOSE)

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.held, self.state, self.count = "", CONTENT, 0

    def init(self, tools, last_message, think):
        self.state, self.count = CONTENT, 0
        return tools

    def add(self, text: str, done: bool) -> Parsed:
        self.held += text
        if done:  # the rest is content as it stands (calls still open are dropped)
            held, self.held = self.held, ""
            return Parsed(held if self.state == CONTENT else "")
        content, calls = [], []
        while True:
            more = self._eat(content, calls)
            if not more:
                break
        numbered = []
        for call in calls:
            numbered.append(tool_call(call["name"], call["arguments"], self.count))
            self.count += 1
        return Parsed("".join(content), "", numbered)

    def _eat(self, content: list, calls: list) -> bool:
        held = self.held
        if not held:
            return False
        if self.state == CONTENT:
            if CALLS_OPEN in held:
                before, self.held = held.split(CALLS_OPEN, 1)
                self.state = CALLS
                content.append(before)
                return True
            keep = overlap(held, CALLS_OPEN)
            content.append(held[: len(held) - keep])
            self.held = held[len(held) - keep :]
            return False
        if self.state == CALLS:
            if CALLS_CLOSE not in held:
                return False
            inside, self.held = held.split(CALLS_CLOSE, 1)
            self.state = CALLS_DONE
            try:
                calls.extend(parse_calls(inside))
            except ValueError:
                pass  # calls that do not read are dropped, as Ollama drops them
            return True
        self.held, self.state = "", CONTENT
        content.append(held)
        return False


class Olmo3ThinkParser(Parser):
    has_thinking_support = True
    answer_after = THINK_CLOSE
    preserved_tokens = (THINK_CLOSE,)

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.held, self.thinking = "", True

    def init(self, tools, last_message, think):
        prefilled = bool(
            last_message and last_message.get("role") == "assistant" and last_message.get("content")
        )
        self.thinking = not prefilled
        return tools

    def add(self, text: str, done: bool) -> Parsed:
        self.held += text
        content, thinking = [], []
        if self.thinking and self.held:
            if THINK_CLOSE in self.held:
                thought, rest = self.held.split(THINK_CLOSE, 1)
                self.held, self.thinking = lstrip_go(rest), False
                thinking.append(rstrip_go(thought))
            else:
                before = self.held[: len(self.held) - overlap(self.held, THINK_CLOSE)]
                end = len(before) - trailing_space(before)
                thinking.append(self.held[:end])
                self.held = self.held[end:]
        if not self.thinking and self.held:
            content.append(self.held)
            self.held = ""
        return Parsed("".join(content), "".join(thinking))
