"""``qwen3-vl-instruct`` and ``qwen3-vl-thinking``: Qwen3-VL's ChatML prompt (tools as spaced
JSON in ``<tools>``, JSON calls in ``<tool_call>``, the thinking of the turn being written kept)
and the reading of its thinking and calls."""

from __future__ import annotations

import json

from ollamakit.interfaces import Renderer

from .common import (
    EventParser,
    arguments_json,
    call_function,
    image_tags,
    lstrip_go,
    overlap,
    rstrip_go,
    think_bool,
    tool_json,
    trailing_space,
    with_spaces,
)

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
THINK_CLOSE, TOOL_OPEN, TOOL_CLOSE = "</think>", "<tool_call>", "</tool_call>"
VISION = "<|vision_start|><|image_pad|><|vision_end|>"
TOOLS_INTRO = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with "
    "function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_OUTRO = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": '
    "<args-json-object>}\n</tool_call><|im_end|>\n"
)


class Qwen3VLRenderer(Renderer):
    is_thinking = False
    empty_think_when_not_thinking = False
    image_tags = True  # the server places images by [img-N] markers

    def content(self, message: dict, offset: int) -> tuple[str, int]:
        images = len(message.get("images") or ())
        if self.image_tags:
            return image_tags(message.get("content") or "", images, offset)
        return VISION * images + (message.get("content") or ""), offset

    def render(self, messages, tools, think) -> str:
        thinking = self.is_thinking if think is None else think_bool(think)
        out = []
        first_system = bool(messages) and messages[0].get("role") == "system"
        if tools:
            out.append(IM_START + "system\n")
            if first_system:
                out.append((messages[0].get("content") or "") + "\n\n")
            out.append(
                TOOLS_INTRO + "".join("\n" + with_spaces(tool_json(t)) for t in tools) + TOOLS_OUTRO
            )
        elif first_system:
            out.append(IM_START + "system\n" + (messages[0].get("content") or "") + IM_END + "\n")
        # the last real question: user turns that are only tool results do not count
        last_query = len(messages) - 1
        for n in range(len(messages) - 1, -1, -1):
            if messages[n].get("role") == "user":
                text, _ = self.content(messages[n], 0)
                if not (text.startswith("<tool_response>") and text.endswith("</tool_response>")):
                    last_query = n
                    break
        offset = 0
        for n, message in enumerate(messages):
            content, offset = self.content(message, offset)
            role = message.get("role")
            last = n == len(messages) - 1
            prefill = last and role == "assistant"
            if role == "user" or (role == "system" and n != 0):
                out.append(IM_START + role + "\n" + content + IM_END + "\n")
            elif role == "assistant":
                reasoning = (message.get("thinking") or "") if thinking else ""
                if thinking and n > last_query and (last or reasoning):
                    out.append(IM_START + "assistant\n<think>\n" + reasoning.strip("\n"))
                    if content:
                        out.append("\n</think>\n\n" + content.lstrip("\n"))
                else:
                    out.append(IM_START + "assistant\n" + content)
                for m, call in enumerate(message.get("tool_calls") or ()):
                    if m > 0 or content:
                        out.append("\n")
                    name, arguments = call_function(call)
                    out.append(
                        TOOL_OPEN
                        + '\n{"name": "'
                        + name
                        + '", "arguments": '
                        + with_spaces(arguments_json(arguments))
                        + "}\n"
                        + TOOL_CLOSE
                    )
                if not prefill:
                    out.append(IM_END + "\n")
            elif role == "tool":
                if n == 0 or messages[n - 1].get("role") != "tool":
                    out.append(IM_START + "user")
                out.append("\n<tool_response>\n" + content + "\n</tool_response>")
                if last or messages[n + 1].get("role") != "tool":
                    out.append(IM_END + "\n")
            if last and not prefill:
                out.append(IM_START + "assistant\n")
                if thinking:
                    out.append("<think>\n")
                elif self.empty_think_when_not_thinking:
                    out.append("<think>\n\n</think>\n\n")
        return "".join(out)


class Qwen3VLThinkingRenderer(Qwen3VLRenderer):
    is_thinking = True


def parse_json_function(raw: str) -> dict:
    """``{"name": ..., "arguments": {...}}`` as Go reads it into a tool call's function."""
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("a tool call is a JSON object")
    name, arguments = value.get("name", ""), value.get("arguments")
    if not isinstance(name, str) or (arguments is not None and not isinstance(arguments, dict)):
        raise ValueError("a tool call has a string name and object arguments")
    return {"name": name, "arguments": arguments or {}}


THINKING, CONTENT, TOOL, AFTER_THINKING, AFTER_CALL = (
    "thinking",
    "content",
    "tool",
    "after-thinking",
    "after-call",
)


class Qwen3VLParser(EventParser):
    has_tool_support = True
    answer_after = THINK_CLOSE
    preserved_tokens = (THINK_CLOSE, TOOL_OPEN, TOOL_CLOSE)

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.held, self.state, self.count = "", CONTENT, 0

    def init(self, tools, last_message, think):
        self.count = 0
        prefilled = bool(
            last_message and last_message.get("role") == "assistant" and last_message.get("content")
        )
        self.state = THINKING if self.has_thinking_support and not prefilled else CONTENT
        return tools

    def read_call(self, raw) -> dict:
        return parse_json_function(raw)

    def _settle(self, events: list, kind: str, *tags: str) -> bool:
        keep = max(overlap(self.held, tag) for tag in tags)
        before = self.held[: len(self.held) - keep]
        end = len(before) - trailing_space(before)
        if end:
            events.append((kind, self.held[:end]))
        self.held = self.held[end:]
        return False

    def _eat(self, events: list) -> bool:
        if self.state in (AFTER_THINKING, AFTER_CALL):
            self.held = lstrip_go(self.held)
            if not self.held:
                return False
            self.state = CONTENT
            return True
        if self.state == CONTENT:
            if TOOL_OPEN in self.held:
                before, self.held = self.held.split(TOOL_OPEN, 1)
                if rstrip_go(before):
                    events.append(("content", rstrip_go(before)))
                self.state = TOOL
                return True
            return self._settle(events, "content", TOOL_OPEN)
        if self.state == TOOL:
            if TOOL_CLOSE not in self.held:
                return False
            raw, self.held = self.held.split(TOOL_CLOSE, 1)
            events.append(("call", raw))
            self.state = AFTER_CALL
            return True
        close, tool = self.held.find(THINK_CLOSE), self.held.find(TOOL_OPEN)
        if tool >= 0 and (close < 0 or tool < close):
            before, self.held = self.held.split(TOOL_OPEN, 1)
            if rstrip_go(before):
                events.append(("thinking", rstrip_go(before)))
            self.state = TOOL
            return True
        if close >= 0:
            before, after = self.held.split(THINK_CLOSE, 1)
            self.held = lstrip_go(after)
            if rstrip_go(before):
                events.append(("thinking", rstrip_go(before)))
            self.state = CONTENT if self.held else AFTER_THINKING
            return True
        return self._settle(events, "thinking", THINK_CLOSE, TOOL_OPEN)


class Qwen3VLThinkingParser(Qwen3VLParser):
    has_thinking_support = True
