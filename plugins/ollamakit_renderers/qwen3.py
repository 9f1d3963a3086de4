"""``qwen3`` and ``qwen3-thinking``: Qwen3's output, thinking up to ``</think>`` (the prompt may
already have opened it; a leading ``<think>`` is skipped) and ``<tool_call>{json}</tool_call>``
calls, which may come before the thinking is closed."""

from __future__ import annotations

import json


from .common import EventParser, lstrip_go, overlap, trailing_space

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"
THINKING, THINKING_START, THINKING_DONE, CONTENT, TOOL_START, TOOL = (
    "thinking",
    "thinking-start",
    "thinking-done",
    "content",
    "tool-start",
    "tool",
)


def parse_json_call(raw: str) -> dict:
    """``{"name": ..., "arguments": {...}}``."""
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"failed to parse JSON: {exc}") from None
    if not isinstance(value, dict) or not isinstance(value.get("name", ""), str):
        raise ValueError("failed to parse JSON: not a tool call object")
    arguments = value.get("arguments")
    if arguments is not None and not isinstance(arguments, dict):
        raise ValueError("failed to parse JSON: arguments are not an object")
    if not value.get("name"):
        raise ValueError("empty function name")
    return {"name": value["name"], "arguments": arguments or {}}


class Qwen3Parser(EventParser):
    has_tool_support = True
    default_thinking = False
    answer_after = THINK_CLOSE
    preserved_tokens = (THINK_OPEN, THINK_CLOSE, TOOL_OPEN, TOOL_CLOSE)

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.held = ""
        self.state = CONTENT
        self.maybe_open = False
        self.count = 0

    def init(self, tools, last_message, think):
        self.held, self.count = "", 0
        thinking = self.default_thinking if think is None else think not in (False, "")
        self.maybe_open = self.has_thinking_support and thinking
        self.state = THINKING if self.maybe_open else CONTENT
        return tools

    def read_call(self, raw) -> dict:
        return parse_json_call(raw)

    def _settle(self, events: list, kind: str, *tags: str) -> bool:
        """Give out what cannot begin one of ``tags``, less trailing space; keep the rest."""
        keep = max(overlap(self.held, tag) for tag in tags)
        before = self.held[: len(self.held) - keep]
        end = len(before) - trailing_space(before)
        if end:
            events.append((kind, self.held[:end]))
        self.held = self.held[end:]
        return False

    def _eat(self, events: list) -> bool:
        if self.state in (THINKING_START, THINKING_DONE, TOOL_START):
            return self._skip_space(
                {THINKING_START: THINKING, THINKING_DONE: CONTENT, TOOL_START: TOOL}[self.state]
            )
        if self.state == THINKING:
            if self.maybe_open:  # the model may open the thinking itself
                trimmed = lstrip_go(self.held)
                if trimmed.startswith(THINK_OPEN):
                    self.held = lstrip_go(trimmed[len(THINK_OPEN) :])
                    if not self.held:
                        return False
                    self.maybe_open = False
                    return True
                if THINK_OPEN.startswith(trimmed):
                    return False
                self.maybe_open = False
            close, tool = self.held.find(THINK_CLOSE), self.held.find(TOOL_OPEN)
            if tool >= 0 and (close < 0 or tool < close):  # a call before the thinking closed
                before, after = self._split(TOOL_OPEN)
                if before:
                    events.append(("thinking", before))
                self.state = TOOL if after else TOOL_START
                return True
            if close >= 0:
                before, after = self._split(THINK_CLOSE)
                if before:
                    events.append(("thinking", before))
                self.state = CONTENT if after else THINKING_DONE
                return True
            return self._settle(events, "thinking", THINK_CLOSE, TOOL_OPEN)
        if self.state == CONTENT:
            if TOOL_OPEN in self.held:
                before, after = self._split(TOOL_OPEN)
                if before:
                    events.append(("content", before))
                self.state = TOOL if after else TOOL_START
                return True
            return self._settle(events, "content", TOOL_OPEN)
        if TOOL_CLOSE in self.held:  # TOOL
            raw, _ = self._split(TOOL_CLOSE)
            events.append(("call", raw))
            self.state = CONTENT
            return True
        return False


class Qwen3ThinkingParser(Qwen3Parser):
    has_thinking_support = True
    default_thinking = True
