"""``ministral``: Mistral's output with ``[THINK]…[/THINK]`` thoughts and
``[TOOL_CALLS]name[ARGS]{json}`` calls (the prompt comes from the model's template)."""

from __future__ import annotations

import json

from ollamakit.lib.structured import JsonScan, Parsed

from .common import (
    EventParser,
    function_of,
    lstrip_go,
    overlap,
    rstrip_go,
    tool_call,
    trailing_space,
)

TOOL_CALLS, THINK, THINK_END, ARGS = "[TOOL_CALLS]", "[THINK]", "[/THINK]", "[ARGS]"
CONTENT, THINKING, NAME, ARGUMENTS = "content", "thinking", "name", "arguments"


def json_end(text: str) -> int:
    """Where the JSON value at the start of ``text`` closes (-1: not yet)."""
    return JsonScan().end(text)


class MinistralParser(EventParser):
    has_tool_support = True
    answer_after = THINK_END
    preserved_tokens = (TOOL_CALLS, THINK, THINK_END, ARGS)

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.held, self.state, self.count, self.tools, self.name = "", CONTENT, 0, None, ""
        self.arguments = JsonScan()  # the held call's arguments, read so far

    def init(self, tools, last_message, think):
        self.tools, self.count = tools, 0
        prefilled = bool(
            last_message and last_message.get("role") == "assistant" and last_message.get("content")
        )
        self.state = THINKING if self.has_thinking_support and not prefilled else CONTENT
        return tools

    def add(self, text: str, done: bool) -> Parsed:
        self.held += text
        content, thinking, calls = [], [], []
        for kind, *value in self.events():
            if kind == "content":
                content.append(value[0])
            elif kind == "thinking":
                thinking.append(value[0])
            else:
                name, raw = value
                if not any(function_of(t).get("name") == name for t in self.tools or ()):
                    raise ValueError(f"tool '{name}' not found")
                arguments = json.loads(raw)
                if not isinstance(arguments, dict):
                    raise ValueError("tool call arguments are not an object")
                calls.append(tool_call(name, arguments, self.count))
                self.count += 1
        return Parsed("".join(content), "".join(thinking), calls)

    def _eat(self, events: list) -> bool:
        held = self.held
        if self.state == CONTENT:
            for tag, state in ((TOOL_CALLS, NAME), (THINK, THINKING)):
                if tag in held:
                    before, self.held = held.split(tag, 1)
                    if rstrip_go(before):
                        events.append(("content", rstrip_go(before)))
                    self.state = state
                    return True
            keep = max(overlap(held, TOOL_CALLS), overlap(held, THINK))
            before = held[: len(held) - keep]
            end = len(before) - trailing_space(before)
            if end:
                events.append(("content", held[:end]))
            self.held = held[end:]
            return False
        if self.state == THINKING:
            if THINK_END in held:
                thought, after = held.split(THINK_END, 1)
                self.held, self.state = lstrip_go(after), CONTENT
                if thought:
                    events.append(("thinking", thought))
                return True
            keep = overlap(held, THINK_END)
            if held[: len(held) - keep]:
                events.append(("thinking", held[: len(held) - keep]))
            self.held = held[len(held) - keep :]
            return False
        if self.state == NAME:
            if ARGS not in held:
                return False
            self.name, self.held = held.split(ARGS, 1)
            self.state, self.arguments = ARGUMENTS, JsonScan()
            return True
        end = self.arguments.end(held)
        if end < 0:
            return False
        events.append(("call", self.name, held[: end + 1]))
        self.held, self.name, self.state = held[end + 1 :], "", CONTENT
        return True
