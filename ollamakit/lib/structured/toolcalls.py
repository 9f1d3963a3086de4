"""Tool calls read out of a model's output, as Ollama reads them for templates that define
tools: after the template's tool-call tag (``<tool_call>``, ``[TOOL_CALLS]``, or ``{`` when the
template names none) come JSON objects naming a tool and its arguments.

Text that turns out not to be a tool call is given back as content, so nothing is lost.
"""

from __future__ import annotations

import json
import secrets
import string

from .thinking import partial_suffix

ID_ALPHABET = string.ascii_lowercase + string.digits
MAX_CALL_TEXT = 1 << 20  # a tool call's JSON larger than this is not waited for


def call_id() -> str:
    """``call_`` and 8 characters from [a-z0-9], as Ollama makes them."""
    return "call_" + "".join(secrets.choice(ID_ALPHABET) for _ in range(8))


def closing_tag(tag: str) -> str | None:
    if tag.startswith("<") and not tag.startswith("</") and tag.endswith(">"):
        return "</" + tag[1:]
    return None


class JsonScan:
    """Where the JSON object or array at the start of a growing text closes, each character read
    once: a call's arguments (a whole file, for a coding tool) arrive a token at a time, and
    reading them from the start at every token would make a long call's parse quadratic."""

    def __init__(self):
        self.at, self.depth, self.in_string, self.escaped = 0, 0, False, False

    def end(self, text: str) -> int:
        """The close's index in ``text`` (which holds what the last call was given, and more);
        -1: not yet."""
        depth, in_string, escaped = self.depth, self.in_string, self.escaped
        for n in range(self.at, len(text)):
            ch = text[n]
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
                continue
            if ch == '"':
                in_string = True
            elif ch in "{[":
                depth += 1
            elif ch in "}]":
                depth -= 1
                if depth == 0:
                    return n
        self.at, self.depth, self.in_string, self.escaped = len(text), depth, in_string, escaped
        return -1


def json_extent(text: str) -> int | None:
    """Where the JSON object or array at the start of ``text`` ends (None: not yet ended)."""
    end = JsonScan().end(text)
    return None if end < 0 else end + 1


def _arguments(value):
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def calls_in(value, names: set[str]) -> list[dict] | None:
    """The tool calls a decoded JSON value holds: ``{name, arguments|parameters}``, the same
    under ``function``, or a list of them. None if it is not (only) tool calls."""
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if not isinstance(item, dict):
            return None
        if isinstance(item.get("function"), dict):
            item = item["function"]
        name = item.get("name")
        if not isinstance(name, str) or (names and name not in names):
            return None
        raw = item.get("arguments", item.get("parameters", {}))
        arguments = _arguments(raw if raw is not None else {})
        if arguments is None:
            return None
        calls.append({"name": name, "arguments": arguments})
    return calls or None


def leading_special(tag: str) -> str:
    """The part of a tool-call tag that can be one control token: ``[TOOL_CALLS]`` of
    ``[TOOL_CALLS][``, the whole tag otherwise (as Ollama asks llama-server to keep it)."""
    closing = {"[": "]", "<": ">"}.get(tag[:1])
    end = tag.find(closing) if closing else -1
    return tag[: end + 1] if end > 0 else tag


class ToolCallParser:
    def __init__(self, tag: str, tool_names):
        self.tag = tag or "{"
        self.closing = closing_tag(self.tag)
        self.tag_is_json = self.tag in ("{", "[")  # then the tag is the call's first character
        self.preserved_tokens = () if self.tag_is_json else (leading_special(self.tag),)
        self.names = {n for n in tool_names if isinstance(n, str)}
        self.calling = False  # the tag was seen: reading calls
        self.plain = False  # the output turned out to be content only
        self.count = 0
        self._held = ""

    def feed(self, text: str) -> tuple[str, list[dict]]:
        """(content, tool calls) settled by this piece of output."""
        self._held += text
        if self.plain:
            return self._release()
        content = ""
        calls: list[dict] = []
        while True:
            if not self.calling:
                at = self._held.find(self.tag)
                if at < 0:
                    keep = partial_suffix(self._held, self.tag)
                    content += self._held[: len(self._held) - keep]
                    self._held = self._held[len(self._held) - keep :]
                    return content, calls
                content += self._held[:at]
                self._held = self._held[at:]  # the tag stays until a call follows it
                self.calling = True
            found = self._next_calls()
            if found is None:  # wait for more text
                return content, calls
            if found is False:  # not a tool call after all
                self.plain = True
                text, _ = self._release()
                return content + text, calls
            calls.extend(found)

    def _next_calls(self):
        """Calls parsed from the start of the held text: a list, None (incomplete) or False."""
        rest = self._held
        if not self.tag_is_json and rest.startswith(self.tag):
            rest = rest[len(self.tag) :]
        rest = rest.lstrip()
        if self.closing and rest.startswith(self.closing):
            rest = rest[len(self.closing) :].lstrip()
        if not rest or (self.closing and self.closing.startswith(rest)):
            return None
        if rest[0] not in "{[":
            if not self.count:
                return False
            # Text after the calls: content, unless another tag follows.
            self.calling, self._held = False, rest
            return []
        end = json_extent(rest)
        if end is None:
            return False if len(rest) > MAX_CALL_TEXT else None
        try:
            found = calls_in(json.loads(rest[:end]), self.names)
        except ValueError:
            found = None
        if not found:
            return False
        self._held = rest[end:]
        numbered = []
        for call in found:
            numbered.append({"id": call_id(), "function": {"index": self.count, **call}})
            self.count += 1
        return numbered

    def _release(self) -> tuple[str, list[dict]]:
        text, self._held = self._held, ""
        return text, []

    def flush(self) -> tuple[str, list[dict]]:
        """The output ended: what was held is content, less a last call's closing tag."""
        held, self._held = self._held, ""
        if not self.calling or self.plain or not self.count:
            return held, []  # a tag with no call after it is given back whole
        rest = held.strip()
        if self.closing and rest.startswith(self.closing):
            rest = rest[len(self.closing) :].strip()
        return rest, []
