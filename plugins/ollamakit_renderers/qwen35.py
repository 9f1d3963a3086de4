"""``qwen3.5``, ``ornith`` and ``qwen3.8``: the Qwen3.5 family's ChatML prompt (tools as spaced
JSON, calls in Qwen3-Coder's XML format, assistant turns with their ``<think>`` block), Qwen3.8's
reasoning-effort instructions and single system turn, and the parser for their output (thinking,
then Qwen3-Coder's calls)."""

from __future__ import annotations

from ollamakit.interfaces import Renderer
from ollamakit.lib.structured import Parsed

from .common import (
    EventParser,
    call_function,
    image_tags,
    lstrip_go,
    overlap,
    rstrip_go,
    strip_go,
    think_bool,
    tool_json,
    trailing_space,
    with_spaces,
)
from .qwen3coder import TOOL_INSTRUCTIONS, Qwen3CoderParser, argument_text

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
THINK_OPEN, THINK_CLOSE, TOOL_OPEN, TOOL_CLOSE = (
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
)
VISION = "<|vision_start|><|image_pad|><|vision_end|>"
XHIGH = (
    "Reasoning effort is set to xhigh. Please think carefully through the task, validate key assumptions, "
    "consider plausible alternatives, and prioritize correctness, consistency, and clarity in the final answer."
)
LOW = (
    "Reasoning effort is set to low. Keep your thinking brief and focused, moving directly to the conclusion "
    "without unnecessary elaboration."
)
TOOLS_INTRO = "# Tools\n\nYou have access to the following functions:\n\n<tools>"
TOOLS_OUTRO = "\n</tools>" + TOOL_INSTRUCTIONS


def split_reasoning(
    content: str, thinking: str, keep_thinking: bool, from_tags: bool
) -> tuple[str, str]:
    """(reasoning, answer) of an assistant turn: its ``thinking`` field, or (``from_tags``) a
    ``<think>`` block written into its content."""
    if keep_thinking and thinking:
        return strip_go(thinking), content
    if not from_tags:
        return "", content
    reasoning = ""
    at = content.find(THINK_CLOSE)
    if at >= 0:
        before = content[:at]
        opened = before.rfind(THINK_OPEN)
        reasoning = before[opened + len(THINK_OPEN) :] if opened >= 0 else before
        content = content[at + len(THINK_CLOSE) :].lstrip("\n")
    return strip_go(reasoning), content


def is_tool_response(text: str) -> bool:
    return text.startswith("<tool_response>") and text.endswith("</tool_response>")


class Qwen35Renderer(Renderer):
    is_thinking = True
    always_think_block = False
    empty_think_when_not_thinking = True
    qwen38 = False
    image_tags = True  # the server places images by [img-N] markers

    def content(self, message: dict, offset: int) -> tuple[str, int]:
        images = len(message.get("images") or ())
        if self.image_tags:
            return image_tags(message.get("content") or "", images, offset)
        return VISION * images + (message.get("content") or ""), offset

    def reasoning_instructions(self, think) -> str:
        if not self.qwen38:
            return ""
        if think is None:
            return XHIGH
        if not think_bool(think):
            return ""
        level = think if isinstance(think, str) else "medium"  # true is the medium level
        return {"low": LOW, "medium": ""}.get(level, XHIGH)

    def normalize(self, messages: list[dict]) -> list[dict]:
        """Qwen3.8 takes one leading system turn: instructions (system and developer messages)
        are joined into it, in order; the rest keeps its order."""
        instructions = [m for m in messages if m.get("role") in ("system", "developer")]
        for message in instructions:
            if message.get("images"):
                raise ValueError(f"{message['role']} message cannot contain images")
        if not instructions or (len(instructions) == 1 and messages[0].get("role") == "system"):
            return messages
        joined = "\n\n".join(
            strip_go(m.get("content") or "")
            for m in instructions
            if strip_go(m.get("content") or "")
        )
        return [{"role": "system", "content": joined}] + [
            m for m in messages if m.get("role") not in ("system", "developer")
        ]

    def validate(self, messages: list[dict]) -> None:
        if not messages:
            raise ValueError("no messages provided")
        if messages[0].get("role") == "system" and messages[0].get("images"):
            raise ValueError("system message cannot contain images")
        if not any(
            m.get("role") == "user" and not is_tool_response(strip_go(self.content(m, 0)[0]))
            for m in messages
        ):
            raise ValueError("no user query found in messages")

    def render(self, messages, tools, think) -> str:
        if self.qwen38:
            messages = self.normalize(messages)
            self.validate(messages)
        thinking = self.is_thinking if think is None else think_bool(think)
        instructions = self.reasoning_instructions(think)
        first_system = bool(messages) and messages[0].get("role") == "system"
        out = []
        if tools:
            out.append(
                IM_START
                + "system\n"
                + (instructions + "\n\n" if instructions else "")
                + TOOLS_INTRO
            )
            out.append("".join("\n" + with_spaces(tool_json(t)) for t in tools) + TOOLS_OUTRO)
            if first_system:
                system = strip_go(self.content(messages[0], 0)[0])
                if system:
                    out.append("\n\n" + system)
            out.append(IM_END + "\n")
        elif first_system:
            system = strip_go(self.content(messages[0], 0)[0])
            if not self.qwen38 or system or instructions:
                out.append(IM_START + "system\n")
                if instructions:
                    out.append(instructions + ("\n\n" if system else ""))
                out.append(system + IM_END + "\n")
        elif instructions:
            out.append(IM_START + "system\n" + instructions + IM_END + "\n")
        last_query = len(messages) - 1
        for n in range(len(messages) - 1, -1, -1):
            if messages[n].get("role") == "user" and not is_tool_response(
                strip_go(self.content(messages[n], 0)[0])
            ):
                last_query = n
                break
        offset = 0
        for n, message in enumerate(messages):
            content, offset = self.content(message, offset)
            content = strip_go(content)
            role = message.get("role")
            last = n == len(messages) - 1
            prefill = last and role == "assistant"
            if role == "user" or (role == "system" and n != 0):
                out.append(IM_START + role + "\n" + content + IM_END + "\n")
            elif role == "assistant":
                think_block = self.always_think_block or (thinking and n > last_query)
                reasoning, content = split_reasoning(
                    content, message.get("thinking") or "", think_block, not self.qwen38
                )
                if think_block:
                    out.append(
                        IM_START + "assistant\n<think>\n" + reasoning + "\n</think>\n\n" + content
                    )
                else:
                    out.append(IM_START + "assistant\n" + content)
                for m, call in enumerate(message.get("tool_calls") or ()):
                    if m > 0:
                        out.append("\n")
                    elif strip_go(content):
                        out.append("\n\n")
                    name, arguments = call_function(call)
                    out.append(TOOL_OPEN + "\n<function=" + name + ">\n")
                    for key, value in arguments.items():
                        out.append(
                            "<parameter=" + key + ">\n" + argument_text(value) + "\n</parameter>\n"
                        )
                    out.append("</function>\n" + TOOL_CLOSE)
                if not prefill:
                    out.append(IM_END + "\n")
            elif role == "tool":
                if n == 0 or messages[n - 1].get("role") != "tool":
                    out.append(IM_START + "user")
                out.append("\n<tool_response>\n" + content + "\n</tool_response>")
                if last or messages[n + 1].get("role") != "tool":
                    out.append(IM_END + "\n")
            elif self.qwen38 and role != "system":
                out.append(IM_START + (role or "") + "\n" + content + IM_END + "\n")
            if last and not prefill:
                out.append(IM_START + "assistant\n")
                if thinking:
                    out.append("<think>\n")
                elif self.empty_think_when_not_thinking:
                    out.append("<think>\n\n</think>\n\n")
        return "".join(out)


class OrnithRenderer(Qwen35Renderer):
    always_think_block = True


class Qwen38Renderer(Qwen35Renderer):
    always_think_block = True
    qwen38 = True


THINKING, AFTER_THINKING, CONTENT = "thinking", "after-thinking", "content"


class Qwen35Parser(EventParser):
    has_tool_support = True
    has_thinking_support = True
    answer_after = THINK_CLOSE
    preserved_tokens = (THINK_OPEN, THINK_CLOSE, TOOL_OPEN, TOOL_CLOSE)

    def __init__(self, kernel=None):
        super().__init__(kernel)
        self.tools = Qwen3CoderParser(kernel)
        self.held, self.state = "", CONTENT
        self.may_open = self.trim_start = False

    def init(self, tools, last_message, think):
        self.held = ""
        self.tools = Qwen3CoderParser(self.kernel)
        self.tools.init(tools, None, None)
        thinking = True if think is None else think_bool(think)
        prefilled = bool(
            last_message and last_message.get("role") == "assistant" and last_message.get("content")
        )
        self.state = THINKING if thinking and not prefilled else CONTENT
        self.may_open, self.trim_start = self.state == THINKING, False
        return tools

    def add(self, text: str, done: bool) -> Parsed:
        self.held += text
        content, thinking, calls = [], [], []
        for kind, value in self.events():
            if kind == "thinking":
                thinking.append(value)
            else:  # the answer goes through Qwen3-Coder's call parser
                parsed = self.tools.add(value, done)
                content.append(parsed.content)
                calls.extend(parsed.tool_calls)
        return Parsed("".join(content), "".join(thinking), calls)

    def _eat(self, events: list) -> bool:
        if self.state == AFTER_THINKING:
            self.held = lstrip_go(self.held)
            if not self.held:
                return False
            self.state = CONTENT
            return True
        if self.state == CONTENT:
            if self.held:
                events.append(("content", self.held))
                self.held = ""
            return False
        held = self.held
        if self.may_open:  # the model may open its thinking itself
            trimmed = lstrip_go(held)
            if trimmed.startswith(THINK_OPEN):
                self.held = lstrip_go(trimmed[len(THINK_OPEN) :])
                self.may_open, self.trim_start = False, not self.held
                return bool(self.held)
            if THINK_OPEN.startswith(trimmed):
                return False
            self.may_open = False
        if self.trim_start:
            held = self.held = lstrip_go(held)
            if not held:
                return False
            self.trim_start = False
        if THINK_CLOSE in held:
            before, after = held.split(THINK_CLOSE, 1)
            self.held = lstrip_go(after)
            if rstrip_go(before):
                events.append(("thinking", rstrip_go(before)))
            self.state = CONTENT if self.held else AFTER_THINKING
            return True
        keep = max(overlap(held, THINK_CLOSE), overlap(held, TOOL_OPEN))
        if keep:
            before = held[: len(held) - keep]
            end = len(before) - trailing_space(before)
            if end:
                events.append(("thinking", held[:end]))
            self.held = held[end:]
            return False
        if TOOL_OPEN in held:  # a call while thinking ends the thinking
            before, after = held.split(TOOL_OPEN, 1)
            self.held = rstrip_go(before) + THINK_CLOSE + TOOL_OPEN + lstrip_go(after)
            return True
        end = len(held) - trailing_space(held)
        if end:
            events.append(("thinking", held[:end]))
        self.held = held[end:]
        return False
