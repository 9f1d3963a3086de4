"""What the engine refuses at create (``requirements.check_decoder``, behind the ``check_model``
hook) and at load: a file it cannot run in full is refused with a message naming what is wrong,
never loaded as a neighbouring architecture."""

from __future__ import annotations

import pytest
from ollamakit_engine import load_runner
from ollamakit_engine.requirements import check_decoder
from ollamakit_ggml import GgmlBackend
from ollamakit.lib.gguf import GGUFFile

from ollamakit.errors import BadRequest, InvalidModelFile
from ollamakit.testing import architectures as fixtures
from ollamakit.testing.gguf_factory import make_gguf


def rewrite(source, target, *, metadata=None, drop=(), add=None):
    """``source``'s GGUF with keys changed (None removes one), tensors dropped and tensors
    (numpy arrays, by name) added."""
    with GGUFFile.open(source) as gguf:
        meta = {**gguf.metadata, **(metadata or {})}
        infos = [info for info in gguf.tensors if info.name not in drop]
    raw = source.read_bytes()
    tensors = {
        info.name: (raw[info.offset : info.offset + info.nbytes], info.ggml_type, tuple(info.shape))
        for info in infos
    }
    tensors.update(add or {})
    meta = {k: v for k, v in meta.items() if v is not None}
    return make_gguf(target, meta, tensors, types=fixtures.value_types(meta))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refusals")
    return {
        name: fixtures.build(name, folder / f"{name}.gguf")
        for name in ("mixtral", "qwen3moe", "phi3", "deepseek2", "deepseek2-lite")
    }


def check(path):
    with GGUFFile.open(path) as gguf:
        check_decoder(gguf)


@pytest.mark.parametrize("name", sorted(fixtures.FIXTURES))
def test_every_fixture_passes_the_check(name, tmp_path):
    check(fixtures.build(name, tmp_path / f"{name}.gguf"))


def test_experts_without_an_expert_count_are_not_loaded_as_a_dense_llama(built, tmp_path):
    path = rewrite(
        built["mixtral"],
        tmp_path / "m.gguf",
        metadata={"llama.expert_count": None, "llama.expert_used_count": None},
    )
    with pytest.raises(
        InvalidModelFile,
        match=r"has tensor blk\.0\.ffn_down_exps\.weight, which a llama model .* not supported",
    ):
        check(path)


def test_a_missing_expert_tensor_is_named(built, tmp_path):
    path = rewrite(built["qwen3moe"], tmp_path / "m.gguf", drop=("blk.1.ffn_up_exps.weight",))
    with pytest.raises(InvalidModelFile, match=r"lacks tensor blk\.1\.ffn_up_exps\.weight"):
        check(path)


def test_more_experts_used_than_there_are_is_refused(built, tmp_path):
    path = rewrite(
        built["qwen3moe"], tmp_path / "m.gguf", metadata={"qwen3moe.expert_used_count": 9}
    )
    with pytest.raises(InvalidModelFile, match="9 experts used of 8 cannot run"):
        check(path)


@pytest.mark.parametrize("arch", ["deepseek2-ocr", "llama4", "nomic-bert-moe"])
def test_an_unsupported_architecture_is_named(built, tmp_path, arch):
    path = rewrite(built["qwen3moe"], tmp_path / "m.gguf", metadata={"general.architecture": arch})
    with pytest.raises(InvalidModelFile, match=f"unsupported model architecture '{arch}'"):
        check(path)


@pytest.mark.parametrize(
    "metadata,message",
    [
        ({"deepseek2.nextn_predict_layers": 1}, "multi-token-prediction layers"),
        ({"deepseek2.attention.temperature_scale": 0.1}, "attention temperature scaling"),
        ({"deepseek2.attention.key_length": 64}, "are not a latent of 32 with 16 rope"),
        ({"deepseek2.attention.kv_lora_rank": None}, "lacks deepseek2.attention.kv_lora_rank"),
        ({"deepseek2.expert_group_used_count": 5}, "16 experts in 4 groups, 5 used"),
    ],
)
def test_deepseek2_variants_it_cannot_run_are_named(built, tmp_path, metadata, message):
    with pytest.raises(InvalidModelFile, match=message):
        check(rewrite(built["deepseek2"], tmp_path / "m.gguf", metadata=metadata))


@pytest.mark.parametrize(
    "name,drop,missing",
    [
        ("deepseek2", "blk.1.attn_v_b.weight", r"blk\.1\.attn_v_b\.weight"),
        ("deepseek2", "blk.2.ffn_up_shexp.weight", r"blk\.2\.ffn_up_shexp\.weight"),
        ("deepseek2", "blk.0.ffn_gate.weight", r"blk\.0\.ffn_gate\.weight"),  # dense lead
        ("deepseek2-lite", "blk.1.attn_kv_b.weight", r"blk\.1\.attn_k_b\.weight"),  # or kv_b
    ],
)
def test_a_missing_latent_attention_tensor_is_named(built, tmp_path, name, drop, missing):
    path = rewrite(built[name], tmp_path / "m.gguf", drop=(drop,))
    with pytest.raises(InvalidModelFile, match=f"lacks tensor {missing}"):
        check(path)


def test_a_latent_file_with_per_head_keys_is_not_half_loaded(built, tmp_path):
    """attn_k (a neighbouring attention's tensor) in a latent-attention block is refused."""
    import numpy as np

    with GGUFFile.open(built["deepseek2"]) as gguf:
        meta = dict(gguf.metadata)
        infos = list(gguf.tensors)
    raw = built["deepseek2"].read_bytes()
    tensors = {
        i.name: (raw[i.offset : i.offset + i.nbytes], i.ggml_type, tuple(i.shape)) for i in infos
    }
    tensors["blk.0.attn_k.weight"] = np.zeros((48, 64), np.float32)
    path = make_gguf(tmp_path / "m.gguf", meta, tensors, types=fixtures.value_types(meta))
    with pytest.raises(InvalidModelFile, match=r"has tensor blk\.0\.attn_k\.weight"):
        check(path)


def test_one_long_rope_factor_set_without_the_other_is_refused(tmp_path):
    full = fixtures.build("phi3-longrope", tmp_path / "full.gguf")
    path = rewrite(full, tmp_path / "m.gguf", drop=("rope_factors_short.weight",))
    with pytest.raises(InvalidModelFile, match=r"lacks tensor rope_factors_short\.weight"):
        check(path)
    with pytest.raises(InvalidModelFile, match="one of rope_factors_long and rope_factors_short"):
        load_runner(path, GgmlBackend(), with_tokenizer=False)


def test_long_rope_factors_are_not_loaded_into_an_architecture_without_them(tmp_path):
    full = fixtures.build("phi3-longrope", tmp_path / "full.gguf")
    with GGUFFile.open(full) as gguf:  # the same file under llama's keys
        keys = {k.replace("phi3.", "llama.", 1): v for k, v in gguf.metadata.items()}
    path = rewrite(full, tmp_path / "m.gguf", metadata={**keys, "general.architecture": "llama"})
    with pytest.raises(InvalidModelFile, match="has tensor rope_factors_long.weight"):
        check(path)


def test_the_array_engines_refuse_what_only_the_graph_engine_runs(built):
    from ollamakit_numpy import NumpyBackend

    with pytest.raises(
        BadRequest, match="the qwen3moe architecture with experts needs the ggml compute backend"
    ):
        load_runner(built["qwen3moe"], NumpyBackend(), with_tokenizer=False)
    with pytest.raises(BadRequest, match="the phi3 architecture needs the ggml compute backend"):
        load_runner(built["phi3"], NumpyBackend(), with_tokenizer=False)


def test_an_adapter_of_the_router_is_refused_not_ignored(built, tmp_path):
    """The experts and the router are not multiplied through the adapted product: an adapter
    changing them would change nothing, so the adapter is refused (``lora_pairs``)."""
    import numpy as np

    from ollamakit.lib.gguf import GGUFWriter, ValueType

    adapter = tmp_path / "lora.gguf"
    rng = np.random.default_rng(0)
    with GGUFWriter(adapter) as out:
        out.add("general.type", "adapter")
        out.add("general.architecture", "qwen3moe")
        out.add("adapter.type", "lora")
        out.add("adapter.lora.alpha", 8.0, ValueType.FLOAT32)
        out.add_tensor(
            "blk.0.ffn_gate_inp.weight.lora_a", rng.standard_normal((4, 64)).astype(np.float32)
        )
        out.add_tensor(
            "blk.0.ffn_gate_inp.weight.lora_b", rng.standard_normal((8, 4)).astype(np.float32)
        )
    with pytest.raises(
        InvalidModelFile, match=r"adapters of blk\.0\.ffn_gate_inp\.weight are not supported"
    ):
        load_runner(built["qwen3moe"], GgmlBackend(), with_tokenizer=False, adapters=[adapter])


def test_a_window_pattern_that_does_not_fit_the_layers_is_refused(tmp_path):
    olmo3 = fixtures.build("olmo3", tmp_path / "olmo3.gguf")
    path = rewrite(
        olmo3, tmp_path / "m.gguf", metadata={"olmo2.attention.sliding_window_pattern": [True]}
    )
    with pytest.raises(InvalidModelFile, match="not a flag for each of 4 layers"):
        check(path)
