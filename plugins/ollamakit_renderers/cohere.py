"""``cohere``: Cohere's Command prompt (system, ``# Available Tools`` as JSON, actions and tool
results in its JSON layouts, ``<|START_THINKING|>`` reasoning) and the reading of its thinking,
text and actions."""

from __future__ import annotations

import json

from ollamakit.interfaces import Parser, Renderer
from ollamakit.lib.structured import Parsed

from .common import (
    arguments_json,
    call_function,
    function_of,
    lstrip_go,
    overlap,
    parameters_json,
    rstrip_go,
    strip_go,
    think_bool,
    tool_call,
    trailing_space,
    with_spaces,
)
from ollamakit.lib.templates import to_json

TURN, END_TURN = "<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>"
SYSTEM, USER, CHATBOT = "<|SYSTEM_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>"
START_TEXT, END_TEXT = "<|START_TEXT|>", "<|END_TEXT|>"
START_THINKING, END_THINKING = "<|START_THINKING|>", "<|END_THINKING|>"
START_ACTION, END_ACTION = "<|START_ACTION|>", "<|END_ACTION|>"
START_RESPONSE, END_RESPONSE = "<|START_RESPONSE|>", "<|END_RESPONSE|>"


def tool_entry(tool) -> str:
    function = function_of(tool)
    return (
        '{"name": '
        + to_json(function.get("name") or "")
        + ', "description": '
        + to_json(function.get("description") or "")
        + ', "parameters": '
        + with_spaces(parameters_json(function.get("parameters")))
        + ', "responses": null}'
    )


def tool_result(call_id: str, content: str) -> str:
    wrapped = with_spaces("{" + to_json("content") + ":" + to_json(content) + "}")
    return (
        '\n    {\n        "tool_call_id": "'
        + call_id
        + '",\n        "results": {\n\n            \n            "0": '
        + wrapped
        + '\n\n        },\n        "is_error": null\n    }'
    )


class CohereRenderer(Renderer):
    leading_bos = "<BOS_TOKEN>"

    def render(self, messages, tools, think) -> str:
        reasoning = think is None or think_bool(think)
        system, rest = "", list(messages)
        if rest and (rest[0].get("role") or "").lower() == "system":
            system, rest = rest[0].get("content") or "", rest[1:]
        out = [
            TURN
            + SYSTEM
            + START_TEXT
            + (system + "\n\n\n\n" if system else "")
            + "# Available Tools\n```json\n[\n"
        ]
        if not tools:
            out.append("\n\n")
        for n, tool in enumerate(tools or ()):
            out.append("\n    " + tool_entry(tool) + ("," if n < len(tools) - 1 else "") + "\n\n")
        out.append("\n]\n```" + END_TEXT + END_TURN)
        ids: dict[str, str] = {}  # a call's id -> its number in the prompt
        count = 0
        prefill = False
        n = 0
        while n < len(rest):
            message = rest[n]
            role, content = (message.get("role") or "").lower(), message.get("content") or ""
            if role == "system":
                out.append(TURN + SYSTEM + START_TEXT + content + END_TEXT + END_TURN)
            elif role == "user":
                out.append(TURN + USER + START_TEXT + content + END_TEXT + END_TURN)
            elif role in ("assistant", "chatbot"):
                out.append(TURN + CHATBOT)
                thinking = message.get("thinking")
                calls = message.get("tool_calls") or []
                if calls:
                    out.append("\n            \n                ")
                    if thinking:
                        out.append(START_THINKING + thinking + END_THINKING)
                    out.append(START_ACTION + "[")
                    for m, call in enumerate(calls):
                        number = str(count)
                        count += 1
                        call_id = call.get("id") if isinstance(call, dict) else None
                        if call_id and call_id not in ids:
                            ids[call_id] = number
                        name, arguments = call_function(call)
                        out.append(
                            '\n\n    {"tool_call_id": "'
                            + number
                            + '", "tool_name": "'
                            + name
                            + '", "parameters": '
                            + with_spaces(arguments_json(arguments))
                            + "}"
                            + ("," if m < len(calls) - 1 else "")
                        )
                    out.append("\n\n]" + END_ACTION + END_TURN)
                else:
                    if thinking:
                        out.append(START_THINKING + thinking + END_THINKING)
                    out.append(START_TEXT + content)
                    if n == len(rest) - 1:
                        prefill = True
                    else:
                        out.append(END_TEXT + END_TURN)
            elif role == "tool":
                out.append(TURN + SYSTEM + "<|START_TOOL_RESULT|>[")
                results = [message]
                while n + 1 < len(rest) and (rest[n + 1].get("role") or "").lower() == "tool":
                    n += 1
                    results.append(rest[n])
                out.append(
                    ",".join(
                        tool_result(
                            ids.get(r.get("tool_call_id") or "", r.get("tool_call_id") or ""),
                            r.get("content") or "",
                        )
                        for r in results
                    )
                )
                out.append("\n\n]<|END_TOOL_RESULT|>" + END_TURN)
            n += 1
        if not prefill:
            out.append(
                TURN + CHATBOT + (START_THINKING if reasoning else START_THINKING + END_THINKING)
            )
        return "".join(out)


def json_objects(text: str) -> list[str]:
    """The top-level ``{...}`` objects in ``text``."""
    objects, depth, start, in_string, escaped = [], 0, -1, False, False
    for n, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and in_string:
            escaped = True
        elif ch == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif ch == "{":
            if depth == 0:
                start = n
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0 and start >= 0:
                objects.append(text[start : n + 1])
                start = -1
    return objects


def action_call(value) -> dict | None:
    if not isinstance(value, dict):
        return None
    name, params = value.get("tool_name", ""), value.get("parameters")
    if not isinstance(name, str) or (params is not None and not isinstance(params, dict)):
        return None
    return {"name": name, "arguments": params or {}}


def parse_actions(payload: str) -> list[dict]:
    """An action's list of calls; when it is not a JSON list, each object that reads as one."""
    payload = strip_go(payload)
    if not payload:
        return []
    try:
        value = json.loads(payload)
    except ValueError:
        value = None
    if isinstance(value, list):
        calls = [action_call(v) for v in value]
        if all(c is not None for c in calls):
            return calls
    calls = []
    for obj in json_objects(payload):
        try:
            call = action_call(json.loads(obj))
        except ValueError:
            call = None
        if call is not None:
            calls.append(call)
    return calls


THINKING, AWAITING, CONTENT, ACTION = "thinking", "awaiting", "content", "action"
BLOCK_OPENERS = (START_TEXT, START_RESPONSE, START_ACTION, END_TURN)


class CohereParser(Parser):
    has_tool_support = True
    has_thinking_support = True
    answer_after = END_THINKING
    preserved_tokens = (
        START_THINKING,
        END_THINKING,
        START_TEXT,
        END_TEXT,
        START_ACTION,
        END_ACTION,
        START_RESPONSE,
        END_RESPONSE,
    )

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.held, self.state, self.count = "", THINKING, 0

    def init(self, tools, last_message, think):
        self.held, self.count = "", 0
        prefilled = bool(
            last_message and last_message.get("role") == "assistant" and last_message.get("content")
        )
        thinking = think is None or think_bool(think)
        self.state = CONTENT if prefilled else THINKING if thinking else AWAITING
        return tools

    def add(self, text: str, done: bool) -> Parsed:
        self.held += text
        content, thinking, calls = [], [], []
        while self.held and self._eat(done, content, thinking, calls):
            pass
        numbered = []
        for call in calls:
            numbered.append(tool_call(call["name"], call["arguments"], self.count))
            self.count += 1
        return Parsed("".join(content), "".join(thinking), numbered)

    def _eat(self, done: bool, content: list, thinking: list, calls: list) -> bool:
        held = self.held
        if self.state == THINKING:
            at = held.find(END_THINKING)
            if at >= 0:
                thinking.append(rstrip_go(held[:at]))
                self.held, self.state = held[at + len(END_THINKING) :], AWAITING
                return True
            end = len(held) - overlap(held, END_THINKING)
            end -= trailing_space(held[:end])
            if end > 0:
                thinking.append(held[:end])
                self.held = held[end:]
            return False
        if self.state == AWAITING:
            for opener in (START_TEXT, START_RESPONSE):
                at = held.find(opener)
                if at >= 0:
                    self.held, self.state = held[at + len(opener) :], CONTENT
                    return True
            at = held.find(START_ACTION)
            if at >= 0:
                self.held, self.state = held[at + len(START_ACTION) :], ACTION
                return True
            trimmed = lstrip_go(held)
            if trimmed.startswith(END_TURN):
                self.held = trimmed[len(END_TURN) :]
                return True
            if not trimmed:
                if done:
                    self.held = ""
                return False
            if not done and any(
                len(trimmed) < len(t) and t.startswith(trimmed) for t in BLOCK_OPENERS
            ):
                return False
            self.held, self.state = trimmed, CONTENT  # text with no block opened is the answer
            return True
        if self.state == CONTENT:
            for closer in (END_TEXT, END_RESPONSE, END_TURN):
                at = held.find(closer)
                if at >= 0:
                    content.append(held[:at])
                    self.held, self.state = held[at + len(closer) :], AWAITING
                    return True
            end = len(held) - max(
                overlap(held, END_TEXT), overlap(held, END_RESPONSE), overlap(held, END_TURN)
            )
            if end > 0:
                content.append(held[:end])
                self.held = held[end:]
            if done and self.held:
                content.append(self.held)
                self.held = ""
            return False
        at = held.find(END_ACTION)
        if at >= 0:
            calls.extend(parse_actions(held[:at]))
            self.held, self.state = held[at + len(END_ACTION) :], AWAITING
            return True
        if done:
            calls.extend(parse_actions(held))
            self.held = ""
        return False
