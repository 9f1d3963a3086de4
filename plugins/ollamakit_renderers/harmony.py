"""``harmony``: gpt-oss's output format. The model writes messages
``<|start|>{role}<|channel|>{channel} to={recipient}<|message|>{text}<|end|>``; the ``analysis``
channel is thinking, ``final`` (or ``commentary`` with no recipient) is the answer, and a message
with a recipient is a call of that tool with JSON arguments.

The prompt itself comes from the model's Go template; this parser also renames the request's
tools to names the format allows (TypeScript identifiers), and names the calls back.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass

from ollamakit.interfaces import Parser
from ollamakit.lib.structured import Parsed

from .common import function_of, is_go_space, overlap, tool_call

START, END, MESSAGE, CHANNEL, CONSTRAIN = (
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|channel|>",
    "<|constrain|>",
)
BUILT_IN_TOOLS = ("browser.open", "browser.search", "browser.find", "python")


@dataclass
class Header:
    role: str = ""
    channel: str = ""
    recipient: str = ""


# Events of the message stream: ("start",), ("header", Header), ("content", text), ("end",)


def parse_header(raw: str) -> Header:
    """A message header (what lies between ``<|start|>`` and ``<|message|>``)."""
    header = Header()
    if CONSTRAIN in raw:  # the constraint is its own word even when the model left out the space
        raw = raw.replace(CONSTRAIN, " " + CONSTRAIN, 1).strip()
    at = raw.find(CHANNEL)
    if at >= 0:
        before, after = raw[:at], raw[at + len(CHANNEL) :]
        end = next((n for n, ch in enumerate(after) if is_go_space(ch)), len(after))
        header.channel = after[:end]
        raw = (before + after[end:]).strip()
    words = raw.split()
    if not words:
        return header
    role, rest = words[0], words[1:]
    if role.startswith("to="):  # the recipient stands in the role's place
        header.recipient, header.role = role[3:], "tool"
    else:
        header.role = role
    if not header.recipient and rest and rest[0].startswith("to="):
        header.recipient = rest[0][3:]
    return header


class MessageStream:
    """Splits harmony text into message events as it arrives."""

    LOOKING, HEADER, CONTENT = "looking", "header", "content"

    def __init__(self):
        self.state = self.LOOKING
        self.held = ""

    def add_implicit_start(self, last_message: dict | None = None) -> None:
        """The prompt ends inside a message's start: what the model writes continues it."""
        if last_message and last_message.get("role") == "assistant":
            if last_message.get("content"):
                self.held += START + "assistant" + CHANNEL + "final" + MESSAGE
                return
            if last_message.get("thinking"):
                self.held += START + "assistant" + CHANNEL + "analysis" + MESSAGE
                return
        self.held += START + "assistant"

    def add(self, text: str) -> list[tuple]:
        self.held += text
        events: list[tuple] = []
        while True:
            more = self._eat(events)
            if not more:
                return events

    def _eat(self, events: list) -> bool:
        if self.state == self.LOOKING:
            if START not in self.held:
                return False
            self.held = self.held.split(START, 1)[
                1
            ]  # text before a start is dropped, as Ollama does
            self.state = self.HEADER
            events.append(("start",))
            return True
        if self.state == self.HEADER:
            if MESSAGE not in self.held:
                return False
            header, self.held = self.held.split(MESSAGE, 1)
            self.state = self.CONTENT
            events.append(("header", parse_header(header)))
            return True
        if END in self.held:
            content, self.held = self.held.split(END, 1)
            self.state = self.LOOKING
            if content:
                events.append(("content", content))
            events.append(("end",))
            return True
        keep = overlap(self.held, END)
        content, self.held = self.held[: len(self.held) - keep], self.held[len(self.held) - keep :]
        if content:
            events.append(("content", content))
        return False


def valid_chars(name: str) -> str:
    """A tool name as a TypeScript identifier: space, ``-`` and ``.`` become ``_``, other
    characters that are not letters, digits, ``_`` or ``$`` go."""
    out = []
    for ch in name:
        if ch in " -.":
            out.append("_")
        elif ch.isalpha() or unicodedata.category(ch) == "Nd" or ch in "_$":
            out.append(ch)
    candidate = "".join(out)
    if not candidate:
        return "unnamed"
    return "_" + candidate if candidate[0] in "0123456789" else candidate


class FunctionNames:
    """The request's tool names and the names the model sees, both ways."""

    def __init__(self):
        self.to_harmony: dict[str, str] = {}
        self.to_user: dict[str, str] = {}
        # per base name, the suffix its next search starts from: every one below is taken (names
        # are never given back), so a request of many tools of one name is not quadratic
        self.next_suffix: dict[str, int] = {}

    def convert_and_add(self, user_name: str) -> str:
        base = valid_chars(user_name)
        candidate = base
        if user_name in BUILT_IN_TOOLS:
            candidate = user_name
        elif candidate in self.to_user:  # f, f_2, f_3 ...
            count = self.next_suffix.get(base, 2)
            while f"{base}_{count}" in self.to_user:
                count += 1
            candidate, self.next_suffix[base] = f"{base}_{count}", count + 1
        self.to_harmony[user_name] = candidate
        self.to_user[candidate] = user_name
        return candidate

    def original(self, harmony_name: str) -> str:
        return self.to_user.get(harmony_name, harmony_name)


class HarmonyParser(Parser):
    has_tool_support = True
    has_thinking_support = True
    preserved_tokens = (START, END, MESSAGE, CHANNEL, CONSTRAIN)
    answer_after = CHANNEL + "final" + MESSAGE

    NORMAL, THINKING, CALLING = "normal", "thinking", "calling"

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.stream = MessageStream()
        self.names = FunctionNames()
        self.state = self.NORMAL
        self.tool_name: str | None = None
        self.tool_text = ""
        self.started = False

    def init(self, tools, last_message, think):
        self.stream.add_implicit_start(last_message)
        self.started = True
        if not tools:
            return tools
        renamed = []
        for tool in tools:
            function = function_of(tool)
            name = function.get("name")
            if isinstance(name, str) and name:
                tool = {**tool, "function": {**function, "name": self.names.convert_and_add(name)}}
            renamed.append(tool)
        return renamed

    def add(self, text: str, done: bool) -> Parsed:
        if not self.started:  # used without init (generate): the output starts a message
            self.init(None, None, None)
        content, thinking = [], []
        for event in self.stream.add(text):
            if event[0] == "header":
                self._header(event[1])
            elif event[0] == "content":
                if self.state == self.NORMAL:
                    content.append(event[1])
                elif self.state == self.THINKING:
                    thinking.append(event[1])
                else:
                    self.tool_text += event[1]
            elif event[0] == "end":
                self.state = self.NORMAL
        calls = []
        # A call is the last message of a turn: it is read once the output is over.
        if done and self.tool_name is not None:
            raw, self.tool_text = self.tool_text, ""
            name = self.names.original(self.tool_name.removeprefix("functions."))
            try:
                arguments = json.loads(raw)
            except ValueError as exc:
                raise ValueError(f"error parsing tool call: raw='{raw}', err={exc}") from None
            if arguments is None:
                arguments = {}
            if not isinstance(arguments, dict):
                raise ValueError(
                    f"error parsing tool call: raw='{raw}', err=arguments are not an object"
                )
            calls.append(tool_call(name, arguments))
        return Parsed("".join(content), "".join(thinking), calls)

    def _header(self, header: Header) -> None:
        if header.channel in ("analysis", "commentary") and header.recipient:
            self.state, self.tool_name = self.CALLING, header.recipient
        elif header.channel == "analysis":
            self.state = self.THINKING
        elif header.channel in ("commentary", "final"):
            self.state = self.NORMAL
