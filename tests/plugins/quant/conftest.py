from pathlib import Path

import pytest
import quant_reference

from ollamakit.testing.models import CACHE, smollm2_q4_1


@pytest.fixture(scope="session")
def reference():
    """The llama.cpp oracle; tests that need it skip cleanly without llama-cpp-python."""
    if not quant_reference.available():
        pytest.skip("llama-cpp-python is not installed: no llama.cpp reference to compare with")
    return quant_reference


def smollm2_f16() -> Path:
    """SmolLM2-135M-Instruct as an F16 GGUF (its Q4_1 tensors dequantized), cached."""
    from ollamakit_quant.convert import to_float

    target = CACHE / "models" / "SmolLM2-135M-Instruct.F16.gguf"
    if not target.exists():
        to_float(smollm2_q4_1(), target, "F16")
    return target


@pytest.fixture(scope="session")
def smollm2_f16_path():
    return smollm2_f16()
