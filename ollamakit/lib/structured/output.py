"""A model's output read back into what the API returns: ``thinking``, ``content`` and
``tool_calls``. The thinking parser runs first (thoughts may mention tools); the tool-call
parser reads the answer."""

from __future__ import annotations

from dataclasses import dataclass, field

from .thinking import ThinkingParser
from .toolcalls import ToolCallParser

DEFAULT_THINKING_TAGS = ("<think>", "</think>")


@dataclass
class Parsed:
    content: str = ""
    thinking: str = ""
    tool_calls: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.content or self.thinking or self.tool_calls)


def template_tags(go_template, jinja: str | None) -> tuple[tuple[str, str], str]:
    """(thinking tags, tool-call tag) of the template that renders the prompt: the Go template's
    own, or for a Jinja template the common ``<think>`` and ``<tool_call>`` conventions."""
    if go_template is not None:
        opening, closing = go_template.thinking_tags()
        return (opening, closing), go_template.tool_call_tag() or "{"
    source = jinja or ""
    return DEFAULT_THINKING_TAGS, ("<tool_call>" if "<tool_call>" in source else "{")


class OutputParser:
    def __init__(
        self, *, thinking_tags=None, tool_tag: str | None = None, tool_names=(), prompt: str = ""
    ):
        """``thinking_tags``: split thinking out (None: the model is not thinking). ``tool_tag``:
        read tool calls (None: no tools were offered). ``prompt``: the rendered prompt, whose
        end may already open the thinking."""
        self.thinking = None
        if thinking_tags and all(thinking_tags):
            opening, closing = thinking_tags
            self.thinking = ThinkingParser(
                opening, closing, inside=prompt.rstrip().endswith(opening)
            )
        self.tools = ToolCallParser(tool_tag, tool_names) if tool_tag is not None else None

    @classmethod
    def build(
        cls, go_template, jinja, *, tools=None, think=None, prompt: str = ""
    ) -> OutputParser | None:
        """The parser a chat or generate request needs, or None when output passes as is."""
        if not tools and not think:
            return None
        thinking_tags, tool_tag = template_tags(go_template, jinja)
        names = [t.get("function", {}).get("name") for t in tools or () if isinstance(t, dict)]
        return cls(
            thinking_tags=thinking_tags if think else None,
            tool_tag=tool_tag if tools else None,
            tool_names=[n for n in names if isinstance(n, str)],
            prompt=prompt,
        )

    @property
    def preserved_tokens(self) -> tuple[str, ...]:
        """Texts that must reach this parser although they may be control tokens (the output
        otherwise drops those): the tool-call tag's, when tools were offered."""
        return self.tools.preserved_tokens if self.tools else ()

    def feed(self, text: str) -> Parsed:
        thinking, answer = self.thinking.feed(text) if self.thinking else ("", text)
        return self._answer(thinking, answer)

    def flush(self) -> Parsed:
        thinking, answer = self.thinking.flush() if self.thinking else ("", "")
        parsed = self._answer(thinking, answer)
        if self.tools:
            content, calls = self.tools.flush()
            parsed.content += content
            parsed.tool_calls.extend(calls)
        return parsed

    def _answer(self, thinking: str, answer: str) -> Parsed:
        if self.tools and answer:
            content, calls = self.tools.feed(answer)
            return Parsed(content, thinking, calls)
        return Parsed(answer, thinking, [])
