"""The independent reference answers the tests check against: llama.cpp's token ids and greedy
continuations, sentence-transformers' embeddings. They live in the shared folder beside the
repository (``../shared/reference``), wherever the repository is checked out."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "reference"


@cache
def reference_answers(name: str):
    """The parsed JSON file ``name`` of the reference folder. A missing file is an error, not a
    skip: a test that quietly checks nothing would pass for the wrong reason."""
    path = REFERENCE_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"reference answers not found: {path} (the shared folder belongs beside the repository)")
    return json.loads(path.read_text(encoding="utf-8"))
