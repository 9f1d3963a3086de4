"""The per-model batching loop: one thread owns the runner and, each step, feeds every active
sequence's next tokens to one ``runner.forward`` call.

Sequences wait for one of ``num_parallel`` slots. A slot keeps its KV cache between requests,
so a request that repeats an earlier prompt's beginning (a chat's history) only evaluates the
new tokens. The beginning may come from another slot's cache too (a system prompt two
conversations share): the new sequence takes the free slot used longest ago and copies those
tokens' keys and values into it, as Ollama's runner forks a cache slot. Every call into the
runner happens on this thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from ollamakit.errors import Cancelled, OllamaError

from .sequence import Sequence

log = logging.getLogger("ollamakit.scheduler")


def _failure(what: str, exc: BaseException) -> OllamaError:
    """The error a client sees: our own errors' words; anything else's text may hold paths or
    internals, so it stays in the log (the caller logs it) and the client gets ``what``."""
    if isinstance(exc, OllamaError):
        return OllamaError(f"{what}: {exc.message}", exc.status)
    return OllamaError(f"{what} (the server log has the details)")


class Slot:
    def __init__(self, index: int):
        self.index = index
        self.cache = None
        self.num_ctx = 0
        self.tokens: list[int] = []  # what the cache holds, to reuse a shared prompt prefix
        self.sequence: Sequence | None = None
        self.last_used = 0.0  # when a sequence last started or ended here (monotonic)

    @property
    def held(self) -> list[int]:
        """The tokens its cache holds: its running sequence's so far, else what the last left."""
        return self.sequence.history if self.sequence is not None else self.tokens


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class BatchWorker:
    def __init__(self, runner, num_parallel: int, name: str = "model", batch_size: int = 512):
        self.runner = runner
        self.name = name
        self.batch_size = max(1, batch_size)
        self.slots = [Slot(i) for i in range(max(1, num_parallel))]
        self._waiting: deque[Sequence] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name=f"ollamakit-batch-{name}", daemon=True
        )
        self._thread.start()

    # -- called from request threads ---------------------------------------------------------

    def submit(self, sequence: Sequence) -> None:
        with self._cond:
            if self._closed:
                raise OllamaError("model was unloaded")
            self._waiting.append(sequence)
            self._cond.notify()

    def wake(self) -> None:
        """A sequence was cancelled: let the loop notice even when it is idle."""
        with self._cond:
            self._cond.notify()

    def close(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # -- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while True:
                        if self._closed:
                            break
                        self._drop_cancelled()
                        self._assign_slots()
                        if any(s.sequence for s in self.slots):
                            break
                        self._cond.wait()
                    if self._closed:
                        break
                self._step([s for s in self.slots if s.sequence])
        except BaseException as exc:  # never leave a client waiting on a dead loop
            log.exception("batch loop for %s failed", self.name)
            self._fail_all(_failure("model runner failed", exc))
            return
        self._fail_all(OllamaError("model was unloaded"))

    def _drop_cancelled(self) -> None:
        for seq in [s for s in self._waiting if s.cancelled.is_set()]:
            self._waiting.remove(seq)
            seq.fail(Cancelled("request canceled"))
        for slot in self.slots:
            if slot.sequence and slot.sequence.cancelled.is_set():
                slot.sequence.fail(Cancelled("request canceled"))
                self._release(slot)

    def _assign_slots(self) -> None:
        while self._waiting:
            free = [s for s in self.slots if s.sequence is None]
            if not free:
                return
            seq = self._waiting.popleft()
            slot, source = self._choose(seq, free)
            try:
                self._start(slot, seq, source)
            except Exception as exc:
                log.exception("could not start a sequence on %s", self.name)
                seq.fail(
                    exc
                    if isinstance(exc, OllamaError)
                    else _failure("could not start the request", exc)
                )
                self._release(slot, forget=True)

    def _choose(self, seq: Sequence, free: list[Slot]) -> tuple[Slot, Slot | None]:
        """The slot for ``seq`` and the slot to copy the prompt's beginning from (or None), as
        Ollama's runner chooses for several users: the slot whose cache shares the longest
        beginning with the prompt, if it is free and holds nothing more (a chat's next turn);
        else the free slot used longest ago, which gives up what it held and takes the shared
        beginning from the other slot, busy or not. So a conversation's cache outlives another
        conversation that starts the same way."""

        def shared(slot: Slot) -> int:
            if slot.cache is None or slot.num_ctx != seq.num_ctx:
                return 0
            return common_prefix(slot.held, seq.prompt)

        best = max(self.slots, key=lambda s: (shared(s), s.sequence is None))
        if best.sequence is None and shared(best) == len(best.held):
            return best, None
        oldest = min(free, key=lambda s: s.last_used)
        return oldest, (best if shared(best) > shared(oldest) else None)

    def _start(self, slot: Slot, seq: Sequence, source: Slot | None = None) -> None:
        if slot.cache is None or slot.num_ctx != seq.num_ctx:
            slot.cache, slot.num_ctx, slot.tokens = (
                self.runner.new_cache(seq.num_ctx),
                seq.num_ctx,
                [],
            )
        # At least one token must be evaluated to get logits for the next one.
        limit = len(seq.prompt) - 1
        if source is not None:
            count = min(common_prefix(source.held, seq.prompt), limit)
            if count > 0 and slot.cache.copy_prefix(source.cache, count):
                log.debug("slot %d takes %d tokens from slot %d", slot.index, count, source.index)
                slot.tokens = seq.prompt[:count]
        reuse = min(common_prefix(slot.tokens, seq.prompt), limit)
        slot.cache.truncate(reuse)
        reuse = min(reuse, slot.cache.n_past)  # a cache may keep less (a sliding-window ring)
        slot.tokens = seq.prompt[:reuse]
        slot.sequence = seq
        slot.last_used = time.monotonic()
        seq.begin(reuse)

    def _release(self, slot: Slot, forget: bool = False) -> None:
        seq = slot.sequence
        slot.sequence = None
        slot.last_used = time.monotonic()
        if seq is not None and not forget:
            slot.tokens = list(seq.history)
        else:
            slot.tokens = []
        if forget and slot.cache is not None:
            slot.cache.truncate(0)

    def _make_room(self, slot: Slot, needed: int) -> bool:
        """Room for ``needed`` more tokens in the slot's window: shift when allowed, else the
        sequence ends with ``length``. Returns whether the sequence goes on."""
        seq, cache = slot.sequence, slot.cache
        if len(seq.history) + needed <= seq.num_ctx:
            return True
        if not seq.shift or len(seq.history) < 2:
            seq.finish("length")
            self._release(slot)
            return False
        keep, discard = seq.shift_plan()
        if cache.shift(keep, discard):
            seq.history = seq.history[:keep] + seq.history[keep + discard :]
        else:
            # No in-place shift: keep the first tokens and evaluate the kept tail again.
            tail = seq.history[keep + discard :]
            cache.truncate(keep)
            kept = min(keep, cache.n_past)  # a cache may keep less: evaluate the rest again
            seq.pending = seq.history[kept:keep] + tail + seq.pending
            seq.history = seq.history[:kept]
        if len(seq.history) + len(seq.next_input(self.batch_size)) > seq.num_ctx:
            seq.finish("length")
            self._release(slot)
            return False
        return True

    def _step(self, slots: list[Slot]) -> None:
        batch, fed = [], []
        for slot in slots:
            seq = slot.sequence
            if not self._make_room(slot, len(seq.next_input(self.batch_size))):
                continue
            tokens = seq.next_input(self.batch_size)
            batch.append((slot.cache, tokens))
            fed.append((slot, len(tokens)))
        if not batch:
            return
        started = time.perf_counter_ns()
        sequences = [slot.sequence for slot, _ in fed]
        try:
            # a long prompt stops inside its pass once every client it serves has left
            outputs = self.runner.forward(
                batch, should_stop=lambda: all(s.cancelled.is_set() for s in sequences)
            )
        except Cancelled as exc:
            for slot, _ in fed:
                slot.sequence.fail(exc)
                self._release(slot, forget=True)
            return
        except Exception as exc:
            log.exception("forward pass failed on %s", self.name)
            for slot, _ in fed:
                slot.sequence.fail(_failure("model runner failed", exc))
                self._release(slot, forget=True)
            return
        elapsed = time.perf_counter_ns() - started
        for (slot, count), logits in zip(fed, outputs):
            seq = slot.sequence
            seq.consumed(count)
            if seq.pending:  # more of the prompt to evaluate; these logits are not needed
                seq.metrics.prompt_eval_duration += elapsed
                continue
            try:
                seq.accept(logits, elapsed)
            except Exception as exc:
                log.exception("sampling failed on %s", self.name)
                seq.fail(_failure("sampling failed", exc))
            if seq.finished:
                self._release(slot)

    def _fail_all(self, error: OllamaError) -> None:
        with self._cond:
            for seq in self._waiting:
                seq.fail(error)
            self._waiting.clear()
            for slot in self.slots:
                if slot.sequence:
                    slot.sequence.fail(error)
                    slot.sequence = None
