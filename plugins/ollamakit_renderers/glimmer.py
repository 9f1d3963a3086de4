"""``glimmer``: Glimmer's prompt (``<|start|>header<|message|>body<|eot|>`` messages, a system
message with the knowledge cutoff, the date, the reasoning strength, the tools as JSON and the
valid recipients; thinking as messages ``to=self``, calls as messages to the tool holding an
``<atem:function_calls>`` block) and the reading of those messages back, with the recoveries
Ollama makes when the model fumbles a call's header or invoke name."""

from __future__ import annotations

import datetime
import logging
import re

from ollamakit.interfaces import Parser, Renderer
from ollamakit.lib.structured import Parsed

from .common import (
    call_function,
    function_of,
    go_marshal,
    go_sprint,
    image_tags,
    overlap,
    parameters_json,
    properties_of,
    property_types,
    strip_go,
    think_bool,
    tool_call,
    with_spaces,
)
from .qwen3coder import typed_value

log = logging.getLogger(__name__)

BOS, START, MESSAGE = "<|begin_of_text|>", "<|start|>", "<|message|>"
END_MESSAGE, END_TURN = "<|eom|>", "<|eot|>"
DEFAULT_SYSTEM = "You are a helpful AI assistant."
KNOWLEDGE_CUTOFF = "2026-01-04"
CALLS_OPEN, CALLS_CLOSE = "<atem:function_calls>", "</atem:function_calls>"
INVOKE_OPEN, INVOKE_CLOSE = '<atem:invoke name="', "</atem:invoke>"
PARAM_OPEN, PARAM_CLOSE = '<atem:parameter name="', "</atem:parameter>"

TOOLS_PREFIX = """In this environment you have access to a set of tools you can use to answer the user's question.

You can invoke a function by writing a "<atem:function_calls>" block like the following:
<atem:function_calls>
<atem:invoke name="$FUNCTION_NAME">
<atem:parameter name="$PARAMETER_NAME">$PARAMETER_VALUE</atem:parameter>
...
</atem:invoke>
</atem:function_calls>

String and scalar parameters should be specified as is, while lists and objects should use JSON format. Note that spaces for string values are not stripped. The output is not expected to be valid XML and is parsed with regular expressions.
Here are the functions available in JSONSchema format:
// Tool metadata
"""

TOOLS_SUFFIX = """

Here's an example of how to call a function in the tool set:
(If the tool namespace is not specified, invoke the function directly as `example_function_name` rather than `example_tool_name.example_function_name`)

to=example_tool_name.example_function_name

<atem:function_calls>
<atem:invoke name="example_tool_name.example_function_name">
<atem:parameter name="example_parameter_1">value_1</atem:parameter>
<atem:parameter name="example_parameter_2">This is the value for the second parameter
that can span
"multiple" lines
</atem:parameter>
</atem:invoke>
</atem:function_calls>"""

# encoding/json escapes <, > and & (and pairs of backslashes stay as they are)
HTML_ESCAPE = re.compile(r"\\\\|\\u00(3c|3e|26)")
REASONING_WORDS = (
    ("Reasoning effort", "Reasoning strength"),
    ("Reasoning Effort", "Reasoning Strength"),
    ("reasoning effort", "reasoning strength"),
    ("REASONING EFFORT", "REASONING STRENGTH"),
)


def template_json(compact: str) -> str:
    """Compact JSON (encoding/json's) as the model's template writes it (Transformers'
    ``tojson``): no HTML escapes, a space after each ``:`` and ``,``."""
    text = HTML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1) else m.group(), compact)
    return with_spaces(text)


def reasoning_strength(think) -> str:
    if think is None:
        return "high"
    if not think_bool(think):
        return "none"
    return think if isinstance(think, str) else "high"


def namespaces(tools) -> list[str]:
    """The first dot-component of each tool's name, in order, once each."""
    out: list[str] = []
    for tool in tools or ():
        namespace = (function_of(tool).get("name") or "").split(".", 1)[0]
        if namespace not in out:
            out.append(namespace)
    return out


def tool_definitions(tools) -> str:
    out = [TOOLS_PREFIX]
    out.extend(
        '{"name": ' + template_json(go_marshal(ns)) + ', "description": ""}\n'
        for ns in namespaces(tools)
    )
    out.append("// Function schemas")
    for tool in tools:
        function = function_of(tool)
        out.append(
            '\n{"name": '
            + template_json(go_marshal(function.get("name") or ""))
            + ', "description": '
            + template_json(go_marshal(function.get("description") or ""))
            + ', "parameters": '
            + template_json(parameters_json(function.get("parameters")))
            + "}"
        )
    out.append(TOOLS_SUFFIX)
    return "".join(out)


def system_message(content: str, tools, strength: str, date: str | None) -> str:
    """The system message; ``date`` for the default one (which also states the cutoff)."""
    if date is None:
        for old, new in REASONING_WORDS:
            content = content.replace(old, new)
    out = START + "system" + MESSAGE + content
    if date is not None:
        out += f"\nKnowledge cutoff: {KNOWLEDGE_CUTOFF}.\nCurrent date: {date}."
    if date is not None or "reasoning strength" not in content.lower():
        out += f"\n\nReasoning strength: {strength}."
    if tools:
        out += "\n\n" + tool_definitions(tools)
    recipients = "".join(f', "{ns}.*"' for ns in namespaces(tools))
    return out + '\n\n# Valid recipients: "self"' + recipients + ', "user".' + END_TURN


def result_name(message: dict, messages: list[dict]) -> str:
    """The tool a result answers: its ``tool_name``, else the call its id names (else the id)."""
    if message.get("tool_name"):
        return message["tool_name"]
    wanted = message.get("tool_call_id") or ""
    name = wanted
    for other in messages if wanted else ():
        for call in other.get("tool_calls") or ():
            if isinstance(call, dict) and call.get("id") == wanted:
                name = call_function(call)[0]
    return name


def atem_call(call) -> str:
    name, arguments = call_function(call)
    out = CALLS_OPEN + "\n" + INVOKE_OPEN + name + '">\n'
    for key, value in arguments.items():
        if value is None:
            text = "null"
        elif isinstance(value, (list, dict)):
            text = template_json(go_marshal(value))
        else:
            text = go_sprint(value)
        out += PARAM_OPEN + key + '">' + text + PARAM_CLOSE + "\n"
    return out + INVOKE_CLOSE + "\n" + CALLS_CLOSE


class GlimmerRenderer(Renderer):
    leading_bos = BOS
    image_tags = True  # the server places images by [img-N] markers
    current_date: str | None = None  # today, unless set (tests fix it)

    def render(self, messages, tools, think) -> str:
        strength = reasoning_strength(think)
        out = [BOS]
        if not any(m.get("role") == "system" for m in messages):
            date = self.current_date or datetime.date.today().isoformat()
            out.append(system_message(DEFAULT_SYSTEM, tools, strength, date))
        offset = 0
        for n, message in enumerate(messages):
            role = message.get("role")
            content, offset = self._content(message, offset)
            same_next = n + 1 < len(messages) and messages[n + 1].get("role") == role
            end = END_MESSAGE if same_next else END_TURN
            if role == "system":
                out.append(system_message(content, tools, strength, None))
            elif role == "user":
                out.append(START + "user" + MESSAGE + content + END_TURN)
            elif role == "tool":
                name = result_name(message, messages)
                out.append(
                    f'{START}tool {name}{MESSAGE}<tool_output name="{name}">\n{content}\n'
                    f"</tool_output>{END_TURN}"
                )
            elif role == "assistant":
                out.append(self._assistant(message, content, end))
        return "".join(out) + START + "assistant"

    @staticmethod
    def _assistant(message: dict, content: str, end: str) -> str:
        thinking, calls = message.get("thinking") or "", message.get("tool_calls") or []
        out = START + "assistant to=self" + MESSAGE + thinking + END_MESSAGE if thinking else ""
        for n, call in enumerate(calls):
            out += START + "assistant to=" + call_function(call)[0] + MESSAGE + atem_call(call)
            out += end if n == len(calls) - 1 else END_MESSAGE
        # a last message of thought alone is the model's unfinished turn: it goes on from there
        if not calls and (content or not thinking):
            out += START + "assistant to=user" + MESSAGE + content + END_TURN
        return out

    def _content(self, message: dict, offset: int) -> tuple[str, int]:
        content, images = message.get("content") or "", len(message.get("images") or ())
        if self.image_tags:
            return image_tags(content, images, offset)
        return "<|patch|>" * images + content, offset + images


# -- reading the model's messages ----------------------------------------------------------------

ASSISTANT = START + "assistant"
HEADER, CONTENT, THINKING, TOOL = "header", "content", "thinking", "tool"
INVALID, PENDING, VALID = "invalid", "pending", "valid"


def tools_by_name(tools) -> dict:
    out = {}
    for tool in tools or ():
        name = strip_go(function_of(tool).get("name") or "")
        if name:
            out[name] = tool
    return out


def resolve(tools: dict, name: str) -> str | None:
    """The declared tool a recipient or invoke name means: itself, or ``fn`` for ``ns.fn`` when
    ``ns`` is ``fn``'s own namespace (the prompt offers each namespace as ``ns.*``)."""
    if name in tools:
        return name
    namespace, dot, function = name.partition(".")
    if dot and function in tools and namespace == function.split(".", 1)[0]:
        return function
    return None


def cut_invoke_name(text: str) -> tuple[str, str] | None:
    """An invoke's name and what follows its ``">``. A ``<|message|>`` the model wrote into the
    name (as in its headers) is dropped; one right before the parameters ends the name."""
    name, rest, fumbled = "", text, False
    while True:
        end, tag = rest.find('">'), rest.find(MESSAGE)
        if tag >= 0 and (end < 0 or tag < end):
            fumbled = True
            name, rest = name + rest[:tag], rest[tag + len(MESSAGE) :]
            if rest.startswith(PARAM_OPEN):
                break
            continue
        if end < 0:
            return None
        name, rest = name + rest[:end], rest[end + 2 :]
        break
    if fumbled:
        log.warning("glimmer: a message tag in a call's invoke name was dropped (%r)", name[:100])
    return name, rest


def invoke_name(body: str) -> str:
    inner = strip_go(body[len(CALLS_OPEN) : len(body) - len(CALLS_CLOSE)])
    if not inner.startswith(INVOKE_OPEN):
        return ""
    cut = cut_invoke_name(inner[len(INVOKE_OPEN) :])
    return cut[0] if cut else ""


def parse_atem(body: str, tool) -> tuple[str, dict]:
    """The invoke name and arguments of an ``<atem:function_calls>`` block, each value typed by
    the tool's declaration."""
    body = strip_go(body)
    if not (body.startswith(CALLS_OPEN) and body.endswith(CALLS_CLOSE)):
        raise ValueError("missing ATEM function_calls wrapper")
    invoke = strip_go(body[len(CALLS_OPEN) : len(body) - len(CALLS_CLOSE)])
    if not (invoke.startswith(INVOKE_OPEN) and invoke.endswith(INVOKE_CLOSE)):
        raise ValueError("missing ATEM invoke wrapper")
    cut = cut_invoke_name(invoke[len(INVOKE_OPEN) :])
    if cut is None or len(cut[1]) < len(INVOKE_CLOSE):
        raise ValueError("malformed ATEM invoke name")
    name, rest = cut
    params = rest[: len(rest) - len(INVOKE_CLOSE)].removeprefix("\n").removesuffix("\n")
    props = properties_of(tool)
    arguments = {}
    while params:
        if not params.startswith(PARAM_OPEN):
            raise ValueError("malformed ATEM parameter")
        params = params[len(PARAM_OPEN) :]
        end = params.find('">')
        if end < 0:
            raise ValueError("malformed ATEM parameter name")
        key, params = params[:end], params[end + 2 :]
        end = params.find(PARAM_CLOSE)
        if end < 0:
            raise ValueError(f'unterminated ATEM parameter "{key}"')
        value, params = params[:end], params[end + len(PARAM_CLOSE) :].removeprefix("\n")
        prop = props.get(key)
        branches = prop.get("anyOf") if isinstance(prop, dict) else None
        types = (
            [t for b in branches for t in property_types(b)] if branches else property_types(prop)
        )
        arguments[key] = typed_value(value, types)
    return name, arguments


def terminator(text: str) -> tuple[int, int]:
    """Where the first ``<|eom|>`` or ``<|eot|>`` is, and its length; (-1, 0) for none."""
    found = [(text.find(t), len(t)) for t in (END_MESSAGE, END_TURN) if t in text]
    return min(found) if found else (-1, 0)


class GlimmerParser(Parser):
    has_tool_support = True
    has_thinking_support = True
    preserved_tokens = (START, MESSAGE, END_MESSAGE, END_TURN)

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.init(None, None, None)

    def init(self, tools, last_message, think):
        self.held, self.state, self.recipient = "", HEADER, ""
        self.tools = tools_by_name(tools)
        self.count = 0
        self.shows_thinking = think is None or think_bool(think)
        self.streamed = False  # some of this message went out as content
        return tools

    def add(self, text: str, done: bool) -> Parsed:
        self.held += text
        content, thinking, calls = [], [], []
        while True:
            if self.state == HEADER:
                progress, fallback = self._header(done)
                content.append(fallback)
                if not progress:
                    break
                continue
            progress, body, complete = self._body(done)
            if self.state == CONTENT:
                call = self._content_call(body, complete)
                if call is not None:
                    calls.append(call)
                elif body:
                    content.append(body)
                    self.streamed = True
            elif self.state == THINKING:
                if self.shows_thinking:
                    thinking.append(body)
            elif complete:
                calls.append(self._tool_call(body))
            if complete:
                self.state, self.recipient, self.streamed = HEADER, "", False
            if not progress:
                break
        return Parsed("".join(content), "".join(thinking), calls)

    def _call(self, name: str, arguments: dict) -> dict:
        self.count += 1
        return tool_call(name, arguments, self.count - 1)

    def _header(self, done: bool) -> tuple[bool, str]:
        """A message's header (the prompt opened the first one): up to ``<|message|>``; text
        with no header at the end is content."""
        held = self.held
        if held.startswith(ASSISTANT):
            held = self.held = held[len(ASSISTANT) :]
        elif ASSISTANT.startswith(held) and held.startswith("<") and not done:
            return False, ""
        at = held.find(MESSAGE)
        if at < 0:
            if not done:
                return False, ""
            self.held = ""
            return bool(held), held
        header, self.held = strip_go(held[:at]), held[at + len(MESSAGE) :]
        self.recipient = strip_go(header.removeprefix("to="))
        if self.recipient == "self":
            self.state = THINKING
        else:
            self.state = TOOL if resolve(self.tools, self.recipient) else CONTENT
        return True, ""

    def _body(self, done: bool) -> tuple[bool, str, bool]:
        """(progress, the body text settled, whether the message is complete)."""
        held = self.held
        hold = self.state == TOOL or self._holds(held)
        after_calls = 0  # a call's values may hold text that looks like a message's end
        if hold:
            close = held.find(CALLS_CLOSE)
            after_calls = close + len(CALLS_CLOSE) if close >= 0 else len(held)
        end, length = terminator(held[after_calls:])
        if end >= 0:
            end += after_calls
        implicit, waits = self._next_header(held, after_calls, done)
        if implicit >= 0 and not waits and (end < 0 or implicit < end):
            self.held = held[implicit:]
            return True, held[:implicit], True
        if end >= 0:
            self.held = held[end + length :]
            return True, held[:end], True
        if done:
            self.held = ""
            return bool(held) or self.state == TOOL, held, True
        if hold:
            return False, "", False
        if waits:
            self.held = held[implicit:]
            return bool(held[:implicit]), held[:implicit], False
        keep = max(overlap(held, END_MESSAGE), overlap(held, END_TURN))
        if keep == len(held):
            return False, "", False
        self.held = held[len(held) - keep :]
        return bool(held[: len(held) - keep]), held[: len(held) - keep], False

    def _next_header(self, text: str, search: int, done: bool) -> tuple[int, bool]:
        """Where a new assistant message starts without the last one ending (and whether that
        is still unsure): -1 for none."""
        while (at := text.find(START, search)) >= 0:
            status = self._header_status(text[at:], done)
            if status != INVALID:
                return at, status == PENDING
            search = at + len(START)
        if done:
            return -1, False
        keep = overlap(text[search:], ASSISTANT)
        return (len(text) - keep, True) if keep else (-1, False)

    def _header_status(self, text: str, done: bool) -> str:
        """Whether ``text`` opens an assistant message: ``<|start|>assistant``, an optional
        `` to=RECIPIENT`` naming self, the user or a tool, then ``<|message|>``."""
        if len(text) < len(ASSISTANT):
            return PENDING if not done and ASSISTANT.startswith(text) else INVALID
        if not text.startswith(ASSISTANT):
            return INVALID
        rest = text[len(ASSISTANT) :]
        if rest.startswith(MESSAGE):
            return VALID
        if not rest or (not done and MESSAGE.startswith(rest)):
            return INVALID if done else PENDING
        if len(rest) < len(" to="):
            return PENDING if not done and " to=".startswith(rest) else INVALID
        if not rest.startswith(" to="):
            return INVALID
        recipient = rest[len(" to=") :]
        at = recipient.find(MESSAGE)
        if at >= 0:
            name = recipient[:at]
            return VALID if name in ("self", "user") or name in self.tools else INVALID
        if done or any(ch in recipient for ch in " \t\r\n"):
            return INVALID
        lt = recipient.find("<")
        return PENDING if lt < 0 or MESSAGE.startswith(recipient[lt:]) else INVALID

    def _holds(self, held: str) -> bool:
        """Whether a message to someone other than a tool may still be a call with a fumbled
        header: then it is held back until it ends."""
        if self.state != CONTENT or self.streamed or not self.tools:
            return False
        trimmed = held.lstrip(" \t\r\n")
        return CALLS_OPEN.startswith(trimmed) or trimmed.startswith(CALLS_OPEN)

    def _content_call(self, body: str, complete: bool) -> dict | None:
        """A complete message that is nothing but a well-formed call of a declared tool is that
        call, whoever its header named."""
        if not complete or self.streamed or not self.tools:
            return None
        body = strip_go(body)
        if not (body.startswith(CALLS_OPEN) and body.endswith(CALLS_CLOSE)):
            return None
        name = resolve(self.tools, invoke_name(body))
        if name is None:
            return None
        try:
            _, arguments = parse_atem(body, self.tools[name])
        except ValueError:
            return None
        return self._call(name, arguments)

    def _tool_call(self, body: str) -> dict:
        if not self.recipient:
            raise ValueError("empty Glimmer function name")
        name = resolve(self.tools, self.recipient)
        if name is None:
            raise ValueError(f'undeclared Glimmer function "{self.recipient}"')
        try:
            invoked, arguments = parse_atem(body, self.tools[name])
        except ValueError as exc:
            raise ValueError(f"parse Glimmer call to {self.recipient}: {exc}") from None
        if resolve(self.tools, invoked) != name:
            raise ValueError(
                f'Glimmer recipient "{self.recipient}" does not match ATEM invoke "{invoked}"'
            )
        return self._call(name, arguments)
