"""Fixtures for the quantizer tests: the llama.cpp oracle and the F16 SmolLM2 source."""

import pytest
import quant_reference


@pytest.fixture(scope="session")
def reference():
    """The llama.cpp oracle; tests that need it skip cleanly without llama-cpp-python."""
    if not quant_reference.available():
        pytest.skip("llama-cpp-python is not installed: no llama.cpp reference to compare with")
    return quant_reference


@pytest.fixture(scope="session")
def smollm2_f16_path():
    """SmolLM2-135M-Instruct dequantized to F16 (made once, then cached)."""
    return quant_reference.smollm2_f16()
