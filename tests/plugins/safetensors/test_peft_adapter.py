"""PEFT safetensors adapters on ``/api/create``: converted to llama.cpp's GGUF LoRA for the
model's base, they give the logits of the model with the adapter merged into its Hugging Face
weights (converted by the safetensors source itself), for llama (whose q/k rows GGUF permutes),
qwen2 and gemma3. What a GGUF LoRA cannot carry is a plain 400 that leaves the store as it was."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hf_export import folder_files
from peft_folders import decoder_folder, merged_folder, peft_adapter
from test_create_from_folder import store_state, upload

from ollamakit import manifest as mf
from ollamakit.lib.gguf import GGUFFile
from ollamakit.names import ModelName
from ollamakit.testing.reference import reference_answers

engine = pytest.importorskip("ollamakit_engine")
PROMPT = [5, 72, 101, 108, 108, 111, 33, 9, 40, 50, 60, 70, 80, 90]


def create(client, name: str, **body):
    reply = client.simulate_post("/api/create", json={"model": name, "stream": False, **body})
    assert reply.status_code == 200, reply.text
    return reply


def layer_path(kernel, name: str, media_type: str):
    found = kernel.store.get(ModelName.parse(name))
    [layer] = [layer for layer in found.manifest.layers if layer.media_type == media_type]
    return kernel.store.blob_path(layer.digest)


def logits(model, adapters=()):
    from ollamakit_ggml import GgmlBackend

    runner = engine.load_runner(
        model, GgmlBackend(), {"num_thread": 2}, with_tokenizer=False, adapters=list(adapters)
    )
    try:
        return runner.forward([(runner.new_cache(64), PROMPT)])[0]
    finally:
        runner.close()


def assert_same(got, want):
    # F32 weights; the noise floor is the float16 KV cache, where W x + s B (A x) and (W + s B A) x
    # may round apart (about 1e-4 of the largest logit; a wrong row order gives 1.0)
    np.testing.assert_allclose(got, want, atol=2e-4 * np.abs(want).max(), rtol=0)


@pytest.fixture
def folders(tmp_path):
    def make(arch, **adapter):
        model = decoder_folder(arch, tmp_path / arch)
        peft_adapter(model, tmp_path / f"{arch}-lora", **adapter)
        merged = merged_folder(model, tmp_path / f"{arch}-lora", tmp_path / f"{arch}-merged")
        return model, tmp_path / f"{arch}-lora", merged

    return make


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_the_adapter_gives_the_merged_models_logits(client, kernel, folders, arch):
    model, lora, merged = folders(arch)
    create(client, "base", files=upload(client, folder_files(model)))
    create(client, "tuned", **{"from": "base", "adapters": upload(client, folder_files(lora))})
    create(client, "merged", files=upload(client, folder_files(merged)))

    base = layer_path(kernel, "tuned", mf.MODEL)
    adapter = layer_path(kernel, "tuned", mf.ADAPTER)
    assert base == layer_path(kernel, "base", mf.MODEL)
    with GGUFFile.open(adapter) as gguf:
        assert (
            gguf.metadata["general.type"] == "adapter" and gguf.metadata["adapter.type"] == "lora"
        )
        assert gguf.architecture == arch and gguf.metadata["adapter.lora.alpha"] == 8.0
        assert len(gguf.tensors) == 2 * 7 * 2  # 7 modules a layer, 2 layers, A and B
        assert tuple(gguf.tensor_info("blk.1.ffn_down.weight.lora_a").shape) == (
            128,
            4,
        )  # ne: (in, rank)

    tuned, want, plain = (
        logits(base, [adapter]),
        logits(layer_path(kernel, "merged", mf.MODEL)),
        logits(base),
    )
    assert np.abs(want - plain).max() > 0.1 * np.abs(want).max()  # the adapter matters
    assert_same(tuned, want)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_the_adapter_gives_pefts_own_logits(client, kernel, tmp_path, arch):
    """Against PEFT itself: transformers' logits for the same seeded folder and adapter, loaded by
    ``PeftModel.from_pretrained`` (recorded by ``record_peft_logits.py``)."""
    recorded = reference_answers("peft-lora-logits.json")
    assert recorded["prompt"] == PROMPT
    model = decoder_folder(arch, tmp_path / arch)
    peft_adapter(model, tmp_path / "lora")
    create(
        client,
        "tuned",
        files=upload(client, folder_files(model)),
        adapters=upload(client, folder_files(tmp_path / "lora")),
    )
    base, adapter = layer_path(kernel, "tuned", mf.MODEL), layer_path(kernel, "tuned", mf.ADAPTER)
    want_base, want = np.array(recorded[arch]["base"]), np.array(recorded[arch]["tuned"])
    assert np.abs(want - want_base).max() > 0.3 * np.abs(want).max()  # the adapter matters
    # float16 KV cache against float32 throughout: about 1e-3 of the largest logit, base or tuned
    np.testing.assert_allclose(logits(base), want_base, atol=3e-3 * np.abs(want_base).max(), rtol=0)
    np.testing.assert_allclose(
        logits(base, [adapter]), want, atol=3e-3 * np.abs(want).max(), rtol=0
    )


def test_llamas_q_and_k_need_their_lora_b_rows_permuted(client, kernel, folders, tmp_path):
    """The control: the same llama adapter with B left in Hugging Face's row order is wrong."""
    from ollamakit_safetensors.adapter import plan_adapter
    from ollamakit_safetensors.folder import ModelFolder

    model, lora, merged = folders("llama")
    create(client, "base", files=upload(client, folder_files(model)))
    create(client, "merged", files=upload(client, folder_files(merged)))
    base = layer_path(kernel, "base", mf.MODEL)
    with GGUFFile.open(base) as header, ModelFolder(folder_files(lora)) as folder:
        plan = plan_adapter(folder, header)
        assert {t.name: t.permute_heads for t in plan.tensors if t.permute_heads} == {
            f"blk.{i}.attn_{x}.weight.lora_b": heads
            for i in (0, 1)
            for x, heads in (("q", 4), ("k", 2))
        }
        for tensor in plan.tensors:
            tensor.permute_heads = 0
        plan.write(tmp_path / "unpermuted.gguf")
    want = logits(layer_path(kernel, "merged", mf.MODEL))
    wrong = logits(base, [tmp_path / "unpermuted.gguf"])
    assert np.abs(wrong - want).max() > 0.1 * np.abs(want).max()


def test_rslora_and_a_rank_pattern_keep_peft_scales(client, kernel, folders):
    model, lora, merged = folders(
        "qwen2",
        rank=4,
        alpha=6.0,
        ranks={"v_proj": 2, "down_proj": 8},
        config={"use_rslora": True, "rank_pattern": {"v_proj": 2, "down_proj": 8}},
    )
    create(
        client,
        "tuned",
        files=upload(client, folder_files(model)),
        adapters=upload(client, folder_files(lora)),
    )
    create(client, "merged", files=upload(client, folder_files(merged)))
    tuned = logits(layer_path(kernel, "tuned", mf.MODEL), [layer_path(kernel, "tuned", mf.ADAPTER)])
    assert_same(tuned, logits(layer_path(kernel, "merged", mf.MODEL)))


def test_half_precision_adapters_keep_their_types(client, kernel, tmp_path):
    """An F16 lora_A and a BF16 lora_B are written as they are (llama's B permuted as raw bits)."""
    from safetensors.numpy import save_file
    from safetensors_crafting import write_tensors

    model = decoder_folder("llama", tmp_path / "llama")
    tensors = peft_adapter(model, tmp_path / "lora")
    halves = {k: v.astype(np.float16) if ".lora_A." in k else v for k, v in tensors.items()}
    b_names = tuple(k for k in tensors if ".lora_B." in k)
    write_tensors(tmp_path / "lora" / "adapter_model.safetensors", halves, bf16=b_names)
    create(
        client,
        "tuned",
        files=upload(client, folder_files(model)),
        adapters=upload(client, folder_files(tmp_path / "lora")),
    )
    adapter = layer_path(kernel, "tuned", mf.ADAPTER)
    with GGUFFile.open(adapter) as gguf:
        types = {info.name.rsplit(".", 1)[-1]: info.ggml_type for info in gguf.tensors}
    assert {k: int(v) for k, v in types.items()} == {"lora_a": 1, "lora_b": 30}  # F16, BF16

    bits = {k: v.view(np.uint32) for k, v in tensors.items() if k in b_names}  # the same rounding
    rounded = {
        k: ((b + 0x7FFF + ((b >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32)
        for k, b in bits.items()
    }
    (tmp_path / "f32").mkdir()
    save_file(
        {**{k: v.astype(np.float32) for k, v in halves.items()}, **rounded},
        str(tmp_path / "f32" / "adapter_model.safetensors"),
    )
    (tmp_path / "f32" / "adapter_config.json").write_text(
        (tmp_path / "lora" / "adapter_config.json").read_text()
    )
    merged = merged_folder(model, tmp_path / "f32", tmp_path / "merged")
    create(client, "merged", files=upload(client, folder_files(merged)))
    got, want = (
        logits(layer_path(kernel, "tuned", mf.MODEL), [adapter]),
        logits(layer_path(kernel, "merged", mf.MODEL)),
    )
    # ggml multiplies a half-precision matrix by activations rounded to its type, so B (A x) sees
    # A x in bfloat16 (8 bits): about 0.3% of the largest logit here; a wrong row order gives 100%
    np.testing.assert_allclose(got, want, atol=1e-2 * np.abs(want).max(), rtol=0)


def test_a_folder_and_its_adapter_in_one_request(client, kernel, folders):
    """The base is converted first; the adapter, checked up front, waits for it."""
    model, lora, merged = folders("gemma3")
    reply = client.simulate_post(
        "/api/create",
        json={
            "model": "both",
            "files": upload(client, folder_files(model)),
            "adapters": upload(client, folder_files(lora)),
        },
    )
    assert reply.status_code == 200
    statuses = [json.loads(line)["status"] for line in reply.text.splitlines()]
    assert statuses[:2] == ["converting model", "converting adapter"] and statuses[-1] == "success"
    shown = client.simulate_post("/api/show", json={"model": "both"}).json
    assert "ADAPTER" in shown["modelfile"]
    create(client, "merged", files=upload(client, folder_files(merged)))
    tuned = logits(layer_path(kernel, "both", mf.MODEL), [layer_path(kernel, "both", mf.ADAPTER)])
    assert_same(tuned, logits(layer_path(kernel, "merged", mf.MODEL)))


REFUSED = {
    "dora": ({"use_dora": True}, "DoRA adapters"),
    "fan_in_fan_out": ({"fan_in_fan_out": True}, "fan_in_fan_out"),
    "modules_to_save": ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
    "alpha_pattern": ({"alpha_pattern": {"q_proj": 16}}, "alpha_pattern"),
    "not lora": ({"peft_type": "IA3"}, "only LoRA adapters are supported"),
    "rank": ({"r": 8}, "has rank 4, adapter_config.json says r = 8"),
    "alpha": ({"lora_alpha": "eight"}, "lora_alpha"),
    "alora": ({"alora_invocation_tokens": [5, 6]}, "alora_invocation_tokens"),
    "lora bias": ({"lora_bias": True}, "lora_bias"),
    "trained biases": ({"bias": "all"}, "adapters that train the model's biases (bias 'all')"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_a_gguf_lora_cannot_carry_is_refused(client, models_dir, tmp_path, case):
    changes, message = REFUSED[case]
    model = decoder_folder("qwen2", tmp_path / "qwen2")
    create(client, "base", files=upload(client, folder_files(model)))
    peft_adapter(model, tmp_path / "lora", config=changes)
    assert_refused(client, models_dir, folder_files(tmp_path / "lora"), message)


def assert_refused(client, models_dir, files, message, **body):
    digests = upload(client, files)
    before = store_state(models_dir)
    reply = client.simulate_post(
        "/api/create", json={"model": "tuned", "from": "base", "adapters": digests, **body}
    )
    assert reply.status_code == 400, reply.text
    error = reply.json["error"]
    assert message in error and "Traceback" not in error and str(models_dir) not in error
    assert store_state(models_dir) == before


def test_tensors_a_gguf_lora_cannot_carry_are_refused(client, models_dir, tmp_path):
    from safetensors.numpy import load_file, save_file

    model = decoder_folder("llama", tmp_path / "llama")
    create(client, "base", files=upload(client, folder_files(model)))
    tensors = peft_adapter(model, tmp_path / "lora", modules=("q_proj",))
    extra = {
        "base_model.model.model.embed_tokens.lora_embedding_A": (
            (4, 262),
            "token embedding or the output layer",
        ),
        "base_model.model.lm_head.lora_A.weight": ((4, 64), "token embedding or the output layer"),
        "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector": ((64,), "DoRA"),
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias": ((64,), "LoRA biases"),
        "base_model.model.model.layers.0.input_layernorm.lora_A.weight": (
            (4, 64),
            "LoRA on input_layernorm",
        ),
    }
    for key, (shape, message) in extra.items():
        save_file(
            {**tensors, key: np.zeros(shape, np.float32)},
            str(tmp_path / "lora" / "adapter_model.safetensors"),
        )
        assert_refused(client, models_dir, folder_files(tmp_path / "lora"), message)
    lone = {k: v for k, v in tensors.items() if "layers.1." not in k or "lora_A" in k}
    save_file(lone, str(tmp_path / "lora" / "adapter_model.safetensors"))
    assert_refused(client, models_dir, folder_files(tmp_path / "lora"), "lacks its lora_B")
    assert load_file(tmp_path / "lora" / "adapter_model.safetensors")  # the file itself was fine


def test_an_adapter_for_another_model_is_refused(client, models_dir, tmp_path):
    from safetensors.numpy import save_file

    model = decoder_folder("qwen2", tmp_path / "qwen2")
    create(client, "base", files=upload(client, folder_files(model)))
    tensors = peft_adapter(model, tmp_path / "lora")
    files = folder_files(tmp_path / "lora")
    key = "base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight"
    save_file(
        {**tensors, key: np.zeros((48, 4), np.float32)}, str(files["adapter_model.safetensors"])
    )
    assert_refused(
        client, models_dir, files, "the adapter of blk.1.attn_k.weight does not fit the model"
    )
    key = "base_model.model.model.layers.2.mlp.up_proj"
    more = {
        f"{key}.lora_A.weight": np.zeros((4, 64), np.float32),
        f"{key}.lora_B.weight": np.zeros((128, 4), np.float32),
    }
    save_file({**tensors, **more}, str(files["adapter_model.safetensors"]))
    assert_refused(
        client, models_dir, files, "changes blk.2.ffn_up.weight, which the model does not have"
    )


def test_an_adapter_for_an_architecture_not_converted_is_refused(client, models_dir, tmp_path):
    from tiny_folders import bert_folder

    bert_folder(tmp_path / "bert")
    create(client, "base", files=upload(client, folder_files(tmp_path / "bert")))
    peft_adapter(decoder_folder("qwen2", tmp_path / "qwen2"), tmp_path / "lora")
    assert_refused(client, models_dir, folder_files(tmp_path / "lora"), 'the model is "bert"')


def test_one_adapter_per_model(client, kernel, models_dir, folders):
    model, lora, _ = folders("qwen2")
    create(client, "base", files=upload(client, folder_files(model)))
    create(client, "tuned", **{"from": "base", "adapters": upload(client, folder_files(lora))})
    digests = upload(client, folder_files(lora))
    before = store_state(models_dir)
    reply = client.simulate_post(
        "/api/create", json={"model": "twice", "from": "tuned", "adapters": digests}
    )
    assert (
        reply.status_code == 400
        and reply.json["error"] == "only one adapter is currently supported"
    )
    assert store_state(models_dir) == before
    # the converted adapter is a GGUF adapter like any other: fine on the base, one too many on
    # the tuned model
    converted = {
        "lora.gguf": "sha256:"
        + layer_path(kernel, "tuned", mf.ADAPTER).name.removeprefix("sha256-")
    }
    create(client, "again", **{"from": "base", "adapters": converted})
    before = store_state(models_dir)
    reply = client.simulate_post(
        "/api/create", json={"model": "twice", "from": "tuned", "adapters": converted}
    )
    assert (
        reply.status_code == 400
        and reply.json["error"] == "only one adapter is currently supported"
    )
    assert store_state(models_dir) == before


def test_the_cli_uploads_an_adapter_folder(tmp_path, folders):
    from ollamakit_cli.files import create_plan
    from ollamakit_cli.modelfile import parse

    _, lora, _ = folders("qwen2")
    plan = create_plan(parse(f"FROM base\nADAPTER {lora}\n"), tmp_path)
    assert sorted(plan.request["adapters"]) == ["adapter_config.json", "adapter_model.safetensors"]


def test_the_cli_creates_a_tuned_model_over_http(server, folders, tmp_path):
    """``ADAPTER ./folder`` through the command line and a real server; the official client then
    gets the merged model's greedy answer from the tuned model, and another from its base."""
    import ollama
    from click.testing import CliRunner

    from ollamakit.cli import build_cli

    model, lora, merged = folders("qwen2")
    cli = build_cli()
    for name, text in (
        ("base", f"FROM {model}\n"),
        ("tuned", f"FROM base\nADAPTER {lora}\n"),
        ("merged", f"FROM {merged}\n"),
    ):
        (tmp_path / f"{name}.Modelfile").write_text(text)
        result = CliRunner().invoke(
            cli,
            ["create", name, "-f", str(tmp_path / f"{name}.Modelfile")],
            env={"OLLAMA_HOST": server.url},
        )
        assert result.exit_code == 0, result.output
    client = ollama.Client(host=server.url)
    assert "ADAPTER" in client.show("tuned").modelfile
    options = {"temperature": 0, "num_predict": 12, "seed": 1}
    answers = {
        name: client.generate(name, "the the", raw=True, options=options).response
        for name in ("base", "tuned", "merged")
    }
    assert answers["tuned"] and answers["tuned"] == answers["merged"] != answers["base"]


def test_an_adapter_that_does_not_fit_a_folder_in_the_same_request(client, models_dir, tmp_path):
    """Its shapes are known only once the folder is converted: the error then follows the first
    status lines, and the model and the converted base are taken back."""
    from safetensors.numpy import save_file

    model = decoder_folder("qwen2", tmp_path / "qwen2")
    tensors = peft_adapter(model, tmp_path / "lora")
    key = "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"
    save_file(
        {**tensors, key: np.zeros((4, 96), np.float32)},
        str(tmp_path / "lora" / "adapter_model.safetensors"),
    )
    files, adapters = (
        upload(client, folder_files(model)),
        upload(client, folder_files(tmp_path / "lora")),
    )
    before = store_state(models_dir)
    reply = client.simulate_post(
        "/api/create", json={"model": "both", "files": files, "adapters": adapters}
    )
    lines = [json.loads(line) for line in reply.text.splitlines()]
    assert [line.get("status") for line in lines[:2]] == ["converting model", "converting adapter"]
    assert "the adapter of blk.0.ffn_down.weight does not fit the model" in lines[-1]["error"]
    assert store_state(models_dir) == before


@pytest.mark.parametrize("arch", ["qwen3", "gemma2"])
def test_qwen3_and_gemma2_adapters_give_the_merged_models_logits(client, kernel, tmp_path, arch):
    """On a GGUF base as llama.cpp's converter writes it (q and k rows in Hugging Face's order,
    since these models rotate each head's halves): the converted adapter gives the logits of the
    base with B A merged into its weights; the same adapter with B's q/k rows permuted as for
    llama does not, so the rule is tested, not assumed."""
    from ollamakit_safetensors.adapter import plan_adapter
    from ollamakit_safetensors.folder import ModelFolder
    from peft_folders import float32_gguf, gguf_peft_adapter, merged_gguf

    from ollamakit.testing import architectures

    built = architectures.build(arch, tmp_path / f"{arch}-f16.gguf")
    base = float32_gguf(built, tmp_path / f"{arch}.gguf")
    gguf_peft_adapter(base, tmp_path / "lora")
    merged = merged_gguf(base, tmp_path / "lora", tmp_path / "merged.gguf")
    create(client, "base", files=upload(client, {"base.gguf": base}))
    create(
        client,
        "tuned",
        **{"from": "base", "adapters": upload(client, folder_files(tmp_path / "lora"))},
    )
    adapter = layer_path(kernel, "tuned", mf.ADAPTER)
    with GGUFFile.open(adapter) as gguf:
        assert gguf.architecture == arch and len(gguf.tensors) == 2 * 7 * 2

    stored = layer_path(kernel, "tuned", mf.MODEL)
    tuned, want, plain = logits(stored, [adapter]), logits(merged), logits(stored)
    assert np.abs(want - plain).max() > 0.1 * np.abs(want).max()  # the adapter matters
    assert_same(tuned, want)

    with GGUFFile.open(stored) as header, ModelFolder(folder_files(tmp_path / "lora")) as folder:
        plan = plan_adapter(folder, header)
        assert not any(t.permute_heads for t in plan.tensors)
        heads = {"attn_q": 4, "attn_k": 2}
        for tensor in plan.tensors:
            part = tensor.name.split(".")[2]
            if tensor.name.endswith("lora_b") and part in heads:
                tensor.permute_heads = heads[part]
        plan.write(tmp_path / "permuted.gguf")
    wrong = logits(stored, [tmp_path / "permuted.gguf"])
    assert np.abs(wrong - want).max() > 0.1 * np.abs(want).max()


@pytest.mark.parametrize(
    "layers_prefix",
    ["language_model.model.layers", "model.language_model.layers"],
    ids=["transformers-before-4.52", "transformers-4.52-on"],
)
def test_gemma3_conditional_generation_names(client, kernel, tmp_path, layers_prefix):
    """Gemma3ForConditionalGeneration's adapters name the text layers under language_model (in
    either of the two layouts transformers has saved): they convert as the plain ones do."""
    model = decoder_folder("gemma3", tmp_path / "gemma3")
    peft_adapter(model, tmp_path / "lora", layers_prefix=layers_prefix)
    merged = merged_folder(model, tmp_path / "lora", tmp_path / "merged")
    create(client, "base", files=upload(client, folder_files(model)))
    create(
        client,
        "tuned",
        **{"from": "base", "adapters": upload(client, folder_files(tmp_path / "lora"))},
    )
    create(client, "merged", files=upload(client, folder_files(merged)))
    base = layer_path(kernel, "tuned", mf.MODEL)
    tuned, want = (
        logits(base, [layer_path(kernel, "tuned", mf.ADAPTER)]),
        logits(layer_path(kernel, "merged", mf.MODEL)),
    )
    assert np.abs(want - logits(base)).max() > 0.1 * np.abs(want).max()
    assert_same(tuned, want)


def test_vision_tower_adapters_and_doubly_named_layers_are_refused(client, models_dir, tmp_path):
    from safetensors.numpy import save_file

    model = decoder_folder("gemma3", tmp_path / "gemma3")
    create(client, "base", files=upload(client, folder_files(model)))
    tensors = peft_adapter(model, tmp_path / "lora", layers_prefix="model.language_model.layers")
    files = folder_files(tmp_path / "lora")
    for key in (
        "base_model.model.model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj",
        "base_model.model.vision_tower.vision_model.encoder.layers.0.mlp.fc1",
        "base_model.model.multi_modal_projector.mm_input_projection",
    ):
        extra = {f"{key}.lora_A.weight": np.zeros((4, 32), np.float32)}
        save_file({**tensors, **extra}, str(files["adapter_model.safetensors"]))
        assert_refused(client, models_dir, files, "LoRA on the vision tower or its projector")
    twice = {
        k.replace("model.language_model.layers", "language_model.model.layers"): v
        for k, v in tensors.items()
        if ".layers.0.self_attn.q_proj." in k
    }
    save_file({**tensors, **twice}, str(files["adapter_model.safetensors"]))
    assert_refused(client, models_dir, files, "adapt the same matrix")


@pytest.mark.parametrize("arch", ["qwen3", "gemma2"])
def test_qwen3_and_gemma2_adapters_give_transformers_logits(client, kernel, tmp_path, arch):
    """Against Hugging Face's own model: transformers' logits for the same fixture weights, with
    the same adapter merged as PEFT merges it (recorded by ``record_gguf_adapter_logits.py``)."""
    from peft_folders import float32_gguf, gguf_peft_adapter

    from ollamakit.testing import architectures

    recorded = reference_answers("hf-gguf-lora-logits.json")
    assert recorded["prompt"] == PROMPT
    base = float32_gguf(
        architectures.build(arch, tmp_path / f"{arch}-f16.gguf"), tmp_path / f"{arch}.gguf"
    )
    gguf_peft_adapter(base, tmp_path / "lora")
    create(
        client,
        "tuned",
        files=upload(client, {"base.gguf": base}),
        adapters=upload(client, folder_files(tmp_path / "lora")),
    )
    stored, adapter = layer_path(kernel, "tuned", mf.MODEL), layer_path(kernel, "tuned", mf.ADAPTER)
    want_base, want = np.array(recorded[arch]["base"]), np.array(recorded[arch]["tuned"])
    assert np.abs(want - want_base).max() > 0.1 * np.abs(want).max()  # the adapter matters
    # float16 KV cache against float32 throughout, as in the PEFT comparison above
    np.testing.assert_allclose(
        logits(stored), want_base, atol=3e-3 * np.abs(want_base).max(), rtol=0
    )
    np.testing.assert_allclose(
        logits(stored, [adapter]), want, atol=3e-3 * np.abs(want).max(), rtol=0
    )
