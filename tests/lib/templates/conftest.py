import pytest


@pytest.fixture(scope="session")
def smollm2_chat_template():
    """SmolLM2's own ``tokenizer.chat_template``, read from the real GGUF file."""
    gguf = pytest.importorskip("gguf")
    from ollamakit.testing.models import smollm2_q4_1

    reader = gguf.GGUFReader(str(smollm2_q4_1()))
    field = reader.fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")
