"""How an answer appears in the terminal, as ``ollama run`` shows it: words wrapped at the
terminal's edge, thinking in grey between ``Thinking...`` and ``...done thinking.``, a spinner
until the first token, and the timings of ``--verbose`` with Go's duration format."""

from __future__ import annotations

import json
import os
import sys
import threading

GREY, BOLD, DEFAULT = "\x1b[38;5;245m", "\x1b[1m", "\x1b[0m"
SPINNER_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def char_width(char: str) -> int:
    """Terminal cells for one character: 2 for wide East Asian forms, 0 for combining marks."""
    import unicodedata  # imported here (once): building the command group stays cheap

    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def text_width(text: str) -> int:
    return sum(char_width(c) for c in text)


def terminal_width(stream) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 80


class WordWrap:
    """Streamed text, printed as it comes; with ``wrap``, a word that would reach within five
    columns of the edge is moved to the next line (erased and written again, so the text can
    be shown before the word is known to be complete). Text is never wrapped into a file or
    pipe: escape sequences have no business there."""

    def __init__(self, out, wrap: bool):
        self.out = out
        self.wrap = wrap and isatty(out)
        self.line_length = 0
        self.word = ""

    def write(self, content: str) -> None:
        width = terminal_width(self.out)
        if not (self.wrap and width >= 10):
            self.out.write(self.word + content)
            self.word = ""
            self.out.flush()
            return
        for char in content:
            if self.line_length + 1 > width - 5:
                if text_width(self.word) > width - 10:  # a word longer than a line: just go on
                    self.out.write(self.word + char)
                    self.word, self.line_length = "", 0
                    continue
                back = text_width(self.word)
                if back:
                    self.out.write(f"\x1b[{back}D")
                self.out.write("\x1b[K\n" + self.word + char)
                self.line_length = text_width(self.word) + char_width(char)
            else:
                self.out.write(char)
                self.line_length += char_width(char)
                if char_width(char) >= 2:
                    self.word = ""
                elif char in " \t":
                    self.word = ""
                elif char in "\n\r":
                    self.line_length, self.word = 0, ""
                else:
                    self.word += char
        self.out.flush()


def thinking_opening(plain: bool) -> str:
    text = "Thinking...\n"
    return text if plain else GREY + BOLD + text + DEFAULT + GREY


def thinking_closing(plain: bool) -> str:
    text = "...done thinking.\n\n"
    return text if plain else GREY + BOLD + text + DEFAULT


def tool_calls_text(calls: list, plain: bool) -> str:
    """The CLI offers the model no tools, so any call it makes is reported as unexpected."""
    explain, values = ("", "") if plain else (GREY + BOLD, DEFAULT)
    lines = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        function = function if isinstance(function, dict) else {}
        arguments = json.dumps(
            function.get("arguments") or {}, separators=(",", ":"), ensure_ascii=False
        )
        lines.append(
            f"  Model called a non-existent function '{values}{function.get('name', '')}{explain}()' "
            f"with arguments: {values}{arguments}{explain}"
        )
    return explain + "\n".join(lines) + ("" if plain else DEFAULT)


class Spinner:
    """A braille spinner on stderr while nothing has arrived; drawn only on a terminal."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.active = isatty(self.stream)
        self.drawn = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        if self.active:
            threading.Thread(target=self._spin, daemon=True).start()

    def _spin(self) -> None:
        frame = 0
        while not self._stop.wait(0.1):
            with self._lock:
                if self._stop.is_set():
                    return
                self.stream.write(f"\x1b[?25l\x1b[1G{SPINNER_FRAMES[frame]} \x1b[K\x1b[?25h")
                self.stream.flush()
                self.drawn = True
            frame = (frame + 1) % len(SPINNER_FRAMES)

    def stop(self) -> None:
        """Stop, and erase the spinner's line if it was drawn."""
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()
            if self.drawn:
                self.stream.write("\x1b[2K\x1b[1G")
                self.stream.flush()


class AnswerPrinter:
    """Prints one streamed answer: thinking (unless hidden) then content, with the spinner
    cleared as soon as there is something to show."""

    def __init__(
        self, out, wrap: bool, hide_thinking: bool, plain: bool, spinner: Spinner, tools_first: bool
    ):
        self.out, self.hide_thinking, self.plain, self.spinner = out, hide_thinking, plain, spinner
        self.wrap, self.tools_first = wrap, tools_first
        self.display = WordWrap(out, wrap)
        self.thinking: list[str] = []
        self.content: list[str] = []
        self.thinking_open = self.thinking_closed = False

    def feed(self, thinking: str, content: str, tool_calls: list) -> None:
        if content or not self.hide_thinking:
            self.spinner.stop()
        if thinking and not self.hide_thinking:
            if not self.thinking_open:
                self.out.write(thinking_opening(self.plain))
                self.thinking_open, self.thinking_closed = True, False
            self.thinking.append(thinking)
            self.display.write(thinking)
        if self.thinking_open and not self.thinking_closed and (content or tool_calls):
            if not "".join(self.thinking).endswith("\n"):
                self.out.write("\n")
            self.out.write(thinking_closing(self.plain))
            self.thinking_open, self.thinking_closed = False, True
            self.display = WordWrap(self.out, self.wrap)
        self.content.append(content)
        if tool_calls and self.tools_first:
            self.out.write(tool_calls_text(tool_calls, self.plain))
        self.display.write(content)
        if tool_calls and not self.tools_first:
            self.out.write(tool_calls_text(tool_calls, self.plain))
        self.out.flush()


def go_duration(nanoseconds: int) -> str:
    """A duration as Go's ``time.Duration.String`` writes it: ``812.5ms``, ``1.2345s``, ``2m3s``."""
    ns = int(nanoseconds)
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)

    def fixed(value: int, digits: int) -> str:
        whole, fraction = divmod(value, 10**digits)
        fraction_text = f"{fraction:0{digits}d}".rstrip("0")
        return f"{whole}.{fraction_text}" if fraction_text else str(whole)

    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{fixed(ns, 3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{fixed(ns, 6)}ms"
    seconds, fraction = divmod(ns, 1_000_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours}h" if hours else ""
    text += f"{minutes}m" if hours or minutes else ""
    return sign + text + fixed(seconds * 10**9 + fraction, 9) + "s"


def summary_lines(final: dict) -> list[str]:
    """``--verbose``'s timings, as Ollama's ``Metrics.Summary`` prints them (absent ones left out)."""

    def number(key: str) -> int:
        value = final.get(key)
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0

    lines = []
    if number("total_duration") > 0:
        lines.append(f"total duration:       {go_duration(number('total_duration'))}")
    if number("load_duration") > 0:
        lines.append(f"load duration:        {go_duration(number('load_duration'))}")
    for label, count_key, duration_key in (
        ("prompt eval", "prompt_eval_count", "prompt_eval_duration"),
        ("eval", "eval_count", "eval_duration"),
    ):
        count, duration = number(count_key), number(duration_key)
        if count > 0:
            lines.append(f"{label + ' count:':<22}{count} token(s)")
        if duration > 0:
            lines.append(f"{label + ' duration:':<22}{go_duration(duration)}")
            lines.append(f"{label + ' rate:':<22}{count / (duration / 1e9):.2f} tokens/s")
    return lines


def go_value(value) -> str:
    """A parameter's value as Go's ``%v`` prints it (``[a b]`` for a list, ``true``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    return str(value)
