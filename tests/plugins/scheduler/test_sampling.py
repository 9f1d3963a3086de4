import numpy as np
import pytest

from ollamakit.options import Options
from ollamakit_scheduler.sampling import Sampler, log_softmax, token_logprobs


def sampler(**kw):
    return Sampler(Options(**{"seed": 7, **kw}), num_ctx=128)


def draws(s, logits, n=4000, history=()):
    return np.array([s.sample(logits, history) for _ in range(n)])


LOGITS = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))


def test_temperature_zero_is_greedy_whatever_the_rest():
    logits = np.array([0.1, 3.0, 2.9, -1.0], dtype=np.float32)
    assert {
        sampler(temperature=0, top_k=0, top_p=0.1, min_p=0.9).sample(logits) for _ in range(20)
    } == {1}


def test_top_k_one_is_greedy():
    assert set(draws(sampler(temperature=2.0, top_k=1, top_p=1.0), LOGITS, 200)) == {0}


def test_unfiltered_draws_follow_the_softmax():
    counts = (
        np.bincount(draws(sampler(temperature=1.0, top_k=0, top_p=1.0), LOGITS), minlength=4) / 4000
    )
    assert np.allclose(counts, [0.5, 0.3, 0.15, 0.05], atol=0.03)


def test_temperature_sharpens_and_flattens():
    cold = (
        np.bincount(draws(sampler(temperature=0.5, top_k=0, top_p=1.0), LOGITS), minlength=4) / 4000
    )
    expected = np.array([0.5, 0.3, 0.15, 0.05]) ** 2
    assert np.allclose(cold, expected / expected.sum(), atol=0.03)


def test_top_p_keeps_the_smallest_set_reaching_p():
    # cumulative 0.5, 0.8, 0.95: p=0.75 keeps two tokens, p=0.8 too (reached exactly), 0.81 three
    assert set(draws(sampler(temperature=1.0, top_k=0, top_p=0.75), LOGITS, 600)) == {0, 1}
    assert set(draws(sampler(temperature=1.0, top_k=0, top_p=0.81), LOGITS, 600)) == {0, 1, 2}


def test_min_p_is_relative_to_the_best_token():
    assert set(draws(sampler(temperature=1.0, top_k=0, top_p=1.0, min_p=0.55), LOGITS, 600)) == {
        0,
        1,
    }
    assert set(draws(sampler(temperature=1.0, top_k=0, top_p=1.0, min_p=0.25), LOGITS, 600)) == {
        0,
        1,
        2,
    }


def test_typical_p_drops_the_most_surprising_tokens():
    # entropy of (0.5, 0.3, 0.15, 0.05) is about 1.14 nats; -log p: 0.69, 1.20, 1.90, 3.0
    picked = set(draws(sampler(temperature=1.0, top_k=0, top_p=1.0, typical_p=0.5), LOGITS, 600))
    assert picked == {0, 1}


def test_penalties_follow_llama_cpp():
    s = sampler(repeat_penalty=2.0, presence_penalty=0.5, frequency_penalty=0.25)
    logits = np.array([4.0, -4.0, 1.0, 1.0], dtype=np.float32)
    out = s.apply_penalties(logits, [0, 0, 1, 3])
    # token 0: 4/2 - 2*0.25 - 0.5; token 1: -4*2 - 0.25 - 0.5; token 2 untouched; token 3: 1/2 - 0.75
    assert np.allclose(out, [1.0, -8.75, 1.0, -0.25])
    assert np.allclose(logits, [4.0, -4.0, 1.0, 1.0])  # the engine's array is not modified


def test_repeat_window():
    logits = np.array([1.0, 1.0, 1.0], dtype=np.float32)
    out = sampler(repeat_penalty=2.0, repeat_last_n=2).apply_penalties(logits, [0, 1, 2])
    assert np.allclose(out, [1.0, 0.5, 0.5])
    assert np.allclose(
        sampler(repeat_penalty=2.0, repeat_last_n=0).apply_penalties(logits, [0]), logits
    )
    whole = Sampler(Options(repeat_penalty=2.0, repeat_last_n=-1), num_ctx=3).apply_penalties(
        logits, [0, 1, 2]
    )
    assert np.allclose(whole, [0.5, 0.5, 0.5])


@pytest.mark.parametrize("penalty", [0.0, 1e-45, 2.0])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_a_forbidden_token_stays_forbidden_whatever_the_penalty(penalty, temperature):
    # A format's mask sets forbidden tokens to -inf; repeat_penalty 0 once turned a repeated
    # one into NaN (-inf * 0), which argmax and the draw then picked.
    logits = np.array([-np.inf, 3.0, -np.inf, -1.0], dtype=np.float32)
    s = sampler(
        temperature=temperature, repeat_penalty=penalty, presence_penalty=0.5, frequency_penalty=0.5
    )
    picked = {s.sample(logits, [0, 2, 1, 3, 0]) for _ in range(200)}
    assert picked <= {1, 3}
    assert np.all(np.isfinite(s.apply_penalties(logits, [0, 1, 2, 3])[[1, 3]]))


def test_penalty_changes_the_greedy_choice():
    logits = np.array([2.0, 1.5], dtype=np.float32)
    assert sampler(temperature=0, repeat_penalty=1.5).sample(logits, [0]) == 1


def test_same_seed_same_draws_random_seed_varies():
    first = draws(sampler(temperature=1.0, top_k=0, top_p=1.0, seed=123), LOGITS, 50)
    again = draws(sampler(temperature=1.0, top_k=0, top_p=1.0, seed=123), LOGITS, 50)
    assert (first == again).all()
    unseeded = [
        tuple(draws(sampler(temperature=1.0, top_k=0, top_p=1.0, seed=-1), LOGITS, 30))
        for _ in range(3)
    ]
    assert len(set(unseeded)) > 1


def test_large_vocabulary_is_fast_enough():
    import time

    logits = np.random.default_rng(0).standard_normal(262_144).astype(np.float32)
    s = sampler(temperature=0.8, top_k=40, top_p=0.9, repeat_penalty=1.1)
    started = time.perf_counter()
    for _ in range(20):
        s.sample(logits, list(range(64)))
    assert (time.perf_counter() - started) / 20 < 0.05


def test_logprobs():
    logits = np.array([2.0, 1.0, 0.0], dtype=np.float32)
    expected = log_softmax(logits)
    assert np.isclose(np.exp(expected).sum(), 1.0)
    logprob, top = token_logprobs(logits, 1, 2)
    assert logprob == pytest.approx(expected[1])
    assert [t for t, _ in top] == [0, 1] and top[0][1] == pytest.approx(expected[0])
