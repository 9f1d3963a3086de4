"""Our quantizers against llama.cpp's recorded answers (``llamacpp_answers.json``), bit for bit.

These need no llama-cpp-python, so they hold wherever the suite runs; the live comparisons in
test_blocks.py and test_quantizer.py re-check against llama.cpp itself where it is installed.
After a deliberate change of inputs or of the F16 converter, re-record with record_llamacpp.py.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import quant_answers as answers
import quant_reference
import test_blocks

from ollamakit.lib.gguf import GGUFFile
from ollamakit_quant.encode import encode
from ollamakit_quant.quantizer import plan, quantize_file

RECORDED = answers.load()
FILE_TYPES = list(quant_reference.FTYPES)  # all fourteen
RERECORD = "the input differs from the recorded one; re-record with record_llamacpp.py"


def test_the_fixture_covers_every_type():
    assert sorted(RECORDED["blocks"]) == sorted(quant_reference.BLOCKS)
    assert all(len(cases) == len(answers.BLOCK_CASES) for cases in RECORDED["blocks"].values())
    assert sorted(RECORDED["smollm2"]["file_types"]) == sorted(FILE_TYPES)


@pytest.mark.parametrize("type_name", list(quant_reference.BLOCKS))
def test_blocks_equal_recorded_llama_cpp(type_name):
    for recorded in RECORDED["blocks"][type_name]:
        x = answers.block_input(recorded)
        assert answers.input_digest(x) == recorded["input_sha256"], (
            f"{recorded['case']}: {RERECORD}"
        )
        block = test_blocks.BLOCK[type_name]
        ours = test_blocks.ENCODERS[type_name](x.reshape(-1, block))
        assert ours.shape == (x.size // block, quant_reference.BLOCKS[type_name][1])
        assert answers.sha256(ours) == recorded["sha256"], (
            f"{type_name} differs from llama.cpp on '{recorded['case']}'"
        )


@pytest.fixture(scope="module")
def smollm2_f16(smollm2_f16_path):
    """The cached F16 SmolLM2, checked to be the very source the answers were recorded from."""
    assert answers.source_digest(smollm2_f16_path) == RECORDED["smollm2"]["f16_tensors_sha256"], (
        f"{smollm2_f16_path} is not the F16 the answers were recorded from: a stale cached copy "
        "(delete it), or to_float or the model changed (re-record with record_llamacpp.py)"
    )
    return smollm2_f16_path


def expected_tensors(file_type: str) -> list[list[str]]:
    """[name, ggml type, sha256] in file order, as llama.cpp wrote them for ``file_type``."""
    model = RECORDED["smollm2"]
    types = model["file_types"][file_type]["types"]
    return [
        [name, t, model["digests"][name][t]]
        for name, t in zip(model["tensors"], types, strict=True)
    ]


class Encodings:
    """sha256 of each (tensor, ggml type) encoding of the F16 source, each computed once: the
    fourteen file types share most of their choices (1231 distinct of 3808), so checking all
    fourteen costs about a third of quantizing fourteen files."""

    def __init__(self, path):
        self.gguf = GGUFFile.open(path)
        self.pool = ThreadPoolExecutor(2)
        self.digests: dict[tuple[str, str], str] = {}

    def digest(self, name: str, target: str) -> str:
        if (name, target) not in self.digests:
            info = self.gguf.tensor_info(name)
            raw = self.gguf.raw(name)
            data = (
                raw if target == info.type_name else encode(raw, info.type_name, target, self.pool)
            )
            self.digests[name, target] = answers.sha256(data)
        return self.digests[name, target]

    def close(self):
        self.pool.shutdown()
        self.gguf.close()


@pytest.fixture(scope="module")
def encodings(smollm2_f16):
    found = Encodings(smollm2_f16)
    yield found
    found.close()


@pytest.mark.real_model
@pytest.mark.slow
@pytest.mark.parametrize("file_type", FILE_TYPES)
def test_smollm2_tensors_equal_recorded_llama_cpp(encodings, file_type):
    """All fourteen file types, tensor by tensor: SmolLM2 has 576-wide rows (K-quants fall back on
    most matrices), tied embeddings and 30 layers of per-layer choices; the plan must choose
    llama.cpp's type for every tensor, in its order, and the encoders must give its bytes."""
    expected = expected_tensors(file_type)
    chosen = plan(encodings.gguf, file_type)
    assert [n for n, _ in chosen] == [n for n, _, _ in expected], "tensor order differs"
    wrong_type = [(n, t, e) for (n, t), (_, e, _) in zip(chosen, expected) if t != e]
    assert not wrong_type, f"types differ (name, ours, llama.cpp): {wrong_type[:5]}"
    wrong_bytes = [n for n, t, e in expected if encodings.digest(n, t) != e]
    assert not wrong_bytes, f"{len(wrong_bytes)} tensors differ from llama.cpp: {wrong_bytes[:5]}"


@pytest.mark.real_model
@pytest.mark.slow
def test_smollm2_file_equals_recorded_llama_cpp(smollm2_f16, tmp_path):
    """The whole path once, through ``quantize_file`` and the written file: Q4_K_M, the type
    Ollama itself publishes most."""
    out = quantize_file(smollm2_f16, tmp_path / "Q4_K_M.gguf", "Q4_K_M", threads=2)
    found = answers.tensor_digests(out)
    out.unlink()  # ~100 MB
    recorded = RECORDED["smollm2"]["file_types"]["Q4_K_M"]
    assert found["general.file_type"] == recorded["general.file_type"] == 15
    assert found["general.quantization_version"] == recorded["general.quantization_version"]
    assert found["tensors"] == expected_tensors("Q4_K_M")
