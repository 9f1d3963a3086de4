"""``lfm2`` and ``lfm2-thinking``: Liquid LFM2's ChatML prompt (tools as spaced JSON in
``<|tool_list_start|>``, calls as a Python-style list ``[name(key=value)]``) and the reading of
its thinking and calls, including a bare call list written as the answer."""

from __future__ import annotations

import json
import re

from ollamakit.interfaces import Parser, Renderer
from ollamakit.lib.structured import Parsed

from .common import (
    call_function,
    function_of,
    go_float,
    go_int,
    go_marshal,
    image_tags,
    is_go_space,
    lstrip_go,
    overlap,
    parameters_json,
    rstrip_go,
    strip_go,
    think_bool,
    tool_call,
    tool_json,
    trailing_space,
)
from ollamakit.lib.templates import to_json

BOS = "<|startoftext|>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TOOL_LIST_START, TOOL_LIST_END = "<|tool_list_start|>", "<|tool_list_end|>"
CALL_START, CALL_END = "<|tool_call_start|>", "<|tool_call_end|>"
RESPONSE_START, RESPONSE_END = "<|tool_response_start|>", "<|tool_response_end|>"
HTML_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u00(3c|3e|26)")


def lfm2_json(compact: str) -> str:
    """JSON as LFM2's template prints it: HTML characters as they are, a space after each ``:``
    and ``,`` outside strings."""
    text = HTML_ESCAPE.sub(
        lambda m: m.group(1) + {"3c": "<", "3e": ">", "26": "&"}[m.group(2)], compact
    )
    out, in_string, escaped = [], False, False
    for n, ch in enumerate(text):
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
        elif ch in ":," and n + 1 < len(text) and text[n + 1] not in " \n\r\t":
            out.append(" ")
    return "".join(out)


def function_json(tool) -> str:
    """A tool's function (name, description, parameters) as JSON; the whole tool when it has
    no function name."""
    function = function_of(tool)
    if not function.get("name"):
        return tool_json(tool)
    parts = ['"name":' + to_json(function["name"])]
    if function.get("description"):
        parts.append('"description":' + to_json(function["description"]))
    parts.append('"parameters":' + parameters_json(function.get("parameters")))
    return "{" + ",".join(parts) + "}"


def render_calls(calls) -> str:
    rendered = []
    for call in calls:
        name, arguments = call_function(call)
        rendered.append(
            name
            + "("
            + ",".join(k + "=" + lfm2_json(go_marshal(arguments[k])) for k in sorted(arguments))
            + ")"
        )
    return CALL_START + "[" + ",".join(rendered) + "]" + CALL_END


class LFM2Renderer(Renderer):
    leading_bos = BOS
    is_thinking = False
    image_tags = True  # the server places images by [img-N] markers

    def content(self, message: dict, offset: int) -> str:
        content = message.get("content") or ""
        images = len(message.get("images") or ())
        if not images:
            return content
        if self.image_tags:
            return image_tags(content, images, offset)[0]
        return content if "<image>" in content else "<image>" * images + content

    def render(self, messages, tools, think) -> str:
        out = [BOS]
        system, start = "", 0
        if messages and messages[0].get("role") == "system":
            system, start = messages[0].get("content") or "", 1
        if tools:
            system += ("\n" if system else "") + "List of tools: " + TOOL_LIST_START + "["
            system += ", ".join(lfm2_json(function_json(t)) for t in tools) + "]" + TOOL_LIST_END
        if system:
            out.append("<|im_start|>system\n" + system + "<|im_end|>\n")
        keep_thinking = self.is_thinking and think_bool(think)
        last_assistant = max(
            (n for n in range(start, len(messages)) if messages[n].get("role") == "assistant"),
            default=-1,
        )
        offset = sum(len(m.get("images") or ()) for m in messages[:start])
        for n in range(start, len(messages)):
            message = messages[n]
            role = message.get("role") or ""
            prefill = n == len(messages) - 1 and role == "assistant"
            content = self.content(message, offset)
            offset += len(message.get("images") or ())
            if role == "assistant" and message.get("tool_calls") and CALL_START not in content:
                calls = render_calls(message["tool_calls"])
                content = calls + content if not strip_go(content) else calls + "\n" + content
            if (
                self.is_thinking
                and role == "assistant"
                and message.get("thinking")
                and THINK_CLOSE not in content
            ):
                content = THINK_OPEN + message["thinking"] + THINK_CLOSE + content
            if role == "assistant" and not keep_thinking and n != last_assistant:
                at = content.rfind(THINK_CLOSE)
                if at >= 0:  # earlier turns lose their thinking
                    content = strip_go(content[at + len(THINK_CLOSE) :])
            if role == "tool" and RESPONSE_START not in content:
                content = RESPONSE_START + content + RESPONSE_END
            out.append("<|im_start|>" + role + "\n" + content + ("" if prefill else "<|im_end|>\n"))
        if not (messages and messages[-1].get("role") == "assistant"):
            out.append("<|im_start|>assistant\n")
        return "".join(out)


class LFM2ThinkingRenderer(LFM2Renderer):
    is_thinking = True


# -- the parser ---------------------------------------------------------------------------


def matching_paren(text: str, opening: int) -> int:
    depth, n = 1, opening + 1
    while n < len(text) and depth > 0:
        ch = text[n]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return n
        elif ch in "'\"":
            n += 1
            while n < len(text) and text[n] != ch:
                if text[n] == "\\" and n + 1 < len(text):
                    n += 1
                n += 1
        n += 1
    return -1


def python_to_json(text: str) -> str:
    """A Python literal as JSON: quotes made double, True/False/None spelled as JSON."""
    out, quote, escaped, n = [], "", False, 0
    while n < len(text):
        ch = text[n]
        if quote:
            if escaped:
                out.append(ch)
                escaped = False
            elif ch == "\\":
                out.append(ch)
                escaped = True
            elif ch == quote:
                out.append('"')
                quote = ""
            elif quote == "'" and ch == '"':
                out.append('\\"')
            else:
                out.append(ch)
            n += 1
            continue
        if ch in "'\"":
            quote = ch
            out.append('"')
        elif ch.isascii() and (ch.isalpha() or ch == "_"):
            end = n + 1
            while (
                end < len(text)
                and text[end].isascii()
                and (text[end].isalnum() or text[end] == "_")
            ):
                end += 1
            word = text[n:end]
            out.append({"True": "true", "False": "false", "None": "null"}.get(word, word))
            n = end
            continue
        else:
            out.append(ch)
        n += 1
    if quote:
        raise ValueError("unterminated string")
    return "".join(out)


def python_literal(token: str):
    if token == "":
        return ""
    if token in ("true", "True", "false", "False"):
        return token in ("true", "True")
    if token in ("null", "None"):
        return None
    number = go_int(token)
    if number is None:
        number = go_float(token)
    if number is not None:
        return number
    if token.startswith(("[", "{")):
        for candidate in (token, None):
            try:
                return json.loads(candidate if candidate is not None else python_to_json(token))
            except ValueError:
                continue
    return token


def argument_value(text: str, n: int):
    """(value, where it ends) of the argument value at ``text[n]``."""
    if text[n] in "'\"":
        quote, start = text[n], n + 1
        n += 1
        while n < len(text):
            if text[n] == "\\" and n + 1 < len(text):
                n += 2
                continue
            if text[n] == quote:
                return text[start:n], n + 1
            n += 1
        raise ValueError("invalid argument: unterminated string")
    start, depth, quote, escaped = n, [0, 0, 0], "", False
    while n < len(text):
        ch = text[n]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
            n += 1
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth["([{".index(ch)] += 1
        elif ch in ")]}":
            k = ")]}".index(ch)
            depth[k] = max(0, depth[k] - 1)
        elif ch == "," and not any(depth):
            return python_literal(strip_go(text[start:n])), n
        n += 1
    return python_literal(strip_go(text[start:n])), n


def python_arguments(text: str) -> dict:
    arguments, n = {}, 0
    while n < len(text):
        while n < len(text) and (text[n] == "," or is_go_space(text[n])):
            n += 1
        if n >= len(text):
            break
        start = n
        while n < len(text) and text[n] not in "=,":
            n += 1
        if n >= len(text) or text[n] != "=":
            raise ValueError("invalid argument: expected '='")
        key = strip_go(text[start:n])
        if not key:
            raise ValueError("invalid argument: empty key")
        n += 1
        while n < len(text) and is_go_space(text[n]):
            n += 1
        if n >= len(text):
            raise ValueError("invalid argument: missing value")
        arguments[key], n = argument_value(text, n)
        if n < len(text) and text[n] == ",":
            n += 1
    return arguments


def parse_calls(content: str) -> list[dict]:
    """``[name(key=value, ...), ...]`` (the brackets and the call tags optional)."""
    content = strip_go(content)
    content = strip_go(content.removeprefix(CALL_START))
    content = strip_go(content.removesuffix(CALL_END))
    if content.startswith("[") and content.endswith("]"):
        content = content[1:-1]
    calls = []
    while content:
        content = strip_go(content)
        if not content:
            break
        if content.startswith(","):
            content = strip_go(content[1:])
            if not content:
                break
        paren = content.find("(")
        if paren < 0:
            raise ValueError("invalid tool call: no opening parenthesis")
        name = strip_go(content[:paren])
        if not name:
            raise ValueError("invalid tool call: empty function name")
        close = matching_paren(content, paren)
        if close < 0:
            raise ValueError("invalid tool call: no matching closing parenthesis")
        inside = content[paren + 1 : close]
        calls.append({"name": name, "arguments": python_arguments(inside) if inside else {}})
        content = content[close + 1 :]
    if not calls:
        raise ValueError("no tool calls found")
    return calls


LOOKING, THINKING, CONTENT, CALLS = "looking", "thinking", "content", "calls"


class LFM2Parser(Parser):
    has_tool_support = True
    answer_after = THINK_CLOSE
    preserved_tokens = (THINK_OPEN, THINK_CLOSE, CALL_START, CALL_END)

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.held, self.state, self.count = "", CONTENT, 0
        self.trim_thinking = self.trim_content = False
        self.names: set[str] = set()
        self.has_tools = False

    def init(self, tools, last_message, think):
        self.count = 0
        self.names = {function_of(t).get("name") for t in tools or () if function_of(t).get("name")}
        self.has_tools = bool(tools)
        thinking = self.has_thinking_support and think_bool(think)
        prefilled = bool(
            last_message and last_message.get("role") == "assistant" and last_message.get("content")
        )
        self.state = LOOKING if thinking and not prefilled else CONTENT
        return tools

    def add(self, text: str, done: bool) -> Parsed:
        self.held += text
        if done and self.state == LOOKING:
            trimmed = lstrip_go(self.held)
            if not trimmed.startswith(THINK_OPEN):
                self.held, self.state = trimmed, CONTENT
        content, thinking, calls = [], [], []
        while self.held and self._eat(content, thinking, calls):
            pass
        if done and not calls and self.has_tools:  # a bare call list written as the answer
            try:
                found = parse_calls(strip_go("".join(content)))
            except ValueError:
                found = []
            if found and (not self.names or all(c["name"] in self.names for c in found)):
                content, calls = [], found
        numbered = []
        for call in calls:
            numbered.append(tool_call(call["name"], call["arguments"], self.count))
            self.count += 1
        return Parsed("".join(content), "".join(thinking), numbered)

    def _eat(self, content: list, thinking: list, calls: list) -> bool:
        held = self.held
        if self.state == LOOKING:
            trimmed = lstrip_go(held)
            if trimmed.startswith(THINK_OPEN):
                self.held, self.state, self.trim_thinking = (
                    trimmed[len(THINK_OPEN) :],
                    THINKING,
                    True,
                )
                return True
            if not trimmed or THINK_OPEN.startswith(trimmed):
                return False
            self.held, self.state = trimmed, CONTENT
            return True
        if self.state == THINKING:
            if held.startswith(THINK_OPEN):
                held, self.trim_thinking = held[len(THINK_OPEN) :], True
            if self.trim_thinking:
                held = lstrip_go(held)
                if held:
                    self.trim_thinking = False
            self.held = held
            if THINK_CLOSE in held:
                thought, rest = held.split(THINK_CLOSE, 1)
                rest = lstrip_go(rest)
                self.held, self.state, self.trim_thinking, self.trim_content = (
                    rest,
                    CONTENT,
                    False,
                    not rest,
                )
                if rstrip_go(thought):
                    thinking.append(rstrip_go(thought))
                return True
            before = held[: len(held) - overlap(held, THINK_CLOSE)]
            end = len(before) - trailing_space(before)
            if end:
                thinking.append(held[:end])
            self.held = held[end:]
            return False
        if self.state == CONTENT:
            if self.trim_content:
                held = self.held = lstrip_go(held)
                if held:
                    self.trim_content = False
            if CALL_START in held:
                before, self.held = held.split(CALL_START, 1)
                self.state = CALLS
                if rstrip_go(before):
                    content.append(rstrip_go(before))
                return True
            if held:
                content.append(held)
            self.held = ""
            return False
        at = held.find(CALL_END)
        if at >= 0:
            try:
                found = parse_calls(held[:at])
            except ValueError:
                found = []
            if found:
                rest = held[at + len(CALL_END) :]
                if rest.startswith(CALL_START):
                    rest = rest[len(CALL_START) :]
                else:
                    rest, self.state = lstrip_go(rest), CONTENT
                self.held = rest
                calls.extend(found)
                return True
        return False


class LFM2ThinkingParser(LFM2Parser):
    has_thinking_support = True
