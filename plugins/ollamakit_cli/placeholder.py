"""The dim hint in the empty ``>>>`` line (``Send a message (/? for help)``), as Ollama's line
editor draws it: shown whenever the line is empty, gone with the first key.

Python's ``readline`` module has no hook for either moment, but GNU readline has both, as
function pointers it calls through: ``rl_redisplay_function`` after every change to the line,
and ``rl_getc_function`` for every key. ``Placeholder`` wraps the two (through ``ctypes``, on
the library the ``readline`` module is linked to): after a redisplay that left the line empty it
draws the hint in grey past the cursor and puts the cursor back; when a key arrives it clears
to the end of the line first. Readline never knows the hint was there, so it never has to
forget it. Ollama's escapes are used (grey 245, ``CSI K``). Where this cannot work (libedit,
no terminal, a hint wider than the terminal) there is no hint and nothing else changes.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
import threading

GREY, RESET, CLEAR_TO_END = "\x1b[38;5;245m", "\x1b[0m", "\x1b[K"

_GETC = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
_REDISPLAY = ctypes.CFUNCTYPE(None)
_installed: Placeholder | None = None


class Placeholder:
    def __init__(self, readline_module) -> None:
        self.text = ""  # the hint for the line being read; empty: none
        self.prompt_width = 0
        self.shown = False
        lib = ctypes.CDLL(readline_module.__file__)  # symbols of the readline it links, too
        self._line_end = ctypes.c_int.in_dll(lib, "rl_end")
        self._getc_slot = ctypes.c_void_p.in_dll(lib, "rl_getc_function")
        self._redisplay_slot = ctypes.c_void_p.in_dll(lib, "rl_redisplay_function")
        self._getc = _GETC(self._getc_slot.value)
        self._redisplay = _REDISPLAY(self._redisplay_slot.value)
        # the wrappers live as long as this object: readline holds only their addresses
        self._getc_wrapper = _GETC(self._on_key)
        self._redisplay_wrapper = _REDISPLAY(self._on_redisplay)
        self._getc_slot.value = ctypes.cast(self._getc_wrapper, ctypes.c_void_p).value
        self._redisplay_slot.value = ctypes.cast(self._redisplay_wrapper, ctypes.c_void_p).value
        self._unraisable = sys.unraisablehook
        sys.unraisablehook = self._quiet_after_ctrl_c

    def _quiet_after_ctrl_c(self, unraisable) -> None:
        """On Ctrl-C, readline tidies up (redisplaying) while Python already holds the
        KeyboardInterrupt, so ctypes reports the wrapper as having failed. The interrupt itself
        still reaches ``input()``; the report would only print a traceback at the prompt."""
        if getattr(unraisable.object, "__self__", None) is self:
            return
        self._unraisable(unraisable)

    @classmethod
    def install(cls, readline_module) -> Placeholder | None:
        """The process's one placeholder (readline is one per process), or None where none
        can be drawn."""
        global _installed
        if _installed is not None:
            return _installed
        if readline_module is None or "libedit" in (readline_module.__doc__ or ""):
            return None
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            return None
        try:
            _installed = cls(readline_module)
        except (OSError, ValueError, AttributeError):  # a readline without these symbols
            return None
        return _installed

    def _write(self, text: str) -> None:
        os.write(sys.stdout.fileno(), text.encode())

    def _on_redisplay(self) -> None:
        try:
            self._redisplay()
            if self.text and self._line_end.value == 0:
                if self.prompt_width + len(self.text) < shutil.get_terminal_size().columns:
                    self._write(f"{GREY}{self.text}\x1b[{len(self.text)}D{RESET}")
                    self.shown = True
        except KeyboardInterrupt:
            interrupt_again()

    def _on_key(self, stream) -> int:
        try:
            key = self._getc(stream)
            self.clear()
        except KeyboardInterrupt:
            interrupt_again()
            return 0  # a key lost to the interrupt: C-@ (set-mark) does nothing, and the line goes
        return key

    def clear(self) -> None:
        """Take the hint away (the cursor is where it starts: readline left it there)."""
        if self.shown:
            self._write(CLEAR_TO_END)
            self.shown = False


def interrupt_again(after: float = 0.02) -> None:
    """Send Ctrl-C's signal to the main thread again, shortly. A SIGINT that lands while one of
    the wrappers runs raises KeyboardInterrupt inside a ctypes callback, where it cannot leave:
    ctypes reports and drops it, and readline reads on as if no key had been pressed. Python's
    readline loop notices an interrupt only when the signal breaks its wait for a key, so the
    signal is sent once more from a timer thread, after the wrapper has returned to that wait."""
    timer = threading.Timer(
        after, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)
    )
    timer.daemon = True
    timer.start()
