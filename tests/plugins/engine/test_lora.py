"""LoRA adapters on the graph engine: the low-rank path equals the merged weights, changes the
answers, and an adapter that does not fit its model is refused with a clear message."""

from __future__ import annotations

import numpy as np
import pytest
from ollamakit_engine import load_runner
from ollamakit_ggml import GgmlBackend
from ollamakit.lib.gguf.adapter import lora_pairs
from ollamakit.lib.gguf.reader import GGUFFile
from ollamakit.lib.gguf.writer import GGUFWriter

from ollamakit.errors import BadRequest, InvalidModelFile
from ollamakit.testing.gguf_factory import make_gguf, tiny_llama
from ollamakit.testing.models import random_lora

PROMPT = [5, 72, 101, 108, 108, 111, 33, 9, 40, 50, 60]
OPTIONS = {"num_thread": 2}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    base = tiny_llama(root / "base.gguf")
    adapter = random_lora(base, root / "adapter.gguf", rank=4, alpha=8.0, strength=1.0)
    return base, adapter


def merged(base, adapter, target):
    """The base with every adapted matrix replaced by W + scale * B A, in float32."""
    with GGUFFile.open(base) as model, GGUFFile.open(adapter) as lora:
        deltas = {
            pair.target: pair.scale * lora.tensor(pair.b.name) @ lora.tensor(pair.a.name)
            for pair in lora_pairs(lora, model)
        }
        with GGUFWriter(target) as out:
            out.add_metadata(model.metadata, model.metadata_types)
            for info in model.tensors:
                weight = model.tensor(info.name).astype(np.float32)
                out.add_tensor(
                    info.name, weight + deltas[info.name] if info.name in deltas else weight
                )
    return target


def logits(path, adapters=()):
    runner = load_runner(
        path, GgmlBackend(), OPTIONS, with_tokenizer=False, adapters=list(adapters)
    )
    try:
        cache = runner.new_cache(64)
        return runner.forward([(cache, PROMPT)])[0], runner.memory_bytes - cache.nbytes
    finally:
        runner.close()


def test_the_adapter_equals_its_merged_weights(files, tmp_path):
    base, adapter = files
    with_adapter, _ = logits(base, [adapter])
    reference, _ = logits(merged(base, adapter, tmp_path / "merged.gguf"))
    plain, _ = logits(base)
    assert np.abs(with_adapter - plain).max() > 0.5  # the adapter matters here
    np.testing.assert_allclose(with_adapter, reference, atol=2e-4 * np.abs(reference).max())


def test_the_adapter_is_held_beside_the_mapped_base(files):
    base, adapter = files
    _, plain = logits(base)
    _, tuned = logits(base, [adapter])
    with GGUFFile.open(adapter) as lora:
        assert tuned - plain == sum(info.nbytes for info in lora.tensors)


def test_an_array_backend_refuses_an_adapter_rather_than_ignore_it(files):
    from ollamakit_numpy import NumpyBackend

    base, adapter = files
    with pytest.raises(BadRequest, match="LoRA adapters need the ggml compute backend"):
        load_runner(base, NumpyBackend(), OPTIONS, with_tokenizer=False, adapters=[adapter])


def test_an_adapter_for_other_shapes_is_refused(files, tmp_path):
    base, _ = files
    wider = tiny_llama(tmp_path / "wider.gguf", n_embd=32, n_ff=64)
    adapter = random_lora(wider, tmp_path / "wider-lora.gguf")
    with pytest.raises(InvalidModelFile, match="do not fit its shape"):
        load_runner(base, GgmlBackend(), OPTIONS, with_tokenizer=False, adapters=[adapter])


def lora_file(path, tensors, **metadata):
    meta = {
        "general.type": "adapter",
        "general.architecture": "llama",
        "adapter.type": "lora",
        "adapter.lora.alpha": 4.0,
    }
    meta.update(metadata)
    return make_gguf(path, {k: v for k, v in meta.items() if v is not None}, tensors)


A = np.zeros((2, 64), np.float32)  # rank 2 over a 64-wide input
B = np.zeros((64, 2), np.float32)


@pytest.mark.parametrize(
    "tensors,metadata,message",
    [
        (
            {"blk.0.attn_q.weight.lora_a": A, "blk.0.attn_q.weight.lora_b": B},
            {"general.architecture": "qwen2"},
            'for the "qwen2" architecture',
        ),
        (
            {"blk.0.attn_q.weight.lora_a": A, "blk.0.attn_q.weight.lora_b": B},
            {"adapter.type": "control_vector"},
            "only LoRA adapters",
        ),
        ({"blk.0.attn_q.weight.lora_a": A}, {}, "lacks its lora_b"),
        (
            {
                "blk.0.attn_q.weight.lora_a": A,
                "blk.0.attn_q.weight.lora_b": np.zeros((64, 3), np.float32),
            },
            {},
            "disagree on their rank",
        ),
        (
            {"blk.9.attn_q.weight.lora_a": A, "blk.9.attn_q.weight.lora_b": B},
            {},
            "which the model does not have",
        ),
        ({"token_embd.weight.lora_a": A, "token_embd.weight.lora_b": B}, {}, "are not supported"),
        ({"blk.0.attn_q.weight": A}, {}, "neither a lora_a nor a lora_b"),
        ({"blk.0.attn_norm.weight.lora_a": A[:, :1]}, {}, "has no LoRA tensors"),
    ],
)
def test_lora_pairs_name_what_does_not_fit(files, tmp_path, tensors, metadata, message):
    base, _ = files
    path = lora_file(tmp_path / "bad.gguf", tensors, **metadata)
    with (
        GGUFFile.open(path) as adapter,
        GGUFFile.open(base) as model,
        pytest.raises(InvalidModelFile, match=message),
    ):
        lora_pairs(adapter, model)


def test_scale_is_alpha_over_rank_and_norm_vectors_are_skipped(files, tmp_path):
    base, _ = files
    tensors = {
        "blk.0.attn_q.weight.lora_a": A,
        "blk.0.attn_q.weight.lora_b": B,
        "blk.0.attn_norm.weight.lora_a": A[:, :1],
    }
    with (
        GGUFFile.open(lora_file(tmp_path / "a.gguf", tensors)) as adapter,
        GGUFFile.open(base) as model,
    ):
        (pair,) = lora_pairs(adapter, model)
    assert (pair.target, pair.rank, pair.scale) == ("blk.0.attn_q.weight", 2, 2.0)
    with (
        GGUFFile.open(
            lora_file(tmp_path / "b.gguf", tensors, **{"adapter.lora.alpha": None})
        ) as adapter,
        GGUFFile.open(base) as model,
    ):
        assert lora_pairs(adapter, model)[0].scale == 1.0  # no alpha: llama.cpp's scale of 1
