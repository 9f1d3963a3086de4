"""``cogito``: Deep Cogito's prompt (DeepSeek's tokens, its own system prompt, tools as indented
JSON, calls as ``function<｜tool▁sep｜>name`` with a JSON block) and the reading of its thinking,
answers and calls."""

from __future__ import annotations

import json

from ollamakit.interfaces import Renderer

from .common import (
    EventParser,
    arguments_json,
    call_function,
    go_indent,
    lstrip_go,
    rstrip_go,
    tool_json,
)
from .deepseek3 import (
    ASSISTANT,
    BOS,
    CALL_BEGIN,
    CALL_END,
    CALLS_BEGIN,
    CALLS_END,
    EOS,
    OUTPUT_BEGIN,
    OUTPUT_END,
    SEP,
    THINK_CLOSE,
    USER,
    thinks,
)

OUTPUTS_BEGIN, OUTPUTS_END = "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>"
DEFAULT_SYSTEM = "You are Cogito, an AI assistant created by Deep Cogito, which is an AI research lab based in San Francisco."


class CogitoRenderer(Renderer):
    leading_bos = BOS

    def render(self, messages, tools, think) -> str:
        thinking = thinks(think)
        system = ""
        if messages and messages[0].get("role") == "system":
            system, messages = messages[0].get("content") or "", messages[1:]
        if thinking:
            prompt = "Enable deep thinking subroutine.\n\n" + DEFAULT_SYSTEM
            if system:
                prompt += "\n\n" + system + "\n\n"
        else:
            prompt = DEFAULT_SYSTEM + ("\n\n" + system if system else "")
        if tools:
            prompt += "\nYou have the following functions available:\n"
            for tool in tools:
                prompt += "```json\n" + go_indent(tool_json(tool), "    ") + "\n```\n"
        out = [BOS + prompt]
        outputs_open = last_was_user = False
        for n, message in enumerate(messages):
            role, content = message.get("role"), message.get("content") or ""
            if role == "user":
                last_was_user = True
                out.append(USER + content + ASSISTANT)
            elif role == "assistant":
                last_was_user = False
                calls = message.get("tool_calls") or []
                if calls:
                    out.append(content + CALLS_BEGIN)
                    for m, call in enumerate(calls):
                        name, arguments = call_function(call)
                        out.append(
                            CALL_BEGIN
                            + "function"
                            + SEP
                            + name
                            + "\n```json\n"
                            + arguments_json(arguments)
                            + "\n```"
                            + CALL_END
                            + ("\n" if m < len(calls) - 1 else "")
                        )
                    out.append(CALLS_END + EOS)
                else:
                    out.append(content + EOS)
            elif role == "tool":
                last_was_user = False
                if not outputs_open:
                    out.append(OUTPUTS_BEGIN)
                    outputs_open = True
                out.append(OUTPUT_BEGIN + content + OUTPUT_END)
                if n + 1 < len(messages) and messages[n + 1].get("role") == "tool":
                    out.append("\n")
                else:
                    out.append(OUTPUTS_END)
                    outputs_open = False
        if outputs_open:
            out.append(OUTPUTS_END)
        if not last_was_user:
            out.append(ASSISTANT)
        if thinking:
            out.append("<think>\n")
        return "".join(out)


def parse_call_content(text: str) -> dict:
    """``function<｜tool▁sep｜>name`` then the arguments in a JSON block."""
    if SEP not in text:
        raise ValueError("invalid format")
    rest = text.split(SEP, 1)[1]
    start = rest.find("\n```json\n")
    if start < 0:
        raise ValueError("invalid format")
    body = rest[start + len("\n```json\n") :]
    end = body.find("\n```")
    if end < 0:
        raise ValueError("invalid format")
    value = json.loads(body[:end])
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValueError("arguments are not an object")
    return {"name": rest[:start].strip(), "arguments": value}


THINKING, CONTENT, CALLS, OUTPUTS = "thinking", "content", "calls", "outputs"


class CogitoParser(EventParser):
    has_tool_support = True
    has_thinking_support = True
    answer_after = THINK_CLOSE
    preserved_tokens = (
        THINK_CLOSE,
        CALLS_BEGIN,
        CALLS_END,
        CALL_BEGIN,
        CALL_END,
        SEP,
        OUTPUT_BEGIN,
        OUTPUT_END,
        OUTPUTS_BEGIN,
        OUTPUTS_END,
    )

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.held, self.state, self.count = "", CONTENT, 0

    def init(self, tools, last_message, think):
        self.count = 0
        prefilled = bool(
            last_message and last_message.get("role") == "assistant" and last_message.get("content")
        )
        # with tools offered the model answers (or calls) without thinking first
        self.state = THINKING if thinks(think) and not prefilled and not tools else CONTENT
        return tools

    def _eat(self, events: list) -> bool:
        held = self.held
        if not held:
            return False
        if self.state == THINKING:
            return self._think_until(events, THINK_CLOSE, CONTENT)
        if self.state == CONTENT:
            for tag, state in ((CALLS_BEGIN, CALLS), (OUTPUTS_BEGIN, OUTPUTS)):
                if tag in held:
                    before, self.held = held.split(tag, 1)
                    self.state = state
                    if rstrip_go(before):
                        events.append(("content", rstrip_go(before)))
                    return True
            self.held = ""
            events.append(("content", held))
            return False
        if self.state == CALLS:
            at = held.find(CALL_BEGIN)
            if at >= 0:
                start = at + len(CALL_BEGIN)
                end = held.find(CALL_END, start)
                if end >= 0:
                    try:
                        call = parse_call_content(held[start:end])
                    except ValueError:
                        call = None
                    if call is not None:
                        self.held = lstrip_go(held[end + len(CALL_END) :])
                        events.append(("call", call))
                        return True
            at = held.find(CALLS_END)
            if at >= 0:
                self.held, self.state = lstrip_go(held[at + len(CALLS_END) :]), CONTENT
                return True
            return False
        # OUTPUTS: tool outputs the model echoed are dropped
        at = held.find(OUTPUT_BEGIN)
        if at >= 0:
            end = held.find(OUTPUT_END, at + len(OUTPUT_BEGIN))
            if end >= 0:
                self.held = lstrip_go(held[end + len(OUTPUT_END) :])
                return True
        at = held.find(OUTPUTS_END)
        if at >= 0:
            self.held, self.state = lstrip_go(held[at + len(OUTPUTS_END) :]), CONTENT
            return True
        return False
