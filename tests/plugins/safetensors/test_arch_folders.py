"""Create from the safetensors folders of phi3 (LongRoPE), gemma2, mixtral, qwen3moe, qwen3, olmo3,
granite and starcoder2.

Each seeded folder (``arch_folders``, as transformers' ``save_pretrained`` writes it) converts to
a GGUF file whose tensor names and shapes, and whose hyperparameters as the engine reads them,
are those of the architecture's fixture, which is laid out as llama.cpp's converter writes it
(``ollamakit.testing.architectures convert-check``). The converted file then runs as
transformers runs the folder (``tests/reference/transformers-arch-folders.json``): the same
greedy tokens except where transformers' own top-2 margin is under ``TIE_MARGIN``, and top
logprobs within ``LOGPROB_TOLERANCE``. Its tokenizer gives the fixtures' ids, and a create with
``quantize`` quantizes the experts' 3-D tensors.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from ollamakit_engine import load_runner
from ollamakit_engine.hparams import read_hparams
from ollamakit_ggml import GgmlBackend
from ollamakit_safetensors.convert import plan_conversion
from ollamakit_safetensors.folder import ModelFolder

import arch_folders
from hf_export import folder_files
from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf import GGUFFile
from ollamakit.testing import architectures as fixtures
from ollamakit.testing.agreement import TIE_MARGIN
from test_create_from_folder import upload

LOGPROB_TOLERANCE = 0.03
F32, F16 = 0, 1  # ggml types
RECORDED = Path(__file__).resolve().parents[2] / "reference" / "transformers-arch-folders.json"
NAMES = list(arch_folders.FOLDERS)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("arch-folders")


@cache
def converted(name: str, scratch: Path) -> Path:
    folder = arch_folders.write(name, scratch / name)
    plan = plan_conversion(ModelFolder(folder_files(folder)), name)
    return plan.write(scratch / f"{name}.gguf")


def model_layer(models_dir: Path, name: str) -> Path:
    """The stored GGUF blob of model ``name``."""
    manifest = models_dir / "manifests" / "registry.ollama.ai" / "library" / name / "latest"
    layers = json.loads(manifest.read_bytes())["layers"]
    model = next(x for x in layers if x["mediaType"] == "application/vnd.ollama.image.model")
    return models_dir / "blobs" / model["digest"].replace(":", "-")


def layout(path: Path):
    with GGUFFile.open(path) as gguf:
        return {t.name: tuple(t.shape) for t in gguf.tensors}, read_hparams(gguf.metadata)


@pytest.mark.parametrize("name", NAMES)
def test_the_converted_file_is_laid_out_as_llamacpp_converts_it(name, scratch):
    fixture = arch_folders.FOLDERS[name][0]
    reference = fixtures.build(fixture, scratch / f"{fixture}-fixture.gguf", expert_type="F16")
    assert layout(converted(name, scratch)) == layout(reference)


def test_long_rope_factors_are_the_configs(scratch):
    config = arch_folders.config("phi3-longrope")["rope_parameters"]
    with GGUFFile.open(converted("phi3-longrope", scratch)) as gguf:
        assert gguf.metadata["phi3.rope.scaling.attn_factor"] == pytest.approx(np.sqrt(1.25))
        for kind in ("long", "short"):
            stored = gguf.tensor(f"rope_factors_{kind}.weight")
            np.testing.assert_array_equal(stored, np.float32(config[f"{kind}_factor"]))


@pytest.mark.parametrize(
    "name,index", [(n, i) for n in NAMES for i in range(len(fixtures.PROMPTS))]
)
def test_the_converted_file_runs_as_transformers_runs_the_folder(name, index, scratch):
    answer = json.loads(RECORDED.read_text())["folders"][name][index]
    assert answer["prompt"] == fixtures.PROMPTS[index]
    runner = load_runner(
        str(converted(name, scratch)),
        GgmlBackend(),
        {"num_thread": 2, "kv_cache_type": "f32"},
        with_tokenizer=False,
    )
    try:
        # a context within the original one: transformers' LongRoPE takes the short factors
        # for a sequence that short
        ours = fixtures.ours_steps(
            runner, fixtures.prompt_ids(answer["prompt"]), len(answer["greedy_ids"])
        )
    finally:
        runner.close()
    parted = next(
        (i for i, (a, b) in enumerate(zip(ours, answer["greedy_ids"])) if a["id"] != b), None
    )
    if parted is not None:
        assert answer["margins"][parted] < TIE_MARGIN, f"parts from transformers at {parted}"
    worst = max(
        abs(float(step["logprobs"][token]) - logprob)
        for step, top in zip(ours[:parted], answer["top_logprobs"])
        for token, logprob in top
    )
    assert worst <= LOGPROB_TOLERANCE, f"a top logprob is {worst:.4f} from transformers'"


def test_the_folders_tokenizer_gives_the_fixtures_ids(scratch):
    """The tokenizer converted from tokenizer.json is the fixtures' GGUF vocabulary: the same
    tokens, and the same ids for every prompt."""
    from ollamakit.lib.tokenizers import load_tokenizer

    path = converted("mixtral", scratch)
    with GGUFFile.open(path) as gguf:
        tokens = gguf.metadata["tokenizer.ggml.tokens"]
        tokenizer = load_tokenizer(gguf.metadata)
    assert tokens == fixtures.tokenizer_keys()["tokenizer.ggml.tokens"]
    for text in fixtures.PROMPTS:
        assert tokenizer.encode(text, add_special=False) == fixtures.prompt_ids(text)


@pytest.mark.parametrize("name", ["mixtral", "qwen3moe"])
def test_quantize_on_create_quantizes_each_expert(client, models_dir, tmp_path, name):
    """A folder with experts created with ``quantize``: each expert's matrix in the 3-D tensors is
    quantized on its own rows (dequantized, it is that expert's float16 matrix within the type's
    error), the router stays float32, and the model generates."""
    folder = arch_folders.write(name, tmp_path / name)
    reply = client.simulate_post(
        "/api/create",
        json={"model": name, "files": upload(client, folder_files(folder)), "quantize": "q4_K_M"},
    )
    assert reply.status_code == 200, reply.text
    quantized = model_layer(models_dir, name)
    source = converted(name, tmp_path)
    with GGUFFile.open(quantized) as small, GGUFFile.open(source) as full:
        types = {t.name: t.ggml_type for t in small.tensors}
        assert types["blk.0.ffn_gate_inp.weight"] == F32
        for tensor in ("ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"):
            key = f"blk.1.{tensor}.weight"
            assert types[key] not in (F32, F16), key
            got, want = small.tensor(key), full.tensor(key)
            assert got.shape == want.shape and got.ndim == 3
            for expert in range(want.shape[0]):  # each expert's own matrix, in its place
                error = np.abs(got[expert] - want[expert]).mean() / np.abs(want[expert]).mean()
                assert error < 0.1, (key, expert, error)
    generated = client.simulate_post(
        "/api/generate",
        json={
            "model": name,
            "prompt": "Once upon a time",
            "raw": True,
            "stream": False,
            "options": {"num_predict": 4, "temperature": 0},
        },
    )
    assert generated.status_code == 200 and generated.json["eval_count"] >= 1


def _plan(folder: Path):
    return plan_conversion(ModelFolder(folder_files(folder)), "x")


def test_a_missing_expert_is_named(tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = arch_folders.write("qwen3moe", tmp_path / "m")
    weights = load_file(folder / "model.safetensors")
    del weights["model.layers.1.mlp.experts.3.up_proj.weight"]
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(InvalidModelFile, match=r"lacks expert 3 of blk\.1\.ffn_up_exps\.weight"):
        _plan(folder)


@pytest.mark.parametrize(
    "name,change,message",
    [
        ("qwen3moe", {"mlp_only_layers": [1]}, "layers without experts are not supported"),
        ("qwen3moe", {"norm_topk_prob": False}, "norm_topk_prob false is not supported"),
        ("qwen3moe", {"num_experts": 4}, r"has no place|beyond"),
        ("mixtral", {"num_experts_per_tok": 9}, "9 experts per token of 4"),
        ("gemma2", {"query_pre_attn_scalar": 64}, "query_pre_attn_scalar other than 16"),
        ("phi3-longrope", {"rope_parameters": {"rope_type": "dynamic"}}, "'dynamic'"),
    ],
)
def test_configs_the_engine_would_run_otherwise_are_refused(tmp_path, name, change, message):
    folder = arch_folders.write(name, tmp_path / "m")
    config = {**json.loads((folder / "config.json").read_text()), **change}
    if name == "phi3-longrope" and "rope_parameters" in change:  # LongRoPE's factors kept
        config["rope_parameters"] = {
            **arch_folders.config(name)["rope_parameters"],
            **change["rope_parameters"],
        }
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidModelFile, match=message):
        _plan(folder)
