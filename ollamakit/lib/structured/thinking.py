"""Splitting a thinking model's output into its thinking and its answer, by the tags its
template wraps thoughts in (``<think>`` … ``</think>``).

Text arrives in pieces, so a tag can be cut anywhere: the part that might be the start of a
tag is held back until the next piece says what it is.
"""

from __future__ import annotations

LOOKING, THINKING, ANSWERING = "looking", "thinking", "answering"


def partial_suffix(text: str, tag: str) -> int:
    """The length of the longest end of ``text`` that is a proper beginning of ``tag``."""
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:length]):
            return length
    return 0


class ThinkingParser:
    def __init__(self, opening: str, closing: str, *, inside: bool = False):
        """``inside``: the prompt already ends with the opening tag, so the output starts in
        the middle of the thinking."""
        self.opening, self.closing = opening, closing
        self.state = THINKING if inside else LOOKING
        self._held = ""

    def feed(self, text: str) -> tuple[str, str]:
        """(thinking, answer) text that is settled now."""
        self._held += text
        thinking = answer = ""
        if self.state == LOOKING:
            stripped = self._held.lstrip()
            if stripped.startswith(self.opening):
                self.state, self._held = THINKING, stripped[len(self.opening) :]
            elif not stripped or self.opening.startswith(stripped):
                return "", ""  # could still become the opening tag
            else:
                self.state = ANSWERING  # the model answered without thinking
        if self.state == THINKING:
            at = self._held.find(self.closing)
            if at < 0:
                keep = partial_suffix(self._held, self.closing)
                thinking, self._held = (
                    self._held[: len(self._held) - keep],
                    self._held[len(self._held) - keep :],
                )
                return thinking, ""
            thinking, self._held = self._held[:at], self._held[at + len(self.closing) :].lstrip()
            self.state = ANSWERING if self._held else "after"
            if not self._held:
                return thinking, ""
        if self.state == "after":
            self._held = self._held.lstrip()  # whitespace right after the closing tag is dropped
            if not self._held:
                return thinking, ""
            self.state = ANSWERING
        answer, self._held = self._held, ""
        return thinking, answer

    def flush(self) -> tuple[str, str]:
        held, self._held = self._held, ""
        if self.state == THINKING:
            return held, ""
        if self.state == "after":
            return "", ""
        return "", held
