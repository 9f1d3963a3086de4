"""``gemma4``: Gemma 4's prompt (``<|turn>role`` turns, a system turn holding ``<|think|>`` and
the ``<|tool>declaration:name{...}`` of each tool, calls and their responses inside the model's
turn, strings between ``<|"|>`` markers) and the reading of its ``<|channel>thought`` blocks and
``<|tool_call>call:name{...}`` calls, with the repairs Ollama makes to calls that do not parse.

``gemma4``/``gemma4-small`` end the prompt with the model's turn; ``gemma4-large`` (the 26B and
31B templates) also closes an empty thought there when thinking is off. Earlier turns' thoughts
are left out of the prompt, as the model's own template drops them."""

from __future__ import annotations

import logging

from ollamakit.interfaces import Renderer

from .common import (
    EventParser,
    call_function,
    function_of,
    go_sprint,
    image_tags,
    lstrip_go,
    notation_value,
    overlap,
    property_types,
    rstrip_go,
    strip_go,
    think_bool,
    trailing_space,
)
from .gemma4_calls import Q, parse_call

log = logging.getLogger(__name__)

THINK_OPEN, THINK_CLOSE = "<|channel>", "<channel|>"
CALL_OPEN, CALL_CLOSE = "<|tool_call>", "<tool_call|>"
RESPONSE_OPEN, RESPONSE_CLOSE = "<|tool_response>", "<tool_response|>"
CHANNEL_NAME = "thought\n"


# -- tool declarations ----------------------------------------------------------------------

# keys of a schema that are never read as the names of its properties
SCHEMA_KEYS = ("description", "type", "properties", "required", "nullable")


def declaration(tool) -> str:
    function = function_of(tool)
    params = function.get("parameters") if isinstance(function.get("parameters"), dict) else {}
    out = "<|tool>declaration:" + (function.get("name") or "") + "{description:"
    out += Q + (function.get("description") or "") + Q
    props = params.get("properties")
    kind = params.get("type") if isinstance(params.get("type"), str) else ""
    if isinstance(props, dict) or kind:
        fields = []
        if isinstance(props, dict) and props:
            typed = {name: typed_schema(prop) for name, prop in props.items()}
            fields.append("properties:{" + schema_properties(typed) + "}")
        required = [r for r in params.get("required") or () if isinstance(r, str)]
        if required:
            fields.append(quoted_list("required", required))
        if kind:
            fields.append("type:" + Q + kind.upper() + Q)
        out += ",parameters:{" + ",".join(fields) + "}"
    return out + "}<tool|>"


def typed_schema(prop) -> dict:
    """A declared property as Ollama reads it into its typed struct, back as a schema: a union
    of types becomes one string spelling the list (``['STRING', 'NULL']``), as the model's
    template prints it; a simple ``anyOf`` of bare types becomes such a union."""
    prop = prop if isinstance(prop, dict) else {}
    out: dict = {}
    types = property_types(prop) or any_of_types(prop)
    if types:
        out["type"] = (
            types[0] if len(types) == 1 else "[" + ", ".join(f"'{t.upper()}'" for t in types) + "]"
        )
    if prop.get("description") and isinstance(prop["description"], str):
        out["description"] = prop["description"]
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        out["enum"] = prop["enum"]
    if prop.get("items") is not None:
        out["items"] = prop["items"]
    if isinstance(prop.get("properties"), dict):
        out["properties"] = {k: typed_schema(v) for k, v in prop["properties"].items()}
    required = [r for r in prop.get("required") or () if isinstance(r, str)]
    if required:
        out["required"] = required
    return out


def any_of_types(prop: dict) -> list[str]:
    """The types of an ``anyOf`` whose branches are bare types, in order, once each; [] when a
    branch says more than its type."""
    branches = prop.get("anyOf")
    if not isinstance(branches, list) or not branches:
        return []
    out: list[str] = []
    for branch in branches:
        if not isinstance(branch, dict) or not property_types(branch):
            return []
        if branch.get("anyOf") or branch.get("items") is not None or branch.get("description"):
            return []
        if branch.get("enum") or branch.get("properties") is not None or branch.get("required"):
            return []
        out.extend(t for t in property_types(branch) if t not in out)
    return out


def type_names(value) -> list[str]:
    if isinstance(value, str):
        return [value.upper()]
    if isinstance(value, list):
        return [v.upper() for v in value if isinstance(v, str)]
    return []


def quoted_list(key: str, values) -> str:
    return key + ":[" + ",".join(Q + str(v) + Q for v in values) + "]"


def type_field(types: list[str]) -> str:
    return "type:" + (
        Q + types[0] + Q if len(types) == 1 else "[" + ",".join(Q + t + Q for t in types) + "]"
    )


def schema_properties(props: dict) -> str:
    """Properties by name, each with its description, enum or items, nullability, nested
    properties and type, in the model's template's order."""
    parts = []
    for name in sorted(props):
        prop = props[name]
        if name in SCHEMA_KEYS or not isinstance(prop, dict):
            continue
        fields = []
        if isinstance(prop.get("description"), str) and prop["description"]:
            fields.append("description:" + Q + prop["description"] + Q)
        types = type_names(prop.get("type"))
        first = types[0] if types else ""
        if first == "STRING" and isinstance(prop.get("enum"), list) and prop["enum"]:
            fields.append("enum:[" + ",".join(Q + go_sprint(v) + Q for v in prop["enum"]) + "]")
        elif first == "ARRAY" and isinstance(prop.get("items"), dict) and prop["items"]:
            fields.append("items:{" + items_spec(prop["items"]) + "}")
        if prop.get("nullable") is True:
            fields.append("nullable:true")
        if first == "OBJECT":
            nested = prop.get("properties")
            # without a map of properties, the template reads the schema's own other keys
            fields.append(
                "properties:{"
                + schema_properties(nested if isinstance(nested, dict) else prop)
                + "}"
            )
            required = [r for r in prop.get("required") or () if isinstance(r, str)]
            if required:
                fields.append(quoted_list("required", required))
        if types:
            fields.append(type_field(types))
        parts.append(name + ":{" + ",".join(fields) + "}")
    return ",".join(parts)


def items_spec(items: dict) -> str:
    """An array's ``items`` schema, every key in order (a type that names nothing still takes
    its place between commas, as in the template)."""
    parts = []
    for key in sorted(items):
        value = items[key]
        if value is None:
            continue
        if key == "properties":
            parts.append(
                "properties:{" + (schema_properties(value) if isinstance(value, dict) else "") + "}"
            )
        elif key == "required":
            names = value if isinstance(value, list) else []
            parts.append(quoted_list("required", [v for v in names if isinstance(v, str)]))
        elif key == "type":
            types = type_names(value)
            parts.append(type_field(types) if types else "")
        else:
            parts.append(key + ":" + notation_value(value, Q, "null", quoted_keys=True))
    return ",".join(parts)


# -- the renderer ---------------------------------------------------------------------------


def call_text(call) -> str:
    name, arguments = call_function(call)
    return CALL_OPEN + "call:" + name + notation_value(arguments, Q, "null") + CALL_CLOSE


def response_name(message: dict, calls: list) -> str:
    """The call a tool result answers: the one its ``tool_call_id`` names, else its
    ``tool_name``, else ``unknown``."""
    name = message.get("tool_name") or "unknown"
    wanted = message.get("tool_call_id")
    if wanted:
        for call in calls:
            if isinstance(call, dict) and call.get("id") == wanted:
                return call_function(call)[0]
    return name


def without_thoughts(text: str) -> str:
    """An assistant message less its ``<|channel>...<channel|>`` blocks (an unclosed one cuts
    the rest), trimmed."""
    kept = []
    while True:
        start = text.find(THINK_OPEN)
        if start < 0:
            kept.append(text)
            break
        kept.append(text[:start])
        end = text.find(THINK_CLOSE, start)
        if end < 0:
            break
        text = text[end + len(THINK_CLOSE) :]
    return strip_go("".join(kept))


def next_role(messages: list[dict], n: int) -> str:
    return next((m.get("role") or "" for m in messages[n + 1 :] if m.get("role") != "tool"), "")


class Gemma4Renderer(Renderer):
    leading_bos = "<bos>"  # Gemma 4's tokenizer adds none: the prompt carries it
    image_tags = True  # the server places images by [img-N] markers
    empty_thought_without_thinking = False

    def render(self, messages, tools, think) -> str:
        thinks = think_bool(think)
        out = ["<bos>"]
        system, rest = "", list(messages)
        has_system = bool(rest) and rest[0].get("role") in ("system", "developer")
        if has_system:
            system, rest = rest[0].get("content") or "", rest[1:]
        if has_system or tools or thinks:
            out.append("<|turn>system\n" + ("<|think|>\n" if thinks else "") + strip_go(system))
            out.extend(declaration(t) for t in tools or ())
            out.append("<turn|>\n")
        last_user = max((n for n, m in enumerate(rest) if m.get("role") == "user"), default=-1)
        offset, last_kind, previous_role = 0, "", ""
        for n, message in enumerate(rest):
            role = message.get("role") or ""
            if role == "tool":
                continue  # answered inside the turn of the call
            last_kind = ""
            turn = "model" if role == "assistant" else role
            if not (turn == "model" and previous_role == "assistant"):
                out.append("<|turn>" + turn + "\n")
            thinking = message.get("thinking") or ""
            if role == "assistant" and thinking and n > last_user:
                out.append(THINK_OPEN + CHANNEL_NAME + thinking + "\n" + THINK_CLOSE)
            calls = message.get("tool_calls") or []
            out.extend(call_text(c) for c in calls)
            if calls:
                last_kind = "tool_call"
            answered = False
            for result in rest[n + 1 :] if calls else ():
                if result.get("role") != "tool":
                    break
                text, offset = self._content(result, offset, trim=False)
                out.append(
                    RESPONSE_OPEN
                    + "response:"
                    + response_name(result, calls)
                    + "{value:"
                    + Q
                    + text
                    + Q
                    + "}"
                    + RESPONSE_CLOSE
                )
                answered, last_kind = True, "tool_response"
            content = message.get("content") or ""
            images = bool(message.get("images"))
            had_content = False
            if turn == "model":
                if content or images:
                    kept = without_thoughts(content)
                    text, offset = self._content({**message, "content": kept}, offset, trim=False)
                    out.append(text)
                    had_content = bool(strip_go(kept)) or images
            else:
                text, offset = self._content(message, offset, trim=True)
                out.append(text)
                had_content = bool(strip_go(content)) or images
            following = next_role(rest, n)
            continues = turn == "model" and following == "assistant" and (not calls or answered)
            if last_kind == "tool_call" and not answered:
                out.append(RESPONSE_OPEN)
            elif not continues and not (answered and not had_content and not following):
                out.append("<turn|>\n")
            previous_role = role
        if last_kind not in ("tool_response", "tool_call"):
            out.append("<|turn>model\n")
            if self.empty_thought_without_thinking and not thinks:
                out.append(THINK_OPEN + CHANNEL_NAME + THINK_CLOSE)
        elif last_kind == "tool_response" and thinks:
            out.append(THINK_OPEN + CHANNEL_NAME)
        return "".join(out)

    def _content(self, message: dict, offset: int, trim: bool) -> tuple[str, int]:
        content = message.get("content") or ""
        if trim:
            content = strip_go(content)
        images = len(message.get("images") or ())
        if images and self.image_tags:
            return image_tags(content, images, offset)
        return content, offset


class Gemma4LargeRenderer(Gemma4Renderer):
    """``gemma4-large``: the 26B and 31B templates close an empty thought when not thinking."""

    empty_thought_without_thinking = True


# -- the parser ------------------------------------------------------------------------------

CONTENT, THINKING, CALL, AFTER_CALL = "content", "thinking", "call", "after_call"


class Gemma4Parser(EventParser):
    has_tool_support = True
    has_thinking_support = True
    answer_after = THINK_CLOSE
    preserved_tokens = (THINK_OPEN, THINK_CLOSE, CALL_OPEN, CALL_CLOSE, RESPONSE_OPEN, Q)

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.tools: list = []
        self.thinks = self.done = self.strip_name = False
        self.state = CONTENT

    def init(self, tools, last_message, think):
        self.tools, self.held, self.count = list(tools or ()), "", 0
        self.thinks = self.has_thinking_support and think_bool(think)
        # after a tool's result the prompt has opened the thought (its name included)
        resumes = self.thinks and bool(last_message) and last_message.get("role") == "tool"
        self.state, self.strip_name = (THINKING if resumes else CONTENT), False
        return tools

    def add(self, text: str, done: bool):
        self.done = done
        parsed = super().add(text, done)
        if not self.thinks:  # a thought the model had anyway is not shown
            parsed.thinking = ""
        return parsed

    def _eat(self, events: list) -> bool:
        if not self.held:
            return False
        step = {
            CONTENT: self._content,
            THINKING: self._thinking,
            CALL: self._call,
            AFTER_CALL: self._after_call,
        }
        return step[self.state](events)

    def _content(self, events: list) -> bool:
        held = self.held
        for tag, state in ((THINK_OPEN, THINKING), (CALL_OPEN, CALL)):
            if tag in held:
                before, self.held = held.split(tag, 1)
                self.state, self.strip_name = state, state == THINKING
                if rstrip_go(before):
                    events.append(("content", rstrip_go(before)))
                return True
        keep = 0 if self.done else max(overlap(held, THINK_OPEN), overlap(held, CALL_OPEN))
        if keep:
            keep += trailing_space(held[: len(held) - keep])
        if held[: len(held) - keep]:
            events.append(("content", held[: len(held) - keep]))
        self.held = held[len(held) - keep :]
        return False

    def _thinking(self, events: list) -> bool:
        if self.strip_name:  # the channel's name, "thought", may come in pieces
            if self.held.startswith(CHANNEL_NAME):
                self.held = self.held[len(CHANNEL_NAME) :]
                self.strip_name = False
            elif not self.done and CHANNEL_NAME.startswith(self.held):
                return False
            else:
                self.strip_name = False
        if self.done and THINK_CLOSE not in self.held:
            if self.held:
                events.append(("thinking", self.held))
            self.held = ""
            return False
        return self._think_until(events, THINK_CLOSE, CONTENT)

    def _call(self, events: list) -> bool:
        if CALL_CLOSE in self.held:
            inside, rest = self.held.split(CALL_CLOSE, 1)
            self.held, self.state = lstrip_go(rest), AFTER_CALL
            self._emit_call(events, inside)
            return True
        if self.done:  # the model stopped before closing its call
            inside, self.held, self.state = self.held, "", CONTENT
            self._emit_call(events, inside)
        return False

    def _emit_call(self, events: list, text: str) -> None:
        call = parse_call(text, self.tools)
        if call is None:
            log.warning("a gemma4 tool call that does not parse was dropped: %r", text[:200])
        else:
            events.append(("call", call))

    def _after_call(self, events: list) -> bool:
        """Gemma 4 sometimes repeats ``<tool_call|>`` or opens ``<|tool_response>`` after a
        call: those are dropped, not shown as the answer."""
        held = lstrip_go(self.held)
        while True:
            tag = next((t for t in (CALL_CLOSE, RESPONSE_OPEN) if held.startswith(t)), None)
            if tag is None:
                break
            held = lstrip_go(held[len(tag) :])
        self.held = held
        if not held:
            return False
        if CALL_CLOSE.startswith(held) or RESPONSE_OPEN.startswith(held):
            if self.done:
                self.held, self.state = "", CONTENT
            return False
        self.state = CONTENT
        return True


class Gemma4NoThinkingParser(Gemma4Parser):
    """``gemma4-no-thinking``: Gemma 4's reading for a model that does not think."""

    has_thinking_support = False
