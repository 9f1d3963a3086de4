"""mlx-lm LoRA adapters (``adapters.safetensors`` + ``adapter_config.json``) on ``/api/create``:
converted to llama.cpp's GGUF LoRA for the model's base, they give the logits of the model with
the adapter fused into its Hugging Face weights as mlx-lm fuses it (W + scale · Bᵀ Aᵀ), for
llama (whose q/k rows GGUF permutes), qwen2 and gemma3; what a GGUF LoRA cannot carry is a plain
400 that leaves the store as it was."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hf_export import folder_files
from peft_folders import decoder_folder, mlx_adapter, mlx_merged_folder
from test_create_from_folder import upload
from test_peft_adapter import assert_refused, assert_same, create, layer_path, logits

from ollamakit import manifest as mf
from ollamakit.lib.gguf import GGUFFile

pytest.importorskip("ollamakit_engine")


@pytest.mark.parametrize(
    "arch, layers_prefix",
    [
        ("llama", "model.layers"),
        ("qwen2", "model.layers"),
        ("gemma3", "model.layers"),
        # mlx-lm's gemma3 keeps its text model under language_model
        ("gemma3", "language_model.model.layers"),
    ],
)
def test_the_adapter_gives_the_fused_models_logits(client, kernel, tmp_path, arch, layers_prefix):
    model = decoder_folder(arch, tmp_path / arch)
    mlx_adapter(model, tmp_path / "lora", layers_prefix=layers_prefix)
    fused = mlx_merged_folder(model, tmp_path / "lora", tmp_path / "fused")
    create(client, "base", files=upload(client, folder_files(model)))
    create(
        client,
        "tuned",
        **{"from": "base", "adapters": upload(client, folder_files(tmp_path / "lora"))},
    )
    create(client, "fused", files=upload(client, folder_files(fused)))

    base, adapter = layer_path(kernel, "tuned", mf.MODEL), layer_path(kernel, "tuned", mf.ADAPTER)
    with GGUFFile.open(adapter) as gguf:
        assert gguf.metadata["general.type"] == "adapter" and gguf.architecture == arch
        # GGUF scales by alpha / rank: mlx-lm's scale 2.0 at rank 4
        assert gguf.metadata["adapter.lora.alpha"] == 8.0
        assert len(gguf.tensors) == 2 * 7 * 2  # 7 modules a layer, 2 layers, A and B
        assert tuple(gguf.tensor_info("blk.1.ffn_down.weight.lora_a").shape) == (128, 4)
        assert tuple(gguf.tensor_info("blk.1.ffn_down.weight.lora_b").shape) == (4, 64)

    tuned, want, plain = (
        logits(base, [adapter]),
        logits(layer_path(kernel, "fused", mf.MODEL)),
        logits(base),
    )
    assert np.abs(want - plain).max() > 0.1 * np.abs(want).max()  # the adapter matters
    assert_same(tuned, want)


def test_the_scale_is_mlx_lms_not_alpha_over_rank(client, kernel, tmp_path):
    """The same matrices at scale 1 (what alpha = 0, Ollama's reading of a config without
    ``lora_alpha``, gives in llama.cpp) miss the fused model: the config's scale is used."""
    model = decoder_folder("qwen2", tmp_path / "qwen2")
    mlx_adapter(model, tmp_path / "lora", scale=3.0)
    fused = mlx_merged_folder(model, tmp_path / "lora", tmp_path / "fused")
    create(client, "base", files=upload(client, folder_files(model)))
    create(client, "fused", files=upload(client, folder_files(fused)))
    config = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    config["lora_parameters"]["scale"] = 1.0
    (tmp_path / "lora" / "adapter_config.json").write_text(json.dumps(config))
    create(
        client,
        "weak",
        **{"from": "base", "adapters": upload(client, folder_files(tmp_path / "lora"))},
    )
    want = logits(layer_path(kernel, "fused", mf.MODEL))
    weak = logits(layer_path(kernel, "weak", mf.MODEL), [layer_path(kernel, "weak", mf.ADAPTER)])
    assert np.abs(weak - want).max() > 0.1 * np.abs(want).max()


def test_llamas_q_and_k_need_the_turned_b_rows_permuted(client, kernel, tmp_path):
    """The control: the same llama adapter with B turned round but left in Hugging Face's row
    order is wrong."""
    from ollamakit_safetensors.adapter import plan_adapter
    from ollamakit_safetensors.folder import ModelFolder

    model = decoder_folder("llama", tmp_path / "llama")
    mlx_adapter(model, tmp_path / "lora")
    fused = mlx_merged_folder(model, tmp_path / "lora", tmp_path / "fused")
    create(client, "base", files=upload(client, folder_files(model)))
    create(client, "fused", files=upload(client, folder_files(fused)))
    base = layer_path(kernel, "base", mf.MODEL)
    with GGUFFile.open(base) as header, ModelFolder(folder_files(tmp_path / "lora")) as folder:
        plan = plan_adapter(folder, header)
        permuted = {t.name for t in plan.tensors if t.permute_heads}
        assert permuted == {f"blk.{i}.attn_{x}.weight.lora_b" for i in (0, 1) for x in "qk"}
        for tensor in plan.tensors:
            tensor.permute_heads = 0
        plan.write(tmp_path / "unpermuted.gguf")
    want = logits(layer_path(kernel, "fused", mf.MODEL))
    wrong = logits(base, [tmp_path / "unpermuted.gguf"])
    assert np.abs(wrong - want).max() > 0.1 * np.abs(want).max()


REFUSED = {
    "dora": ({"fine_tune_type": "dora"}, "DoRA adapters are not supported"),
    "full": ({"fine_tune_type": "full"}, "fine_tune_type 'full'"),
    "no parameters": ({"lora_parameters": None}, "has no lora_parameters"),
    "no scale": (
        {"lora_parameters": {"rank": 4, "dropout": 0.0}},
        "lora_parameters.scale = None is not a usable number",
    ),
    "bad rank": ({"lora_parameters": {"rank": 0, "scale": 2.0}}, "lora_parameters.rank = 0"),
    "zero scale": (
        {"lora_parameters": {"rank": 4, "scale": 0.0}},
        "lora_parameters.scale = 0.0 is not a usable number",
    ),
    "other rank": (
        {"lora_parameters": {"rank": 8, "scale": 2.0}},
        "adapter_config.json says r = 8",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_a_gguf_lora_cannot_carry_is_refused(client, models_dir, tmp_path, case):
    changes, message = REFUSED[case]
    model = decoder_folder("qwen2", tmp_path / "qwen2")
    create(client, "base", files=upload(client, folder_files(model)))
    mlx_adapter(model, tmp_path / "lora", config=changes)
    assert_refused(client, models_dir, folder_files(tmp_path / "lora"), message)


def test_tensors_a_gguf_lora_cannot_carry_are_refused(client, models_dir, tmp_path):
    from safetensors.numpy import save_file

    model = decoder_folder("llama", tmp_path / "llama")
    create(client, "base", files=upload(client, folder_files(model)))
    tensors = mlx_adapter(model, tmp_path / "lora", modules=("q_proj",))
    path = tmp_path / "lora" / "adapters.safetensors"
    extra = {
        "model.layers.0.self_attn.q_proj.m": ((64,), "DoRA"),
        "model.embed_tokens.lora_a": ((262, 4), "token embedding or the output layer"),
        "lm_head.lora_a": ((64, 4), "token embedding or the output layer"),
        "model.layers.0.input_layernorm.lora_a": ((64, 4), "LoRA on input_layernorm"),
    }
    for key, (shape, message) in extra.items():
        save_file({**tensors, key: np.zeros(shape, np.float32)}, str(path))
        assert_refused(client, models_dir, folder_files(tmp_path / "lora"), message)
    lone = {k: v for k, v in tensors.items() if "layers.1." not in k or "lora_a" in k}
    save_file(lone, str(path))
    assert_refused(client, models_dir, folder_files(tmp_path / "lora"), "lacks its lora_b")
    key = "model.layers.1.self_attn.q_proj.lora_b"
    save_file({**tensors, key: np.zeros((4, 48), np.float32)}, str(path))
    assert_refused(
        client,
        models_dir,
        folder_files(tmp_path / "lora"),
        "the adapter of blk.1.attn_q.weight does not fit the model",
    )


def test_the_cli_uploads_an_mlx_adapter_folder(tmp_path):
    from ollamakit_cli.files import create_plan
    from ollamakit_cli.modelfile import parse

    model = decoder_folder("qwen2", tmp_path / "qwen2")
    mlx_adapter(model, tmp_path / "lora")
    plan = create_plan(parse(f"FROM base\nADAPTER {tmp_path / 'lora'}\n"), tmp_path)
    assert sorted(plan.request["adapters"]) == ["adapter_config.json", "adapters.safetensors"]
