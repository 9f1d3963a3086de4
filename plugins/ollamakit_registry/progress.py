"""Progress objects for pull and push, reported about every 60 ms while bytes move."""

from __future__ import annotations

from collections.abc import Iterator

TICK = 0.06


def progress(status: str, digest: str, total: int, completed: int) -> dict:
    event = {"status": status, "digest": digest, "total": total}
    if completed:
        event["completed"] = completed  # omitted while zero, as Ollama does
    return event


def watch(transfer, status: str, digest: str, total: int) -> Iterator[dict]:
    """Report ``transfer.completed`` each tick it changed, until ``transfer.done`` is set.

    The last report is sent even when unchanged, so a finished transfer ends at its total.
    """
    last = None
    while not transfer.done.wait(TICK):
        completed = transfer.completed
        if completed != last:
            last = completed
            yield progress(status, digest, total, completed)
    if transfer.error is None:
        yield progress(status, digest, total, transfer.completed)
