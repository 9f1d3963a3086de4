"""Record llama.cpp's quantizations into ``llamacpp_answers.json`` (needs llama-cpp-python).

    .venv/bin/python tests/plugins/quant/record_llamacpp.py

Re-run it after a deliberate change to the inputs (``quant_answers.py``, ``f16_rows``) or to the
F16 converter; review the diff of the fixture like any other change. It records:

* for every block type, llama.cpp's ``quantize_row_*_ref`` of each block input (hashes);
* SmolLM2-135M-Instruct made F16 by our own converter (checked deterministic by converting it
  twice), quantized by ``llama_model_quantize`` to each of the fourteen file types (per-tensor
  types and hashes, ``general.file_type``, ``general.quantization_version``).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import quant_answers as answers
import quant_reference as reference

from ollamakit.testing.models import smollm2_q4_1
from ollamakit_quant.convert import to_float


def record_blocks() -> dict:
    blocks = {}
    for index, type_name in enumerate(reference.BLOCKS):
        blocks[type_name] = []
        for case in answers.BLOCK_CASES:
            params = answers.block_case(case, index)
            x = answers.block_input(params)
            encoded = reference.reference_blocks(type_name, x)
            blocks[type_name].append(
                {
                    **params,
                    "input_sha256": answers.input_digest(x),
                    "sha256": answers.sha256(encoded),
                }
            )
        print(f"blocks {type_name}: {len(blocks[type_name])} inputs", flush=True)
    return blocks


def deterministic_f16(source: Path, folder: Path) -> Path:
    """Our converter's F16 copy of ``source``; made twice, and the two must be identical."""
    first = to_float(source, folder / "a.F16.gguf", "F16")
    second = to_float(source, folder / "b.F16.gguf", "F16")
    if answers.file_sha256(first) != answers.file_sha256(second):
        sys.exit("to_float is not deterministic: two conversions of the same file differ")
    second.unlink()
    return first


def record_model(folder: Path) -> dict:
    source = smollm2_q4_1()
    f16 = deterministic_f16(source, folder)
    names: list[str] | None = None
    digests: dict[str, dict[str, str]] = {}
    file_types = {}
    for file_type in reference.FTYPES:
        out = reference.reference_file(f16, folder / f"{file_type}.gguf", file_type, threads=2)
        found = answers.tensor_digests(out)
        out.unlink()
        order = [name for name, _, _ in found["tensors"]]
        if names is None:
            names = order
        elif order != names:
            sys.exit(f"llama.cpp wrote the tensors of {file_type} in another order")
        for name, type_name, digest in found["tensors"]:
            known = digests.setdefault(name, {}).setdefault(type_name, digest)
            if known != digest:
                sys.exit(f"llama.cpp encoded {name} as {type_name} differently in two file types")
        file_types[file_type] = {
            "general.file_type": found["general.file_type"],
            "general.quantization_version": found["general.quantization_version"],
            "types": [type_name for _, type_name, _ in found["tensors"]],
        }
        print(f"model {file_type}: {len(order)} tensors", flush=True)
    return {
        "source": source.name,
        "source_sha256": answers.file_sha256(source),
        "f16_tensors_sha256": answers.source_digest(f16),
        "tensors": names,
        "digests": digests,
        "file_types": file_types,
    }


def compact_json(value, indent: str = "") -> str:
    """JSON with every container of plain values on one line (one line per tensor, per block
    input, per list of types): small, and its diffs point at what changed."""
    children = (
        list(value.values())
        if isinstance(value, dict)
        else value
        if isinstance(value, list)
        else []
    )
    if not any(isinstance(child, (dict, list)) for child in children):
        return json.dumps(value)
    inner = indent + " "
    if isinstance(value, dict):
        lines = [
            f"{inner}{json.dumps(key)}: {compact_json(child, inner)}"
            for key, child in value.items()
        ]
        return "{\n" + ",\n".join(lines) + "\n" + indent + "}"
    return (
        "[\n"
        + ",\n".join(inner + compact_json(child, inner) for child in value)
        + "\n"
        + indent
        + "]"
    )


def main() -> None:
    if not reference.available():
        sys.exit("llama-cpp-python is not installed: nothing to record")
    import llama_cpp

    with tempfile.TemporaryDirectory() as folder:
        fixture = {
            "about": "llama.cpp's quantizations as sha256 hashes; written by record_llamacpp.py, "
            "read by test_llamacpp_answers.py (see quant_answers.py for what is hashed)",
            "llama_cpp_python": llama_cpp.__version__,
            "blocks": record_blocks(),
            "smollm2": record_model(Path(folder)),
        }
    text = compact_json(fixture)
    temp = answers.FIXTURE.with_suffix(".tmp")
    temp.write_text(text + "\n")
    temp.replace(answers.FIXTURE)
    print(f"wrote {answers.FIXTURE} ({len(text)} bytes)")


if __name__ == "__main__":
    main()
