"""The scheduler and batching loop driven directly (no HTTP)."""

import threading
import time

import pytest

from ollamakit.errors import Busy, OllamaError
from ollamakit_scheduler.fixtures import make_fake  # noqa: F401 (fixture)
from ollamakit.options import Options
from ollamakit_scheduler.scheduler import QUEUE_FULL
from ollamakit.events import Chunk, Done
from ollamakit_scheduler.sequence import fit_prompt

GREEDY = Options(temperature=0)
ONE_LINE = Options(temperature=0, stop=["\n"])


def run(lease, text, **kwargs):
    seq = lease.start(lease.tokenizer.encode(text), **kwargs)
    events = list(seq.events())
    return "".join(e.text for e in events if isinstance(e, Chunk)), events[-1]


def test_fit_prompt_keeps_the_start_and_the_end():
    assert fit_prompt(list(range(10)), 6, 2, True) == [0, 1, 6, 7, 8, 9]
    assert fit_prompt(list(range(4)), 6, 2, True) == [0, 1, 2, 3]
    with pytest.raises(OllamaError):
        fit_prompt(list(range(10)), 6, 2, False)


def test_a_repeated_prefix_is_served_from_the_cache(make_fake):
    setup = make_fake()
    model = setup.model()
    with setup.kernel.scheduler.acquire(model, GREEDY) as lease:
        _, first = run(lease, "Q: one\nA: the first answer.\nQ: two\nA:")
        fed = lease.runner.tokens_fed
        _, second = run(lease, "Q: one\nA: the first answer.\nQ: three\nA:")
        fed_second = lease.runner.tokens_fed - fed - second.metrics.eval_count
    assert first.metrics.prompt_eval_count == 1 + 37  # BOS and the text
    # the whole prompt is counted, cached or not, as Ollama counts it ...
    assert second.metrics.prompt_eval_count == 1 + len("Q: one\nA: the first answer.\nQ: three\nA:")
    # ... but only what differs from "two" is evaluated (besides the generated tokens)
    assert fed_second == len("hree\nA:")


def test_a_beginning_another_slot_holds_is_copied_and_that_slot_kept(make_fake):
    """Two conversations with the same opening on two slots: the second copies the opening from
    the first one's cache, and the first one's next turn still finds its whole history."""
    setup = make_fake(num_parallel=2)
    model = setup.model()
    opening = "Q: one\nA: the first answer.\n"
    with setup.kernel.scheduler.acquire(model, ONE_LINE) as lease:
        slots = lease.entry.worker.slots
        first_text, first = run(lease, opening + "Q: two\nA:")
        fed = lease.runner.tokens_fed
        text, second = run(lease, opening + "Q: three\nA:")
        # the token that ends the line stops generation before it is evaluated
        fed_second = lease.runner.tokens_fed - fed - (second.metrics.eval_count - 1)
        assert fed_second == len("hree\nA:")  # the rest came from the other slot's cache
        assert sorted(len(slot.tokens) > 0 for slot in slots) == [True, True]
        follow_up = opening + "Q: two\nA:" + first_text + "\nQ: three\nA:"
        fed = lease.runner.tokens_fed
        _, third = run(lease, follow_up)
        # the first conversation's slot was not given to the second one
        fed_third = lease.runner.tokens_fed - fed - (third.metrics.eval_count - 1)
        assert fed_third == len("\nQ: three\nA:")
    with setup.kernel.scheduler.acquire(setup.model("fresh"), ONE_LINE) as lease:
        assert run(lease, opening + "Q: three\nA:")[0] == text


def test_a_beginning_is_copied_from_a_busy_slot(make_fake):
    setup = make_fake(num_parallel=2)
    model = setup.model(step_delay=0.01)
    opening = "Q: one\nA: the first answer.\n"
    with setup.kernel.scheduler.acquire(model, Options(temperature=0, num_predict=40)) as lease:
        forward, fed = lease.runner.forward, []

        def recording(batch, **kwargs):
            fed.extend((cache, len(tokens)) for cache, tokens in batch)
            return forward(batch, **kwargs)

        lease.runner.forward = recording
        busy = lease.start(lease.tokenizer.encode(opening + "Q: two\nA:"))
        events = busy.events()
        next(events)  # the first sequence is decoding: its slot is busy
        _, done = run(lease, opening + "Q: three\nA:")
        assert not busy.finished
        list(events)
    first_cache = fed[0][0]
    second = [count for cache, count in fed if cache is not first_cache]
    # the new tokens of the prompt in one step, then one token a step
    assert second[0] == len("hree\nA:") and set(second[1:]) == {1}


def test_slots_are_given_up_oldest_first(make_fake):
    setup = make_fake(num_parallel=2)
    model = setup.model()
    with setup.kernel.scheduler.acquire(model, ONE_LINE) as lease:
        slots = lease.entry.worker.slots
        run(lease, "Q: one\nA:")
        run(lease, "Q: two\nA:")
        older = next(slot for slot in slots if bytes(slot.tokens[1:]).startswith(b"Q: one"))
        run(lease, "Q: three\nA:")  # shares nothing: takes the older slot
        assert bytes(older.tokens[1:]).startswith(b"Q: three")
        assert any(bytes(slot.tokens[1:]).startswith(b"Q: two") for slot in slots)


def test_a_slow_load_does_not_block_another_model(make_fake):
    setup = make_fake()
    slow, fast = setup.model("slow", load_delay=1.0), setup.model("fast")
    scheduler = setup.kernel.scheduler
    done = {}

    def use(model):
        with scheduler.acquire(model, GREEDY) as lease:
            run(
                lease,
                "Q: one\nA:",
            )
        done[model.short_name] = time.monotonic()

    threads = [threading.Thread(target=use, args=(m,)) for m in (slow, fast)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert done["fast:latest"] < done["slow:latest"] - 0.5


def test_queue_limit(make_fake):
    setup = make_fake(max_queue=1, num_parallel=1)
    model = setup.model(endless=True, step_delay=0.005)
    scheduler = setup.kernel.scheduler
    holder = scheduler.acquire(model, Options(temperature=0, num_predict=10_000))
    running = holder.start(holder.tokenizer.encode("Q: one\nA:"))
    next(running.events())  # started: it no longer counts as waiting
    second = scheduler.acquire(model, Options(temperature=0, num_predict=5))
    waiting = second.start(second.tokenizer.encode("Q: two\nA:"))  # no free slot: waits
    with pytest.raises(Busy) as info:
        scheduler.acquire(model, GREEDY)
    assert info.value.status == 503 and info.value.message == QUEUE_FULL
    running.cancel()
    assert any(isinstance(e, Done) for e in waiting.events())
    second.release()
    holder.release()
    scheduler.acquire(model, GREEDY).release()  # the queue is empty again


def test_cancelled_waiting_sequence_never_runs(make_fake):
    setup = make_fake(num_parallel=1)
    model = setup.model(endless=True, step_delay=0.005)
    with setup.kernel.scheduler.acquire(model, Options(temperature=0, num_predict=10_000)) as lease:
        running = lease.start(lease.tokenizer.encode("Q: one\nA:"))
        next(running.events())
        waiting = lease.start(lease.tokenizer.encode("Q: two\nA:"))
        waiting.cancel()
        running.cancel()
        time.sleep(0.1)
        assert not waiting.started.is_set()
        assert not setup.runner.closed


class ShiftingCache:
    """A cache that can drop a range in place, as a real KV cache can."""

    def __init__(self, inner):
        self.inner, self.shifts = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def shift(self, keep, discard):
        self.shifts.append((keep, discard))
        del self.inner.tokens[keep : keep + discard]


def test_context_shift_uses_the_cache_shift_when_there_is_one(make_fake):
    setup = make_fake()
    model = setup.model(endless=True)
    caches = []
    with setup.kernel.scheduler.acquire(
        model, Options(temperature=0, num_ctx=32, num_predict=80)
    ) as lease:
        new_cache = lease.runner.new_cache

        def wrapped(num_ctx):
            caches.append(ShiftingCache(new_cache(num_ctx)))
            return caches[-1]

        lease.runner.new_cache = wrapped
        text, done = run(lease, "Q: one\nA:")
    assert done.reason == "length" and done.metrics.eval_count == 80
    assert caches[0].shifts and all(keep == 4 for keep, _ in caches[0].shifts)
    assert caches[0].n_past <= 32


class ForgetfulCache:
    """A cache that keeps nothing when asked to drop tokens, as a sliding-window ring does once
    it has overwritten what the kept tokens' successors would attend to."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def truncate(self, n):
        self.inner.truncate(n if n >= self.inner.n_past else 0)
        return self.inner.n_past


def forgetful_caches(lease):
    new_cache, caches = lease.runner.new_cache, []

    def wrapped(num_ctx):
        caches.append(ForgetfulCache(new_cache(num_ctx)))
        return caches[-1]

    lease.runner.new_cache = wrapped
    return caches


def test_a_cache_that_keeps_less_than_the_prefix_evaluates_the_prompt_again(make_fake):
    setup = make_fake()
    model = setup.model()
    prompt = "Q: one\nA: the first answer.\nQ: three\nA:"
    with setup.kernel.scheduler.acquire(model, GREEDY) as lease:
        forgetful_caches(lease)
        run(lease, "Q: one\nA: the first answer.\nQ: two\nA:")
        text, second = run(lease, prompt)
    assert second.metrics.prompt_eval_count == 1 + len(prompt)
    assert lease.runner.tokens_fed >= 2 * len(prompt)  # the second prompt was evaluated whole
    with setup.kernel.scheduler.acquire(setup.model("fresh"), GREEDY) as lease:
        assert run(lease, prompt)[0] == text


def test_context_shift_with_a_cache_that_keeps_less(make_fake):
    setup = make_fake()
    model = setup.model(endless=True)
    options = Options(temperature=0, num_ctx=32, num_predict=80)
    with setup.kernel.scheduler.acquire(model, options) as lease:
        caches = forgetful_caches(lease)
        prompt = lease.tokenizer.encode("Q: one\nA:")
        text, done = run(lease, "Q: one\nA:")
    assert done.reason == "length" and done.metrics.eval_count == 80
    assert caches[0].tokens[:4] == prompt[:4]  # the kept tokens were evaluated again
    with setup.kernel.scheduler.acquire(setup.model("plain", endless=True), options) as lease:
        assert run(lease, "Q: one\nA:")[0] == text  # the same tokens in the cache as without


def test_engine_errors_reach_the_request_and_their_detail_the_log(make_fake, caplog):
    setup = make_fake()
    model = setup.model()
    with setup.kernel.scheduler.acquire(model, GREEDY) as lease:
        lease.runner.forward = lambda batch, **_: (_ for _ in ()).throw(
            RuntimeError("boom at /some/path")
        )
        with pytest.raises(OllamaError) as caught:
            run(lease, "Q: one\nA:")
    assert caught.value.message == "model runner failed (the server log has the details)"
    assert "boom at /some/path" in caplog.text


def test_close_unloads_everything(make_fake):
    setup = make_fake()
    model = setup.model()
    scheduler = setup.kernel.scheduler
    scheduler.acquire(model, GREEDY).release()
    scheduler.close()
    assert scheduler.ps() == [] and setup.runner.closed
    with pytest.raises(OllamaError):
        scheduler.acquire(model, GREEDY)
