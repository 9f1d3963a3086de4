"""The independent reference answers the tests check against: llama.cpp's token ids and greedy
continuations, sentence-transformers' embeddings. They are kept in the repository, in
``tests/reference`` (its README says where each file came from), so a fresh clone needs nothing
beside it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

# ollamakit/testing/reference.py -> the repository root, which the tests run from.
REFERENCE_DIR = Path(__file__).resolve().parents[2] / "tests" / "reference"


@cache
def reference_answers(name: str):
    """The parsed JSON file ``name`` of the reference folder. A missing file is an error, not a
    skip: a test that quietly checks nothing would pass for the wrong reason."""
    path = REFERENCE_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"reference answers not found: {path} (run the tests from a checkout of the repository)"
        )
    return json.loads(path.read_text(encoding="utf-8"))
