"""A short seeded fuzz run of each target (``fuzz_targets.py``, ``fuzz_requests.py``,
``fuzz_configs.py``): every case a parse, an answer or a clean 4xx. ``benchmarks/bench_fuzz.py``
runs the same targets for a long time. On a finding, hypothesis shrinks the case and the test
prints the smallest one."""

from __future__ import annotations

import pytest

from fuzz_configs import ConfigTarget
from fuzz_requests import RequestTarget
from fuzz_targets import GGUFTarget, SafetensorsTarget, TorchCheckpointTarget, fuzz

SEED = 20261207
# Cases per target: together about 20 s on two cores.
CASES = {
    GGUFTarget: 500,
    SafetensorsTarget: 500,
    TorchCheckpointTarget: 500,
    RequestTarget: 500,
    ConfigTarget: 300,
}


def fail(finding):
    raise AssertionError(
        f"{finding.kind} in {finding.target}: {finding.detail}\ncase: {finding.case}"
    )


@pytest.mark.parametrize("make", list(CASES), ids=lambda make: make.name)
def test_every_case_is_a_parse_an_answer_or_a_clean_4xx(make):
    target = make()
    try:
        ran = fuzz(target, CASES[make], SEED, fail, shrink=True)
    finally:
        target.close()
    assert ran >= CASES[make] * 0.9  # the run was not cut short
