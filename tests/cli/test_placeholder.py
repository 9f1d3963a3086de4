"""The placeholder's readline wrappers never swallow Ctrl-C."""

from __future__ import annotations

import signal
import time

import pytest

from ollamakit_cli.placeholder import _GETC, _REDISPLAY, Placeholder


def interrupted(hook) -> bool:
    """Whether a SIGINT reached the main thread within a second of ``hook()`` returning."""
    seen = []
    previous = signal.signal(signal.SIGINT, lambda *_: seen.append(True))
    try:
        hook()
        deadline = time.monotonic() + 1.0
        while not seen and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        signal.signal(signal.SIGINT, previous)
    return bool(seen)


def ctrl_c(*_args):
    raise KeyboardInterrupt


@pytest.fixture
def placeholder():
    # Only the wrappers are under test: no readline is loaded or patched.
    made = object.__new__(Placeholder)
    made.text, made.shown, made.prompt_width = "", False, 0
    return made


def test_an_interrupt_during_a_redisplay_is_sent_again(placeholder):
    placeholder._redisplay = ctrl_c
    # called through C, as readline calls it: an exception cannot leave the callback
    redisplay = _REDISPLAY(placeholder._on_redisplay)
    assert interrupted(redisplay)


def test_an_interrupt_while_a_key_is_read_is_sent_again(placeholder):
    placeholder._getc = ctrl_c
    getc = _GETC(placeholder._on_key)
    keys = []
    assert interrupted(lambda: keys.append(getc(None)))
    assert keys == [0]  # a key readline ignores: the interrupt ends the line anyway


def test_a_key_read_without_an_interrupt_sends_none(placeholder):
    placeholder._getc = lambda _stream: ord("a")
    getc = _GETC(placeholder._on_key)
    keys = []
    assert not interrupted(lambda: keys.append(getc(None)))
    assert keys == [ord("a")]
