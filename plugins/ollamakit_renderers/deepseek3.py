"""``deepseek3.1`` (renderer) and ``deepseek3`` (parser): DeepSeek-V3.1's prompt, with its tools
block and ``<｜tool▁calls▁begin｜>`` calls, and the reading of its thinking (which ends at
``</think>``), answers, calls and echoed tool output."""

from __future__ import annotations

import json

from ollamakit.interfaces import Renderer

from .common import (
    EventParser,
    arguments_json,
    call_function,
    function_of,
    lstrip_go,
    parameters_json,
    rstrip_go,
)

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER, ASSISTANT = "<｜User｜>", "<｜Assistant｜>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALLS_BEGIN, CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
CALL_BEGIN, CALL_END, SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
OUTPUT_BEGIN, OUTPUT_END = "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"

TOOL_USE = (
    "\nIMPORTANT: ALWAYS adhere to this exact format for tool use:\n"
    f"{CALLS_BEGIN}{CALL_BEGIN}tool_call_name{SEP}tool_call_arguments{CALL_END}{{{{additional_tool_calls}}}}{CALLS_END}\n\n"
    "Where:\n\n"
    "- `tool_call_name` must be an exact match to one of the available tools\n"
    "- `tool_call_arguments` must be valid JSON that strictly follows the tool's Parameters Schema\n"
    "- For multiple tool calls, chain them directly without separators or spaces\n"
)


def thinks(think) -> bool:
    """``think`` asks for thinking: true, or any level."""
    return think not in (None, False, "")


class DeepSeek31Renderer(Renderer):
    leading_bos = BOS
    is_thinking = True

    def render(self, messages, tools, think) -> str:
        thinking = self.is_thinking and thinks(think)
        out = [
            BOS,
            "\n\n".join(m.get("content") or "" for m in messages if m.get("role") == "system"),
        ]
        if tools:
            out.append("\n\n## Tools\nYou have access to the following tools:\n")
            for tool in tools:
                function = function_of(tool)
                out.append("\n### " + (function.get("name") or ""))
                out.append("\nDescription: " + (function.get("description") or ""))
                out.append("\n\nParameters: " + parameters_json(function.get("parameters")) + "\n")
            out.append(TOOL_USE)
        is_tool = last_was_user = False
        last_user = max((n for n, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        for n, message in enumerate(messages):
            role, content = message.get("role"), message.get("content") or ""
            if role == "user":
                is_tool, last_was_user = False, True
                out.append(USER + content)
            elif role == "assistant" and message.get("tool_calls"):
                if last_was_user:
                    out.append(ASSISTANT + THINK_CLOSE)
                is_tool = last_was_user = False
                out.append(content + CALLS_BEGIN)
                for call in message["tool_calls"]:
                    name, arguments = call_function(call)
                    out.append(CALL_BEGIN + name + SEP + arguments_json(arguments) + CALL_END)
                out.append(CALLS_END + EOS)
            elif role == "assistant":
                if last_was_user:
                    # only the turn being written (after the last user message) keeps its thinking open
                    current = n > last_user
                    out.append(
                        ASSISTANT
                        + (
                            THINK_OPEN
                            if message.get("thinking") and thinking and current
                            else THINK_CLOSE
                        )
                    )
                last_was_user = False
                if is_tool:
                    is_tool = False
                elif THINK_CLOSE in content:
                    content = content.split(THINK_CLOSE, 1)[1]
                out.append(content + EOS)
            elif role == "tool":
                last_was_user, is_tool = False, True
                out.append(OUTPUT_BEGIN + content + OUTPUT_END)
        if last_was_user and not is_tool:
            out.append(ASSISTANT + (THINK_OPEN if thinking else THINK_CLOSE))
        return "".join(out)


THINKING, CONTENT, CALLS, OUTPUT = "thinking", "content", "calls", "output"


def parse_call_content(text: str) -> dict:
    """``name<｜tool▁sep｜>{json arguments}``."""
    if SEP not in text:
        raise ValueError("invalid format")
    name, arguments = text.split(SEP, 1)
    value = json.loads(arguments.strip())
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValueError("arguments are not an object")
    return {"name": name.strip(), "arguments": value}


class DeepSeek3Parser(EventParser):
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
    )

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.held = ""
        self.state = CONTENT
        self.count = 0

    def init(self, tools, last_message, think):
        self.count = 0
        prefilled = bool(
            last_message and last_message.get("role") == "assistant" and last_message.get("content")
        )
        thinking = self.has_thinking_support and thinks(think)
        self.state = THINKING if thinking and not prefilled else CONTENT
        return tools

    def _eat(self, events: list) -> bool:
        held = self.held
        if not held:
            return False
        if self.state == THINKING:
            return self._think_until(events, THINK_CLOSE, CONTENT)
        if self.state == CONTENT:
            if CALLS_BEGIN in held:
                before, self.held = held.split(CALLS_BEGIN, 1)
                self.state = CALLS
                if rstrip_go(before):
                    events.append(("content", rstrip_go(before)))
                return True
            if OUTPUT_BEGIN in held:
                before, self.held = held.split(OUTPUT_BEGIN, 1)  # the space around it stays
                self.state = OUTPUT
                if before:
                    events.append(("content", before))
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
                        call = None  # a call that does not read is skipped when the calls end
                    if call is not None:
                        self.held = lstrip_go(held[end + len(CALL_END) :])
                        events.append(("call", call))
                        return True
            at = held.find(CALLS_END)
            if at >= 0:
                self.held, self.state = lstrip_go(held[at + len(CALLS_END) :]), CONTENT
                return True
            return False
        at = held.find(OUTPUT_END)  # tool output the model echoed: it is content
        if at < 0:
            return False
        output, self.held, self.state = held[:at], held[at + len(OUTPUT_END) :], CONTENT
        if output:
            events.append(("content", output))
        return True
