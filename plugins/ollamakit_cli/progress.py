"""Progress on stderr: status lines and bars.

On a terminal a bar redraws in place as it advances. Anywhere else (a log file, a pipe, a test)
each status line and each bar is printed once, so the output reads as a plain record.
"""

from __future__ import annotations

import sys
import time

from .formatting import human_bytes

BAR_WIDTH = 25
REDRAW_SECONDS = 0.1


class Progress:
    def __init__(self, stream=None, interactive: bool | None = None):
        self.stream = stream or sys.stderr
        self.interactive = _isatty(self.stream) if interactive is None else interactive
        self.last_status: str | None = None
        self.bars: dict[str, Bar] = {}
        self._open_line = False  # a bar is drawn on the current line (terminal only)

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _end_line(self) -> None:
        if self._open_line:
            self._write("\n")
            self._open_line = False

    def status(self, text: str) -> None:
        """Print ``text`` unless it repeats the status just printed."""
        if text == self.last_status:
            return
        self._end_line()
        self.last_status = text
        self._write(text + "\n")

    def bar(self, key: str, label: str, total: int, unit: str = "bytes") -> Bar:
        """The bar for ``key`` (a digest, a status), made on first use."""
        if key not in self.bars:
            self._end_line()
            self.bars[key] = Bar(self, label, total, unit)
        return self.bars[key]

    def close(self) -> None:
        """End a bar's line left open (also after an error, so the error gets its own line)."""
        self._end_line()


class Bar:
    def __init__(self, progress: Progress, label: str, total: int, unit: str):
        self.progress, self.label, self.total, self.unit = progress, label, max(0, int(total)), unit
        self.completed, self.finished, self._drawn_at = 0, False, 0.0

    def update(self, completed: int, total: int | None = None) -> None:
        if total is not None and total > 0:
            self.total = int(total)
        self.completed = max(0, int(completed))
        if self.total and self.completed >= self.total:
            self.finish()
        elif self.progress.interactive and time.monotonic() - self._drawn_at >= REDRAW_SECONDS:
            self._draw()

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.completed = max(self.completed, self.total)
        if self.progress.interactive:
            self._draw()
            self.progress._end_line()
        else:
            self.progress._write(self.render() + "\n")

    def _amount(self, value: int) -> str:
        return human_bytes(value) if self.unit == "bytes" else str(value)

    def render(self) -> str:
        fraction = min(1.0, self.completed / self.total) if self.total else 1.0
        filled = int(fraction * BAR_WIDTH)
        bar = "█" * filled + " " * (BAR_WIDTH - filled)
        return f"{self.label} {int(fraction * 100):3d}% ▕{bar}▏ {self._amount(self.completed)}/{self._amount(self.total)}"

    def _draw(self) -> None:
        self._drawn_at = time.monotonic()
        self.progress._write("\r" + self.render() + "\x1b[K")
        self.progress._open_line = True


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
