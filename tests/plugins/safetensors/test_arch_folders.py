"""Create from the safetensors folders of phi3 (LongRoPE), gemma2, mixtral, qwen3moe, qwen3, olmo3,
granite, starcoder2, gpt-oss (MXFP4 experts, and float ones) and deepseek2 (deepseek-v3's and
deepseek-v2-lite's shapes).

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
from ollamakit.lib.gguf import GGUFFile, GGUFWriter
from ollamakit.testing import architectures as fixtures
from ollamakit.testing.agreement import TIE_MARGIN
from test_create_from_folder import upload

LOGPROB_TOLERANCE = 0.03
F32, F16, MXFP4 = 0, 1, 39  # ggml types
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
    # deepseek2-lite's fixture is in the older attn_kv_b form; the folder converts to the current
    reference = fixtures.build(
        fixture, scratch / f"{fixture}-fixture.gguf", expert_type="F16", as_converted=True
    )
    assert layout(converted(name, scratch)) == layout(reference)


def test_long_rope_factors_are_the_configs(scratch):
    config = arch_folders.config("phi3-longrope")["rope_parameters"]
    with GGUFFile.open(converted("phi3-longrope", scratch)) as gguf:
        assert gguf.metadata["phi3.rope.scaling.attn_factor"] == pytest.approx(np.sqrt(1.25))
        for kind in ("long", "short"):
            stored = gguf.tensor(f"rope_factors_{kind}.weight")
            np.testing.assert_array_equal(stored, np.float32(config[f"{kind}_factor"]))


def test_mxfp4_experts_hold_the_folders_values(scratch):
    """Each expert's MXFP4 matrix, read back through the GGUF reader, holds the values of the
    folder's blocks as the format defines them (per byte the even value in the low nibble, an
    e2m1 code times two to its exponent less 127), the interleaved gate and up rows apart."""
    from safetensors.numpy import load_file

    e2m1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6])
    path = converted("gpt-oss", scratch)
    stored = load_file(scratch / "gpt-oss" / "model.safetensors")

    def values(matrix: str) -> np.ndarray:
        blocks = stored[f"model.layers.1.mlp.experts.{matrix}_blocks"]
        scales = stored[f"model.layers.1.mlp.experts.{matrix}_scales"].astype(np.int32) - 127
        codes = np.stack([blocks & 0x0F, blocks >> 4], axis=-1).reshape(*blocks.shape[:-1], 32)
        decoded = np.ldexp(e2m1[codes], scales[..., None])
        return decoded.reshape(*blocks.shape[:2], -1)  # (experts, rows, row)

    gate_up = values("gate_up_proj")
    expected = {"ffn_gate_exps": gate_up[:, 0::2], "ffn_up_exps": gate_up[:, 1::2]}
    expected["ffn_down_exps"] = values("down_proj")
    with GGUFFile.open(path) as gguf:
        for name, want in expected.items():
            np.testing.assert_array_equal(gguf.tensor(f"blk.1.{name}.weight"), want)


@pytest.mark.parametrize(
    "name,index", [(n, i) for n in NAMES for i in range(len(fixtures.PROMPTS))]
)
def test_the_converted_file_runs_as_transformers_runs_the_folder(name, index, scratch):
    answer = json.loads(RECORDED.read_text())["folders"][name][index]
    assert answer["prompt"] == fixtures.PROMPTS[index]
    path = converted(name, scratch)
    ours = _steps(path, answer)
    parted = next(
        (i for i, (a, b) in enumerate(zip(ours, answer["greedy_ids"])) if a["id"] != b), None
    )
    if parted is not None:
        assert answer["margins"][parted] < TIE_MARGIN, f"parts from transformers at {parted}"
    if name in arch_folders.MXFP4_FOLDERS:
        # ggml multiplies MXFP4 blocks by activations rounded to 8 bits, as llama.cpp does,
        # which moves these logprobs by up to 0.2 from transformers' float ones: the values
        # converted are checked with the experts expanded to float32
        ours = _steps(expanded(path, scratch / f"{name}-expanded.gguf"), answer)
    worst = max(
        abs(float(step["logprobs"][token]) - logprob)
        for step, top in zip(ours[:parted], answer["top_logprobs"])
        for token, logprob in top
    )
    assert worst <= LOGPROB_TOLERANCE, f"a top logprob is {worst:.4f} from transformers'"


def _steps(path: Path, answer: dict) -> list[dict]:
    runner = load_runner(
        str(path), GgmlBackend(), {"num_thread": 2, "kv_cache_type": "f32"}, with_tokenizer=False
    )
    try:
        # a context within the original one: transformers' LongRoPE takes the short factors
        # for a sequence that short
        return fixtures.ours_steps(
            runner, fixtures.prompt_ids(answer["prompt"]), len(answer["greedy_ids"])
        )
    finally:
        runner.close()


@cache
def expanded(path: Path, out: Path) -> Path:
    """``path`` with its MXFP4 tensors as the float32 values their blocks hold."""
    with GGUFFile.open(path) as gguf:
        writer = GGUFWriter(out)
        writer.add_metadata(gguf.metadata, gguf.metadata_types)
        for t in gguf.tensors:
            if t.ggml_type == MXFP4:
                writer.add_tensor(t.name, np.ascontiguousarray(gguf.tensor(t.name), np.float32))
            else:
                writer.add_tensor(t.name, gguf.raw(t.name).tobytes(), t.ggml_type, tuple(t.shape))
        return writer.write()


@pytest.mark.parametrize("name", ["mixtral", "gpt-oss", "deepseek2"])
def test_the_folders_tokenizer_gives_the_fixtures_ids(scratch, name):
    """The tokenizer converted from tokenizer.json is the fixtures' GGUF vocabulary: the same
    tokens, and the same ids for every prompt."""
    from ollamakit.lib.tokenizers import load_tokenizer

    path = converted(name, scratch)
    with GGUFFile.open(path) as gguf:
        tokens = gguf.metadata["tokenizer.ggml.tokens"]
        tokenizer = load_tokenizer(gguf.metadata)
    assert tokens == fixtures.tokenizer_keys()["tokenizer.ggml.tokens"]
    for text in fixtures.PROMPTS:
        assert tokenizer.encode(text, add_special=False) == fixtures.prompt_ids(text)


@pytest.mark.parametrize("name", ["mixtral", "qwen3moe", "gpt-oss", "gpt-oss-float", "deepseek2"])
def test_quantize_on_create_quantizes_each_expert(client, models_dir, tmp_path, name):
    """A folder with experts created with ``quantize``: each expert's matrix in the 3-D tensors is
    quantized on its own rows (dequantized, it is that expert's float16 matrix within the type's
    error), the router stays float32, and the model generates. MXFP4 experts are copied as they
    are; deepseek2's per-head attention halves (3-D too) are quantized where their rows allow."""
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
        assert types["blk.1.ffn_gate_inp.weight"] == F32
        full_types = {t.name: t.ggml_type for t in full.tensors}
        for tensor in ("ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"):
            key = f"blk.1.{tensor}.weight"
            if full_types[key] == MXFP4:
                assert types[key] == MXFP4 and small.raw(key).tobytes() == full.raw(key).tobytes()
                continue
            assert types[key] not in (F32, F16), key
            got, want = small.tensor(key), full.tensor(key)
            assert got.shape == want.shape and got.ndim == 3
            for expert in range(want.shape[0]):  # each expert's own matrix, in its place
                error = np.abs(got[expert] - want[expert]).mean() / np.abs(want[expert]).mean()
                assert error < 0.1, (key, expert, error)
        if name == "deepseek2":  # rows of the latent (32) are whole Q5_0 blocks
            assert types["blk.1.attn_v_b.weight"] not in (F32, F16)
            assert small.tensor("blk.1.attn_v_b.weight").shape == (4, 24, 32)
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
        ("gpt-oss", {"layer_types": ["full_attention"] * 2}, "layer_types other than"),
        ("gpt-oss", {"swiglu_limit": 10.0}, "swiglu_limit other than 7.0"),
        ("gpt-oss", {"quantization_config": {"quant_method": "fp8"}}, "only MXFP4"),
        ("deepseek2-lite", {"topk_method": "group_limited_greedy"}, "'group_limited_greedy'"),
        ("deepseek2", {"scoring_func": "softmax"}, "scoring_func 'softmax'"),
        ("deepseek2", {"rope_interleave": False}, "rope_interleave false"),
        ("deepseek2", {"n_group": 3}, "not a multiple of n_group"),
        ("deepseek2", {"rope_parameters": {"mscale": 0.5}}, "mscale other than mscale_all_dim"),
        # finite, but past what the file's float32 holds
        ("qwen3", {"rms_norm_eps": 1e308}, r"rms_norm_eps = 1e\+308 is not a finite number"),
        ("deepseek2", {"routed_scaling_factor": -1e39}, "routed_scaling_factor"),
        ("phi3-longrope", {"rope_parameters": {"rope_type": 3}}, "rope scaling 3"),
    ],
)
def test_configs_the_engine_would_run_otherwise_are_refused(tmp_path, name, change, message):
    folder = arch_folders.write(name, tmp_path / "m")
    config = {**json.loads((folder / "config.json").read_text()), **change}
    if "rope_parameters" in change:  # the other rope settings kept
        config["rope_parameters"] = {
            **arch_folders.config(name)["rope_parameters"],
            **change["rope_parameters"],
        }
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidModelFile, match=message):
        _plan(folder)
