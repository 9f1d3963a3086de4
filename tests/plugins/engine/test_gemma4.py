"""gemma4 on the graph engine, beyond its agreement with llama.cpp (``test_architectures``):
the widths each kind of layer reads, the values a block without ``attn_v`` takes, what is
refused at create by name, and Ollama's one-file layout with its towers beside the decoder."""

from __future__ import annotations

import numpy as np
import pytest
from ollamakit_engine import load_runner
from ollamakit_engine.hparams import read_hparams
from ollamakit_engine.vision import attach_vision
from ollamakit_ggml import GgmlBackend

from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf import GGUFFile
from ollamakit.testing import architectures as fixtures

from .test_architecture_refusals import check, rewrite


@pytest.fixture(scope="module")
def gemma4(tmp_path_factory):
    return fixtures.build("gemma4", tmp_path_factory.mktemp("gemma4") / "gemma4.gguf")


def first_logits(path) -> np.ndarray:
    runner = load_runner(
        str(path), GgmlBackend(), {"num_thread": 2, "kv_cache_type": "f32"}, with_tokenizer=False
    )
    try:
        ids = fixtures.prompt_ids(fixtures.PROMPTS[2])
        return runner.forward([(runner.new_cache(fixtures.NUM_CTX), ids)])[0]
    finally:
        runner.close()


def test_each_kind_of_layer_has_its_own_heads(gemma4):
    with GGUFFile.open(gemma4) as gguf:
        hp = read_hparams(gguf.metadata)
    local, full = hp.layer(0), hp.layer(1)
    assert hp.swa_layers == (True, False, True, False)
    assert (local.head_dim, local.n_head_kv, local.rope_dim) == (16, 2, 16)
    assert (full.head_dim, full.n_head_kv, full.rope_dim) == (32, 1, 32)
    assert hp.layer(2) is local and hp.layer(3) is hp
    assert hp.attn_scale == 1.0 and hp.value_norm and hp.values_from_keys


def test_a_block_without_values_attends_over_its_keys_projection(gemma4, tmp_path):
    """The global blocks have no ``attn_v``: given one equal to ``attn_k``, they answer the
    same; given another, they do not."""
    with GGUFFile.open(gemma4) as gguf:
        keys = {i: gguf.tensor(f"blk.{i}.attn_k.weight") for i in (1, 3)}
    extra = {f"blk.{i}.attn_v.weight": k.astype(np.float16) for i, k in keys.items()}
    same = rewrite(gemma4, tmp_path / "same.gguf", add=extra)
    other = {name: -value for name, value in extra.items()}
    flipped = rewrite(gemma4, tmp_path / "other.gguf", add=other)
    base = first_logits(gemma4)
    np.testing.assert_array_equal(first_logits(same), base)
    assert np.abs(first_logits(flipped) - base).max() > 0.01


@pytest.mark.parametrize(
    "key,value,named",
    [
        ("embedding_length_per_layer_input", 256, "per-layer embeddings"),
        ("attention.shared_kv_layers", 2, "share another layer's keys and values"),
        ("expert_count", 4, "experts"),
        ("attention.head_count_kv", [2, 1, 1, 1], "differ within a kind of layer"),
        ("attention.value_length_swa", 32, "keys and values of different widths"),
        ("attention.sliding_window_pattern", None, "lacks gemma4.attention.sliding_window_pattern"),
    ],
)
def test_what_the_engine_does_not_run_is_refused_by_name(gemma4, tmp_path, key, value, named):
    path = rewrite(gemma4, tmp_path / "m.gguf", metadata={f"gemma4.{key}": value})
    with pytest.raises(InvalidModelFile, match=named):
        check(path)


def test_ollamas_file_with_its_towers_runs_as_text(gemma4, tmp_path):
    """Ollama's gemma4 files hold the vision and audio towers beside the decoder
    (``gemma4.vision.*``/``gemma4.audio.*`` keys, ``v.``/``a.``/``mm.`` tensors): the decoder
    runs as without them, and the runner has no vision (images to it are a 400)."""
    towers = {
        "v.patch_embd.weight": np.zeros((8, 48), np.float16),
        "v.blk.0.attn_q.weight": np.zeros((8, 8), np.float16),
        "a.blk.0.attn_q.weight": np.zeros((8, 8), np.float16),
        "mm.input_projection.weight": np.zeros((64, 8), np.float16),
    }
    keys = {"gemma4.vision.block_count": 1, "gemma4.audio.block_count": 1}
    path = rewrite(gemma4, tmp_path / "ollama.gguf", metadata=keys, add=towers)
    check(path)
    runner = load_runner(
        str(path), GgmlBackend(), {"num_thread": 2, "kv_cache_type": "f32"}, with_tokenizer=False
    )
    try:
        attach_vision(runner, None)
        assert runner.vision is None
    finally:
        runner.close()
    np.testing.assert_array_equal(first_logits(path), first_logits(gemma4))
    # without the keys that say they are towers, such tensors are a kind of model not run
    bare = rewrite(gemma4, tmp_path / "bare.gguf", add=towers)
    with pytest.raises(InvalidModelFile, match=r"has tensor a\.blk\.0\.attn_q\.weight"):
        check(bare)
