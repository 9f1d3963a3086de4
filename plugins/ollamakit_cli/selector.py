"""A list to pick one item from with the arrow keys, as Ollama's selector (``cmd/tui/selector.go``)
works in a terminal: typing filters the list (by name, case-insensitive), Up and Down (and Page
Up, Page Down) move, Enter picks, Esc, Left or Ctrl-C go back. Enter while nothing matches the
filter picks the filter itself, so that a model not listed can still be named (and pulled).

Only where both ends are a terminal; elsewhere (or with ``TERM=dumb``) the callers keep their
numbered lines.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TextIO

VISIBLE = 10  # items shown at once; the rest scroll
HELP = "↑/↓ navigate • enter select • esc cancel"
GREY, BOLD, RESET = "\033[90m", "\033[1m", "\033[0m"
UP, DOWN, LEFT = ("\x1b[A", "\x1bOA"), ("\x1b[B", "\x1bOB"), ("\x1b[D", "\x1bOD")
PAGE_UP, PAGE_DOWN = "\x1b[5~", "\x1b[6~"
CANCEL = ("\x1b", "\x03", "\x04", *LEFT)  # Esc, Ctrl-C, Ctrl-D, Left
ENTER = ("\r", "\n")
BACKSPACE = ("\x7f", "\x08")


def available() -> bool:
    from .display import isatty

    return isatty(sys.stdin) and isatty(sys.stdout) and os.environ.get("TERM") != "dumb"


def matches(items: Sequence[tuple[str, str]], text: str) -> list[tuple[str, str]]:
    """Items whose name holds ``text``: the exact name first, then those it starts, then the rest,
    each group in the list's order."""
    if not text:
        return list(items)
    wanted = text.lower()
    found = [item for item in items if wanted in item[0].lower()]

    def rank(item: tuple[str, str]) -> int:
        name = item[0].lower()
        return 0 if name == wanted else 1 if name.startswith(wanted) else 2

    return sorted(found, key=rank)  # stable: the list's order within a group


class Selector:
    def __init__(self, title: str, items: Sequence[tuple[str, str]], current: str, out: TextIO):
        self.title, self.items, self.out = title, list(items), out
        self.filter, self.cursor, self.offset, self.drawn = "", 0, 0, 0
        names = [name for name, _ in self.items]
        if current in names:
            self.cursor = names.index(current)

    @property
    def shown(self) -> list[tuple[str, str]]:
        return matches(self.items, self.filter)

    def move(self, delta: int) -> None:
        count = len(self.shown)
        self.cursor = max(0, min(count - 1, self.cursor + delta)) if count else 0
        if self.cursor < self.offset:
            self.offset = self.cursor
        elif self.cursor >= self.offset + VISIBLE:
            self.offset = self.cursor - VISIBLE + 1

    def lines(self) -> list[str]:
        prompt = self.filter or f"{GREY}Type to filter...{RESET}"
        lines = [f"{BOLD}{self.title}{RESET} {prompt}", ""]
        shown = self.shown
        if not shown:
            lines.append(f"  {GREY}(no matches; enter picks {self.filter!r}){RESET}")
        for index in range(self.offset, min(len(shown), self.offset + VISIBLE)):
            name, description = shown[index]
            mark = f"{BOLD}▸ {name}{RESET}" if index == self.cursor else f"  {name}"
            lines.append(mark)
            if description:
                lines.append(f"    {GREY}{description}{RESET}")
        if (rest := len(shown) - self.offset - VISIBLE) > 0:
            lines.append(f"  {GREY}... and {rest} more{RESET}")
        lines += ["", f"{GREY}{HELP}{RESET}"]
        return lines

    def draw(self) -> None:
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}A\r")
        self.out.write("\x1b[J")
        lines = self.lines()
        self.out.write("\r\n".join(lines) + "\r\n")
        self.out.flush()
        self.drawn = len(lines)

    def clear(self) -> None:
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}A\r\x1b[J")
            self.out.flush()

    def key(self, key: str) -> tuple[bool, str | None]:
        """Whether the selection is over, and what was picked (None: nothing)."""
        shown = self.shown
        if key in CANCEL:
            return True, None
        if key in ENTER:
            if shown:
                return True, shown[self.cursor][0]
            return True, (self.filter.strip() or None)
        if key in UP:
            self.move(-1)
        elif key in DOWN:
            self.move(1)
        elif key == PAGE_UP:
            self.move(-VISIBLE)
        elif key == PAGE_DOWN:
            self.move(VISIBLE)
        elif key in BACKSPACE:
            self.filter = self.filter[:-1]
            self.cursor = self.offset = 0
        elif key.isprintable():
            self.filter += key
            self.cursor = self.offset = 0
        return False, None


def split_keys(text: str) -> list[str]:
    """What one read holds, key by key: characters, and escape sequences whole (a terminal sends
    each in one write; a paste or a fast typist sends several keys at once)."""
    keys, i = [], 0
    while i < len(text):
        if text[i] == "\x1b" and i + 1 < len(text) and text[i + 1] in "[O":
            end = i + 2
            while end < len(text) and not (text[end].isalpha() or text[end] == "~"):
                end += 1
            keys.append(text[i : end + 1])
            i = end + 1
        else:
            keys.append(text[i])
            i += 1
    return keys


def select_one(
    title: str, items: Sequence[tuple[str, str]], current: str = "", out: TextIO | None = None
) -> str | None:
    """The name picked, or None when the user went back."""
    import termios
    import tty

    out = out or sys.stderr
    selector = Selector(title, items, current, out)
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        out.write("\x1b[?25l")  # no cursor while the list is drawn
        selector.draw()
        while True:
            data = os.read(fd, 64)
            for key in split_keys(data.decode("utf-8", "replace")) if data else ["\x04"]:
                done, picked = selector.key(key)
                if done:
                    selector.clear()
                    return picked
            selector.draw()
    finally:
        out.write("\x1b[?25h")
        out.flush()
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
