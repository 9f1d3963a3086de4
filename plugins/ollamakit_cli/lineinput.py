"""Reading lines at the ``>>>`` prompt: line editing and history, as ``ollama run`` offers them.

The standard library's ``readline`` (GNU readline or libedit) does the editing: it already has
the keys Ollama's own line editor binds (Ctrl-A/E/K/U/W/L, Alt-B/F, arrows, history search),
bracketed paste, and wide-character handling, and it adds no dependency. Where Python has no
``readline`` (Windows), ``input()`` still works, without editing.

The dim placeholder in the empty line is drawn through GNU readline's own hooks
(``placeholder.py``).

Ctrl-G opens the line in an editor (``OLLAMA_EDITOR``, ``VISUAL``, ``EDITOR``, else ``vi``) and
puts what was written back at the prompt, to be sent with Enter. Python cannot bind a key to a
function, so with GNU readline Ctrl-G is a macro that ends the line with a mark no one types (a
literal BEL, through quoted-insert); ``read`` sees the mark and runs the editor.

History follows Ollama's: every non-empty line entered is remembered, the last 100 are kept in
``~/.ollama/history`` (rewritten whole through a temporary file, so it is never half written),
and saving stops with ``OLLAMA_NOHISTORY`` or ``/set nohistory`` while the history already on
disk stays available.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from .placeholder import Placeholder

HISTORY_LIMIT = 100
EDIT_MARK = "\x07"  # what Ctrl-G leaves at the end of the line
DEFAULT_EDITOR = "vi"
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")

try:
    import readline
except ImportError:  # pragma: no cover - Python built without it
    readline = None


def editor_key() -> bool:
    """Whether Ctrl-G can open the editor (GNU readline; libedit has no macros of this kind)."""
    return readline is not None and "libedit" not in (readline.__doc__ or "")


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
        from .configfiles import ConfigError, read_bytes

        try:  # bounded, and a FIFO or a folder is no history rather than a wait or a crash
            text = (read_bytes(self.path) or b"").decode("utf-8", errors="replace")
        except ConfigError:
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
        temporary = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a temporary of its own: two chats at once each replace the file whole, where one
            # fixed name let the second truncate and overwrite the first's half-written file
            fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write("".join(line + "\n" for line in self.lines))
            os.replace(temporary, self.path)
        except OSError:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
            # a read-only home is no reason to stop a chat


def erase_lines(columns: int) -> None:
    """Erase the terminal lines just written by a line of ``columns`` characters."""
    if not sys.stdout.isatty():
        return
    width = shutil.get_terminal_size().columns or 80
    for _ in range(max(1, -(-columns // width))):
        sys.stdout.write("\x1b[1A\x1b[2K")
    sys.stdout.write("\r")
    sys.stdout.flush()


class EditorError(Exception):
    pass


def edit_in_editor(text: str) -> str:
    """``text`` after the user edited it in their editor (trailing newlines dropped)."""
    editor = (
        os.environ.get("OLLAMA_EDITOR")
        or os.environ.get("VISUAL")
        or os.environ.get("EDITOR")
        or DEFAULT_EDITOR
    )
    words = editor.split()
    if shutil.which(words[0]) is None:
        raise EditorError(
            f'editor "{words[0]}" not found, set OLLAMA_EDITOR to the path of your preferred editor'
        )
    fd, name = tempfile.mkstemp(prefix="ollama-prompt-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        if subprocess.run([*words, name]).returncode != 0:
            raise EditorError(f"editor exited with error: {shlex.join(words)}")
        return Path(name).read_text(encoding="utf-8", errors="replace").rstrip("\n")
    finally:
        os.unlink(name)


class LineReader:
    """``read(prompt)`` returns the line typed; raises EOFError (Ctrl-D on an empty line) and
    KeyboardInterrupt (Ctrl-C)."""

    def __init__(self, history: History):
        self.history = history
        self.prefill = ""
        self.placeholder = Placeholder.install(readline)
        if readline is not None:
            readline.set_auto_history(False)  # only non-empty lines, and they go to the file too
            readline.clear_history()
            for line in history.lines:
                readline.add_history(line)
            if editor_key():
                readline.parse_and_bind(r'"\C-g": "\C-e\C-v\C-g\C-m"')
            readline.set_startup_hook(self._insert_prefill)

    def _input(self, prompt: str, placeholder: str) -> str:
        hint = self.placeholder
        if hint is None:
            return input(prompt)
        hint.text, hint.prompt_width = placeholder, len(prompt)
        try:
            return input(prompt)
        finally:  # Ctrl-C leaves the hint drawn; no other prompt shows it
            hint.clear()
            hint.text = ""

    def _insert_prefill(self) -> None:
        if self.prefill:
            readline.insert_text(self.prefill)
            self.prefill = ""

    def read(self, prompt: str, placeholder: str = "") -> str:
        """The line typed after ``prompt``; ``placeholder`` is shown dim while it is empty."""
        while True:
            line = self._input(prompt, placeholder)
            if not line.endswith(EDIT_MARK):
                break
            erase_lines(
                len(prompt) + len(line) + 1
            )  # the line and its "^G" go, as Ollama clears them
            try:
                edited = edit_in_editor(line[: -len(EDIT_MARK)])
            except EditorError as exc:
                click.echo(f"error: {exc}", err=True)
                continue
            if edited.strip():
                self.prefill = edited
        if line:
            self.history.add(line)
            if readline is not None:
                readline.add_history(line)
        return line
