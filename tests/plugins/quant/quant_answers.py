"""llama.cpp's quantizations recorded as hashes, so bit-exactness is checked without llama.cpp.

``record_llamacpp.py`` writes ``llamacpp_answers.json`` with llama-cpp-python installed;
``test_llamacpp_answers.py`` compares our quantizers with it anywhere. Both build their inputs and
hash their outputs here, so recording and checking cannot drift apart.

What is hashed, and why:

* blocks: the sha256 of the concatenated encoded blocks of one input array, plus the sha256 of
  that input (as F16 bytes) so that a changed input generator reads as "re-record", not as a
  quantizer bug.
* whole models: per tensor, its ggml type and the sha256 of its data bytes, in file order, plus
  ``general.file_type`` and ``general.quantization_version``. Not the whole file: the metadata
  (key order, strings llama.cpp adds or drops, alignment padding) may differ legitimately
  while every tensor is still bit-identical. A tensor encoded to one ggml type gives the same
  bytes whatever the file type (no importance matrix), so each (tensor, ggml type) digest is
  stored once and the file types list only the types they chose.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from test_blocks import f16_rows

from ollamakit.lib.gguf import GGUFFile

FIXTURE = Path(__file__).with_name("llamacpp_answers.json")

# The block-level inputs, per block type: the rows test_blocks uses (random rows at many scales
# and the awkward rows: zeros, -0.0, constant, one-signed, sparse, outliers, the smallest
# subnormal, rounding ties), a larger random set, and random rows in F16's subnormal range.
# Seeds differ per type so that each type sees its own random data.
BLOCK_CASES = ("edges", "many", "subnormal")


def block_case(case: str, type_index: int) -> dict:
    """The parameters of one block input (they are stored in the fixture beside its hash)."""
    if case == "edges":
        return {"case": case, "rows": 48, "width": 512, "seed": type_index}
    if case == "many":
        return {"case": case, "rows": 2048, "width": 512, "seed": 1000 + type_index}
    if case == "subnormal":
        return {"case": case, "rows": 32, "width": 512, "seed": 2000 + type_index}
    raise ValueError(f"unknown block case {case}")


def block_input(params: dict) -> np.ndarray:
    """F16-representable float32 values, ``rows`` x ``width``, from a case's parameters."""
    rows, width, seed = params["rows"], params["width"], params["seed"]
    if params["case"] in ("edges", "many"):
        return f16_rows(rows, width, seed=seed)
    if params["case"] == "subnormal":
        rng = np.random.default_rng(seed)
        # F16 subnormals lie below 2**-14; scales from 2**-24 up to just past the boundary, and
        # every fourth row carries one normal value so mixed magnitudes share a block.
        x = rng.standard_normal((rows, width)) * np.exp2(rng.uniform(-24, -13, (rows, 1)))
        x[::4, 3] = 0.5
        return x.astype(np.float16).astype(np.float32)
    raise ValueError(f"unknown block case {params['case']}")


def sha256(data) -> str:
    return hashlib.sha256(memoryview(np.ascontiguousarray(data)).cast("B")).hexdigest()


def input_digest(x: np.ndarray) -> str:
    return sha256(x.astype(np.float16))


def tensor_digests(path: str | Path) -> dict:
    """A GGUF's tensors in file order as [name, ggml type, sha256 of the data], plus the two
    metadata values a quantizer sets."""
    with GGUFFile.open(path) as gguf:
        return {
            "tensors": [[t.name, t.type_name, sha256(gguf.raw(t.name))] for t in gguf.tensors],
            "general.file_type": gguf.metadata.get("general.file_type"),
            "general.quantization_version": gguf.metadata.get("general.quantization_version"),
        }


def source_digest(path: str | Path) -> str:
    """One sha256 over every tensor's name, type, shape and data: what quantization reads."""
    digest = hashlib.sha256()
    with GGUFFile.open(path) as gguf:
        for t in gguf.tensors:
            digest.update(f"{t.name}:{t.type_name}:{list(t.shape)}\n".encode())
            digest.update(memoryview(np.ascontiguousarray(gguf.raw(t.name))).cast("B"))
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def load() -> dict:
    return json.loads(FIXTURE.read_text())
