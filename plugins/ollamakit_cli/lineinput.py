"""Reading lines at the ``>>>`` prompt: line editing and history, as ``ollama run`` offers them.

The standard library's ``readline`` (GNU readline or libedit) does the editing: it already has
the keys Ollama's own line editor binds (Ctrl-A/E/K/U/W/L, Alt-B/F, arrows, history search),
bracketed paste, and wide-character handling, and it adds no dependency. Where Python has no
``readline`` (Windows), ``input()`` still works, without editing.

History follows Ollama's: every non-empty line entered is remembered, the last 100 are kept in
``~/.ollama/history`` (rewritten whole through a temporary file, so it is never half written),
and saving stops with ``OLLAMA_NOHISTORY`` or ``/set nohistory`` while the history already on
disk stays available.
"""

from __future__ import annotations

import os
from pathlib import Path

HISTORY_LIMIT = 100
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")

try:
    import readline
except ImportError:  # pragma: no cover - Python built without it
    readline = None


def env_flag(name: str) -> bool:
    """A boolean client variable read as Ollama reads it: unset or empty is false, a word Go's
    ``strconv.ParseBool`` does not know is true."""
    value = os.environ.get(name, "").strip().strip("'\"")
    if not value:
        return False
    return value not in _GO_FALSE


def history_path() -> Path:
    return Path.home() / ".ollama" / "history"


class History:
    def __init__(self, path: Path | None = None, enabled: bool = True):
        self.path = path or history_path()
        self.enabled = enabled
        self.lines: list[str] = []
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        for line in text.splitlines():
            if line.strip():
                self.lines.append(line.strip())
        self.lines = self.lines[-HISTORY_LIMIT:]

    def add(self, line: str) -> None:
        self.lines = (self.lines + [line])[-HISTORY_LIMIT:]
        if self.enabled:
            self.save()

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write("".join(line + "\n" for line in self.lines))
            os.replace(temporary, self.path)
        except OSError:
            pass  # a read-only home is no reason to stop a chat


class LineReader:
    """``read(prompt)`` returns the line typed; raises EOFError (Ctrl-D on an empty line) and
    KeyboardInterrupt (Ctrl-C)."""

    def __init__(self, history: History):
        self.history = history
        if readline is not None:
            readline.set_auto_history(False)  # only non-empty lines, and they go to the file too
            readline.clear_history()
            for line in history.lines:
                readline.add_history(line)

    def read(self, prompt: str) -> str:
        line = input(prompt)
        if line:
            self.history.add(line)
            if readline is not None:
                readline.add_history(line)
        return line
