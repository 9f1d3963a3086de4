"""How many BLAS threads a model computes with when its ``num_thread`` is unset.

On a machine of one's own, every core: decoding is bound by memory bandwidth, which one core only
half uses. But OpenBLAS threads wait for each other at every product, so when another process
keeps a core busy a threaded decode stalls on it and runs at half the speed of one thread, or
worse (docs/performance.md, "Threads and contention"). Which case holds changes while a server
runs, so the chooser keeps measuring: decode passes (one new token per sequence: nearly the same
work from one to the next, for the same number of sequences) run on the current count, and every
``PROBE_EVERY``-th on the other one; it switches when the other was clearly faster than the
current count on passes of the same number of sequences. Prompt passes never probe.
"""

from __future__ import annotations

PROBE_EVERY = 64  # one decode step in this many tries the other thread count (~1% when quiet)
SWITCH_BELOW = 0.8  # the other count must take less than this fraction of the current's time
SMOOTHING = 0.3  # weight of the newest step time in the current count's moving average


class ThreadChooser:
    def __init__(self, cores: int):
        self.cores = cores
        self.current = cores
        # (threads, sequences) -> recent time of one decode pass of that many sequences
        self.seconds: dict[tuple[int, int], float] = {}
        self._passes = 0

    def _other(self) -> int:
        return 1 if self.current == self.cores else self.cores

    def pick(self, sequences: int | None) -> int:
        """The thread count for the next pass: a decode pass of ``sequences``, or a pass with
        prompt tokens (None), which is never a probe."""
        if sequences is None:
            return self.current
        self._passes += 1
        return self._other() if self._passes % PROBE_EVERY == 0 else self.current

    def record(self, threads: int, sequences: int, seconds: float) -> None:
        """The time a decode pass of ``sequences`` took on ``threads``."""
        key = (threads, sequences)
        previous = self.seconds.get(key)
        if previous is None or threads != self.current:
            self.seconds[key] = seconds  # a probe: its latest time stands for it
        else:
            self.seconds[key] = previous + SMOOTHING * (seconds - previous)
        current, other = (
            self.seconds.get((self.current, sequences)),
            self.seconds.get((self._other(), sequences)),
        )
        if current is not None and other is not None and other < SWITCH_BELOW * current:
            self.current = self._other()
