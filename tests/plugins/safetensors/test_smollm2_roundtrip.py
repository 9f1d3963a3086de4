"""SmolLM2 as a Hugging Face folder: its tensors (dequantized from the real GGUF, stored as F16)
in the Hugging Face layout, with a tokenizer.json built from its vocabulary. Converting the
folder must give back the same GGUF tensors and tokenizer, and the same greedy tokens as a GGUF
written directly from those weights."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ollamakit.testing import models
from ollamakit.lib.gguf.reader import GGUFFile
from ollamakit.lib.gguf.writer import GGUFWriter

from hf_export import SMOLLM_PRE_TOKENIZER, export_llama, folder_files

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def smollm2_sources(tmp_path_factory):
    """(the Hugging Face folder, a GGUF written directly from the same F16 weights)."""
    root = tmp_path_factory.mktemp("smollm2")
    original = models.smollm2_q4_1()
    expected = export_llama(
        original, root / "hf", dtype=np.float16, pre_tokenizer=SMOLLM_PRE_TOKENIZER
    )
    direct = root / "direct.gguf"
    with GGUFFile.open(original) as gguf:
        writer = GGUFWriter(direct)
        writer.add_metadata(gguf.metadata, gguf.metadata_types)
    writer.add("general.file_type", 1)
    for name, array in expected.items():
        writer.add_tensor(name, array)
    writer.write()
    del expected
    yield root / "hf", direct
    shutil.rmtree(root, ignore_errors=True)


def put(kernel, path, scratch) -> str:
    copy = scratch / path.name
    shutil.copyfile(path, copy)
    digest, _ = kernel.store.add_file(copy)
    return digest


def test_converted_smollm2_matches_its_gguf(client, kernel, tmp_path, smollm2_sources):
    folder, direct = smollm2_sources
    files = {name: put(kernel, path, tmp_path) for name, path in folder_files(folder).items()}
    reply = client.simulate_post("/api/create", json={"model": "smol-hf", "files": files})
    statuses = [line for line in reply.text.splitlines()]
    assert reply.status_code == 200 and '"converting model"' in statuses[0]
    assert any("using autodetected template chatml" in s for s in statuses)
    direct_digest = put(kernel, direct, tmp_path)
    assert (
        client.simulate_post(
            "/api/create", json={"model": "smol-gguf", "files": {"smol.gguf": direct_digest}}
        ).status_code
        == 200
    )

    converted_path = kernel.store.get("smol-hf").model_path
    with GGUFFile.open(converted_path) as got, GGUFFile.open(direct) as want:
        for key in (
            "tokenizer.ggml.model",
            "tokenizer.ggml.pre",
            "tokenizer.ggml.tokens",
            "tokenizer.ggml.token_type",
            "tokenizer.ggml.merges",
            "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.unknown_token_id",
            "tokenizer.ggml.padding_token_id",
            "tokenizer.chat_template",
            "llama.block_count",
            "llama.context_length",
            "llama.embedding_length",
            "llama.feed_forward_length",
            "llama.attention.head_count",
            "llama.attention.head_count_kv",
            "llama.rope.dimension_count",
            "general.file_type",
        ):
            assert got.metadata.get(key) == want.metadata.get(key), key
        assert {t.name for t in got.tensors} == {t.name for t in want.tensors}
        for tensor in want.tensors:
            assert got.tensor_info(tensor.name).type_name == tensor.type_name, tensor.name
            assert np.array_equal(
                np.asarray(got.raw(tensor.name)), np.asarray(want.raw(tensor.name))
            ), tensor.name

    answers = []
    for name in ("smol-hf", "smol-gguf"):
        reply = client.simulate_post(
            "/api/generate",
            json={
                "model": name,
                "prompt": "What is the capital of France?",
                "stream": False,
                "options": {"temperature": 0, "num_predict": 12},
            },
        )
        assert reply.status_code == 200, reply.text
        answers.append((reply.json["response"], reply.json["context"]))
    assert answers[0] == answers[1]
    assert "Paris" in answers[0][0]  # a working model, not merely two equally broken ones
    assert len(answers[0][1]) > 12
