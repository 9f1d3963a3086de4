"""``laguna`` and ``poolside-v1``: Poolside's Laguna prompts (``<system>``/``<user>``/
``<assistant>`` blocks, a default system message, tools as JSON in ``<available_tools>``, calls
as ``<tool_call>name<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>``, the turn primed
with ``<think>`` or ``</think>``) and the reading of their thinking and calls, including the
forms the model falls back to: a call as JSON, bare or inside ``<user>`` tags.

``laguna`` is the v2 template (newlines inside the blocks, every assistant turn opened by its
reasoning or a bare ``</think>``, an assistant prefill continued in place); ``poolside-v1`` is
v8 (no newlines inside blocks, reasoning kept only when thinking, always a fresh turn)."""

from __future__ import annotations

import re

from ollamakit.interfaces import Renderer

from .common import (
    EventParser,
    call_function,
    function_of,
    go_json,
    go_marshal,
    lstrip_go,
    overlap,
    properties_of,
    property_types,
    rstrip_go,
    strip_go,
    think_bool,
    tool_json,
    trailing_space,
    with_spaces,
)
from .qwen3coder import parse_value

BOS = "〈|EOS|〉"  # Laguna's BOS token is spelled this way
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
USER_OPEN, USER_CLOSE = "<user>", "</user>"
DEFAULT_SYSTEM = (
    "You are a helpful, conversationally-fluent assistant made by Poolside. You are here to be "
    "helpful to users through natural language conversations."
)
TOOLS_INTRO = (
    "### Tools\n\nYou may call functions to assist with the user query.\n"
    "All available function signatures are listed below:\n<available_tools>\n"
)
CALL_FORMAT = (
    "For each function call, return an unescaped XML-like object with function name and "
    "arguments within '<tool_call>' and '</tool_call>' tags, like here:\n"
)
CALL_EXAMPLE = (
    "<tool_call>function-name\n<arg_key>argument-key</arg_key>\n"
    "<arg_value>value-of-argument-key</arg_value>\n</tool_call>"
)


def argument_text(value) -> str:
    """A call's argument as the prompt shows it: a string as it is, anything else as JSON with
    spaces after ``:`` and ``,``."""
    return value if isinstance(value, str) else with_spaces(go_marshal(value))


def tools_json(tools) -> str:
    return "".join(with_spaces(tool_json(t)) + "\n" for t in tools)


def split_system(messages: list[dict]) -> tuple[str, list[dict]]:
    """The system message (the default one unless the first message is one) and the rest."""
    if messages and messages[0].get("role") == "system":
        return messages[0].get("content") or "", messages[1:]
    return DEFAULT_SYSTEM, messages


def reasoning_and_answer(content: str, thinking: str) -> tuple[str, str]:
    """An assistant message's content with a ``</think>`` in it: the thought before the tag
    (when the message has no ``thinking`` of its own) and the answer after the last one."""
    parts = content.split(THINK_CLOSE)
    if len(parts) == 1:
        return content, thinking
    if not thinking:
        before = parts[0].rstrip("\n")
        at = before.rfind(THINK_OPEN)
        thinking = (before[at + len(THINK_OPEN) :] if at >= 0 else before).lstrip("\n")
    return parts[-1].lstrip("\n"), thinking


class LagunaRenderer(Renderer):
    leading_bos = BOS

    def render(self, messages, tools, think) -> str:
        thinks = think_bool(think)
        system, rest = split_system(messages)
        out = [BOS]
        if strip_go(system) or tools:
            out.append("<system>\n")
            if strip_go(system):
                out.append("\n" + rstrip_go(system))
            if tools:
                out.append("\n\n" + TOOLS_INTRO + tools_json(tools) + "</available_tools>\n\n")
                if thinks:
                    out.append(
                        "Wrap your thinking in '<think>', '</think>' tags, followed by a function "
                        "call. " + CALL_FORMAT + "<think> your thoughts here </think>\n"
                    )
                else:
                    out.append(CALL_FORMAT)
                out.append(CALL_EXAMPLE)
            out.append("\n</system>\n")
        for n, message in enumerate(rest):
            role, content = message.get("role"), message.get("content") or ""
            if role in ("user", "system"):
                out.append(f"<{role}>\n{content}\n</{role}>\n")
            elif role == "tool":
                out.append("<tool_response>\n" + content + "\n</tool_response>\n")
            elif role == "assistant":
                out.append(self._assistant(message, n == len(rest) - 1))
        if not rest or rest[-1].get("role") != "assistant":
            out.append("<assistant>\n" + (THINK_OPEN if thinks else THINK_CLOSE))
        return "".join(out)

    @staticmethod
    def _assistant(message: dict, last: bool) -> str:
        calls = message.get("tool_calls") or []
        answer, reasoning = reasoning_and_answer(
            message.get("content") or "", message.get("thinking") or ""
        )
        reasoning, answer = strip_go(reasoning), strip_go(answer)
        out = "<assistant>\n"
        out += f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n" if reasoning else THINK_CLOSE + "\n"
        out += answer + "\n" if answer else ""
        for call in calls:
            name, arguments = call_function(call)
            out += CALL_OPEN + name + "\n"
            for key, value in arguments.items():
                out += f"<arg_key>{key}</arg_key>\n<arg_value>{argument_text(value)}</arg_value>\n"
            out += CALL_CLOSE + "\n"
        prefill = last and bool(answer or reasoning or calls)  # continued in place
        return out if prefill else out + "</assistant>\n"


class LagunaV8Renderer(Renderer):
    """``poolside-v1``: Laguna's v8 template."""

    leading_bos = BOS

    def render(self, messages, tools, think) -> str:
        thinks = think_bool(think)
        system, rest = split_system(messages)
        out = [BOS]
        if strip_go(system) or tools or thinks:
            out.append("<system>")
            if strip_go(system):
                out.append(rstrip_go(system) + ("\n\n" if tools else ""))
            if tools:
                out.append(TOOLS_INTRO + tools_json(tools) + "</available_tools>")
            out.append("</system>\n")
        for message in rest:
            role, content = message.get("role"), message.get("content") or ""
            if role in ("user", "system"):
                out.append(f"<{role}>{content}</{role}>\n")
            elif role == "tool":
                out.append("<tool_response>" + content + "</tool_response>\n")
            elif role == "assistant":
                out.append("<assistant>")
                if thinks:
                    out.append(THINK_OPEN + (message.get("thinking") or "") + THINK_CLOSE)
                else:
                    out.append(THINK_CLOSE)
                out.append(content)
                for call in message.get("tool_calls") or ():
                    name, arguments = call_function(call)
                    out.append(CALL_OPEN + name)
                    for key, value in arguments.items():
                        out.append(
                            f"<arg_key>{key}</arg_key><arg_value>{argument_text(value)}</arg_value>"
                        )
                    out.append(CALL_CLOSE)
                out.append("</assistant>\n")
        out.append("<assistant>" + (THINK_OPEN if thinks else THINK_CLOSE))
        return "".join(out)


# -- reading calls ------------------------------------------------------------------------------

ARGUMENT = re.compile(r"<arg_key>(.*?)</arg_key>[\t\n\f\r ]*<arg_value>(.*?)</arg_value>", re.S)
# names the model is used to, for the tools clients usually call otherwise
ALIASES = {"read_file": "read", "write_file": "write", "edit_file": "edit", "web_fetch": "webfetch"}


def resolve_name(name: str, tools) -> str | None:
    """The declared tool a call's name means (itself, or the tool its alias stands for)."""
    names = {function_of(t).get("name") for t in tools or ()}
    if name in names:
        return name
    return ALIASES[name] if ALIASES.get(name) in names else None


def clean_call(raw: str) -> str:
    """A call's text without repeated ``<tool_call>`` openings, anything after its close, and
    a second call nested in it."""
    raw = strip_go(raw)
    while raw.startswith(CALL_OPEN):
        raw = strip_go(raw[len(CALL_OPEN) :])
    if CALL_CLOSE in raw:
        raw = strip_go(raw[: raw.index(CALL_CLOSE)])
    if CALL_OPEN in raw:
        before, after = raw.split(CALL_OPEN, 1)
        if strip_go(before):
            return strip_go(before)
        raw = strip_go(after)
    return raw


def json_object(text: str, what: str) -> dict:
    try:
        value = go_json(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ValueError(f"failed to parse Laguna JSON tool call {what}")
    return value


def call_name(raw: str) -> str:
    """The tool a call names ("" when it names none)."""
    raw = clean_call(raw)
    if raw.startswith("{"):
        try:
            name = json_object(raw, "").get("name", "")
        except ValueError:
            return ""
        return strip_go(name) if isinstance(name, str) else ""
    ends = [at for at in (raw.find("<arg_key>"), raw.find("{")) if at >= 0]
    end = ends[0] if ends else next((n for n, ch in enumerate(raw) if ch in "\r\n"), len(raw))
    return strip_go(raw[:end])


def parse_call(raw: str, tools) -> dict:
    """A call as ``{"name", "arguments"}``: a JSON object with both, or the name followed by
    ``<arg_key>``/``<arg_value>`` pairs (typed by the tool's declaration) or a JSON object."""
    raw = clean_call(raw)
    if raw.startswith("{"):
        parsed = json_object(raw, "")
        name, arguments = parsed.get("name", ""), parsed.get("arguments")
        if not isinstance(name, str) or not (arguments is None or isinstance(arguments, dict)):
            raise ValueError("failed to parse Laguna JSON tool call")
        if not name:
            raise ValueError("empty Laguna tool call name")
        return {"name": resolve_name(name, tools) or name, "arguments": arguments or {}}
    cut = raw.find("<arg_key>")
    if cut < 0:
        cut = raw.find("{")
    name, text = (raw[:cut], raw[cut:]) if cut >= 0 else (raw, "")
    name = strip_go(name)
    name = resolve_name(name, tools) or name
    if strip_go(text).startswith("{"):
        return {"name": name, "arguments": json_object(strip_go(text), "arguments")}
    tool = next((t for t in tools or () if function_of(t).get("name") == name), None)
    props = properties_of(tool) if tool is not None else {}
    arguments = {}
    for match in ARGUMENT.finditer(text):
        key = strip_go(match.group(1))
        prop = props.get(key)
        branches = prop.get("anyOf") if isinstance(prop, dict) else None
        if branches:
            types = [t for b in branches for t in property_types(b)]
        else:
            types = property_types(prop)
        arguments[key] = parse_value(match.group(2), types)
    return {"name": name, "arguments": arguments}


def looks_like_json_call(raw: str, done: bool) -> bool:
    raw = lstrip_go(raw)
    if not raw.startswith("{"):
        return False
    if '"name"' in raw or '"arguments"' in raw:
        return True
    return not done and raw.startswith(('{"', "{\n", "{\r\n"))


def is_json(text: str) -> bool:
    try:
        go_json(text)
    except ValueError:
        return False
    return True


# -- the parser ---------------------------------------------------------------------------------

THINKING, CONTENT, CALL = "thinking", "content", "call"


class LagunaParser(EventParser):
    has_tool_support = True
    has_thinking_support = True
    answer_after = THINK_CLOSE
    preserved_tokens = (
        THINK_OPEN,
        THINK_CLOSE,
        CALL_OPEN,
        CALL_CLOSE,
        USER_OPEN,
        USER_CLOSE,
        "<arg_key>",
        "</arg_key>",
        "<arg_value>",
        "</arg_value>",
    )
    #: whether an assistant message last in the conversation is continued in place
    continues_prefill = True

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.tools: list = []
        self.thinks = self.done = self.echo_allowed = False
        self.at_start = True
        self.state = CONTENT

    def init(self, tools, last_message, think):
        self.tools, self.held, self.count = list(tools or ()), "", 0
        # the prompt primes <think> or </think>: thinking is off unless asked for
        self.thinks = think_bool(think)
        self.at_start = True
        prefill = (
            self.continues_prefill
            and bool(last_message)
            and last_message.get("role") == "assistant"
        )
        # a prefill is continued after its closed </think>: the model goes on with the answer
        thinking = self.thinks and not prefill
        self.state, self.echo_allowed = (THINKING, True) if thinking else (CONTENT, False)
        return tools

    def add(self, text: str, done: bool):
        self.done = done
        parsed = super().add(text, done)
        if not self.thinks:  # thoughts the model has anyway are not shown
            parsed.thinking = ""
        return parsed

    def _eat(self, events: list) -> bool:
        return {THINKING: self._thinking, CONTENT: self._content, CALL: self._call}[self.state](
            events
        )

    def _emit(self, events: list, kind: str, text: str) -> None:
        if text:
            events.append((kind, text))

    def _thinking(self, events: list) -> bool:
        held = self.held
        if self.echo_allowed:
            trimmed = lstrip_go(held)
            if trimmed.startswith(THINK_OPEN):  # the model repeated the primed <think>
                self.held, self.echo_allowed = lstrip_go(trimmed[len(THINK_OPEN) :]), False
                return True
            if THINK_OPEN.startswith(trimmed) and not self.done:
                self.held = trimmed
                return False
            self.held = held = trimmed
            self.echo_allowed = False
        for tag, state in ((THINK_CLOSE, CONTENT), (CALL_OPEN, CALL)):
            if tag in held:
                thought, after = held.split(tag, 1)
                self._emit(events, "thinking", rstrip_go(thought))
                self.held = lstrip_go(after) if state == CONTENT else after
                self.state = state
                return True
        if self.done:
            self.held, self.state = "", CONTENT
            self._emit(events, "thinking", rstrip_go(held))
            return bool(rstrip_go(held))
        keep = max(overlap(held, THINK_CLOSE), overlap(held, CALL_OPEN), trailing_space(held))
        return self._settle(events, "thinking", keep)

    def _settle(self, events: list, kind: str, keep: int) -> bool:
        """Give all but the last ``keep`` characters, which may still start a tag (or be space
        before one); nothing while all of it may."""
        held = self.held
        if 0 < keep < len(held):
            self._emit(events, kind, held[: len(held) - keep])
            self.held = held[len(held) - keep :]
            return True
        return False

    def _content(self, events: list) -> bool:
        if self.at_start:  # the newline after the primed </think>
            self.held = lstrip_go(self.held)
            if not self.held:
                return False
            self.at_start = False
        held, done = self.held, self.done
        if THINK_OPEN in held:
            before, after = held.split(THINK_OPEN, 1)
            self._emit(events, "content", before)
            self.held, self.state, self.echo_allowed = lstrip_go(after), THINKING, False
            return True
        if not done and 0 < overlap(held, THINK_OPEN) < len(held):
            return self._settle(events, "content", overlap(held, THINK_OPEN))
        trimmed = lstrip_go(held)
        if trimmed.startswith(THINK_CLOSE):  # the primed or a stray </think> echoed: dropped
            self.held = lstrip_go(trimmed[len(THINK_CLOSE) :])
            return True
        if THINK_CLOSE.startswith(trimmed) and not done:
            return False
        if CALL_OPEN in held:
            before, self.held = held.split(CALL_OPEN, 1)
            self._emit(events, "content", rstrip_go(before))
            self.state = CALL
            return True
        if USER_OPEN in held and self.tools:
            settled = self._user_tagged_call(events)
            if settled is not None:
                return settled
        if self.tools:
            settled = self._json_call(events)
            if settled is not None:
                return settled
        if done:
            self.held = ""
            self._emit(events, "content", rstrip_go(held))
            return bool(rstrip_go(held))
        tags = (CALL_OPEN, USER_OPEN, THINK_OPEN) + (() if self.thinks else (THINK_CLOSE,))
        keep = max(max(overlap(held, tag) for tag in tags), trailing_space(held))
        if keep == 0:
            self.held = ""
            self._emit(events, "content", held)
            return bool(held)
        return self._settle(events, "content", keep)

    def _user_tagged_call(self, events: list) -> bool | None:
        """A call the model wrote as a user turn (``<user>name<arg_key>...</user>``), when it
        names a declared tool; None when the text is not one."""
        held = self.held
        at = held.index(USER_OPEN)
        before, inside = rstrip_go(held[:at]), held[at + len(USER_OPEN) :]
        if USER_CLOSE in inside:
            raw, after = inside.split(USER_CLOSE, 1)
            call = self._alias_call(raw)
            if call is None:
                return None
            self.held = lstrip_go(after)
            self._emit(events, "content", before)
            events.append(("call", call))
            return True
        if self.done:
            return None
        if at > 0:
            self.held = held[at:]
            self._emit(events, "content", before)
            return True
        return False

    def _alias_call(self, raw: str) -> dict | None:
        raw = clean_call(raw)
        name = call_name(raw)
        if not name or resolve_name(name, self.tools) is None:
            return None
        try:
            return parse_call(raw, self.tools)
        except ValueError:
            return None

    def _json_call(self, events: list) -> bool | None:
        """A call written as a bare JSON object; None when the text does not look like one."""
        held = self.held
        at = held.find("{")
        if at < 0:
            return None
        before, raw = rstrip_go(held[:at]), lstrip_go(held[at:])
        if not looks_like_json_call(raw, self.done):
            return None
        if not self.done and not is_json(strip_go(raw)):  # wait for the rest of it
            if not before:
                return False
            self.held = held[at:]
            self._emit(events, "content", before)
            return True
        call = parse_call(raw, self.tools)
        self.held, self.state = "", CONTENT
        self._emit(events, "content", before)
        events.append(("call", call))
        return True

    def _call(self, events: list) -> bool:
        held = self.held
        if CALL_CLOSE in held:
            raw, after = held.split(CALL_CLOSE, 1)
            self.held, self.state = lstrip_go(after), CONTENT
            events.append(("call", parse_call(raw, self.tools)))
            return True
        if self.done and strip_go(held):  # the model stopped before closing its call
            self.held, self.state = "", CONTENT
            events.append(("call", parse_call(held, self.tools)))
            return True
        return False


class LagunaV8Parser(LagunaParser):
    """``poolside-v1``: v8 always opens a fresh assistant turn, so there is no prefill to
    continue."""

    continues_prefill = False
