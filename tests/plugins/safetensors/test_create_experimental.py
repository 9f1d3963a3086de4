"""``ollamakit create --experimental``, as Ollama's CLI runs it (cmd/cmd.go CreateHandler,
x/create/client ConfigFromModelfile and CreateModel): the safetensors folder is made into a model
on this side, written straight into the local store, with the Modelfile read as Ollama's
experimental path reads it; the server then serves the model like any other."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ollamakit.cli import build_cli
from tiny_folders import qwen2_folder


def create(tmp_path, *args, host="127.0.0.1:9", cwd=None):
    env = {"OLLAMA_MODELS": str(tmp_path / "models"), "OLLAMA_HOST": host}
    runner = CliRunner()
    if cwd is None:
        return runner.invoke(build_cli(), ["create", *args], env=env)
    import os

    before = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(build_cli(), ["create", *args], env=env)
    finally:
        os.chdir(before)


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "models").mkdir()
    project = tmp_path / "project"
    qwen2_folder(project / "hf")
    return project


def test_a_folder_becomes_a_model_in_the_local_store(tmp_path, folder):
    (folder / "Modelfile").write_text(
        "FROM hf\n"
        "SYSTEM You are tiny.\n"
        "MESSAGE user skipped\n"
        "ADAPTER ./not-read\n"
        "LICENSE first\n"
        "LICENSE second\n"
        "PARAMETER temperature 0\n"
        "PARAMETER mirostat 1\n"
    )
    # No server is listening on 127.0.0.1:9: the model is written here, as Ollama's CLI does.
    made = create(tmp_path, "tiny", "--experimental", "-f", str(folder / "Modelfile"), "-q", "int8")
    assert made.exit_code == 0, made.output
    assert made.stdout.endswith("Created safetensors model 'tiny'\n")

    from ollamakit.config import Settings
    from ollamakit.kernel import make_kernel

    local = make_kernel(Settings(models_dir=tmp_path / "models"))
    try:
        model = local.store.get("tiny")
        assert model is not None
        assert model.config["requires"] == "0.19.0"  # Ollama's least for these models
        assert model.config["file_type"] == "Q8_0"  # int8
        assert model.system == "You are tiny."
        assert model.licenses == ["second"]
        assert model.params == {"temperature": 0}
        assert model.messages == []
        assert model.adapter_paths == []
        from falcon.testing import TestClient

        from ollamakit.web import create_app

        served = TestClient(create_app(local), headers={"Host": "localhost"})
        shown = served.simulate_post("/api/show", json={"model": "tiny"}).json
        assert shown["details"]["family"] == "qwen2"
        answer = served.simulate_post(
            "/api/generate",
            json={"model": "tiny", "prompt": "hi", "stream": False, "options": {"num_predict": 3}},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json["eval_count"] == 3
    finally:
        local.close()


def test_without_a_modelfile_the_folder_is_the_current_one(tmp_path, folder):
    made = create(tmp_path, "here", "--experimental", cwd=folder / "hf")
    assert made.exit_code == 0, made.output
    config = json.loads(next((tmp_path / "models" / "manifests").rglob("latest")).read_text())[
        "layers"
    ]
    assert [layer["mediaType"] for layer in config] == ["application/vnd.ollama.image.model"]


@pytest.mark.parametrize(
    ("args", "modelfile", "error"),
    [
        (
            ["-q", "q4_0"],
            "FROM hf\n",
            'unsupported --quantize "q4_0": supported types are int4, int8, nvfp4, mxfp4, mxfp8',
        ),
        (["-q", "nvfp4"], "FROM hf\n", "--quantize nvfp4 is not available"),
        (["--draft-quantize", "int8"], "FROM hf\n", "--draft-quantize requires a DRAFT model"),
        (
            [],
            "FROM hf\nREQUIRES 0.18.2\n",
            "requires 0.18.2 is below the minimum supported version 0.19.0 for safetensors models",
        ),
        (
            [],
            "FROM hf\nDRAFT other\n",
            "DRAFT model references are not supported with --experimental yet: other",
        ),
        (
            [],
            "FROM nowhere\n",
            "nowhere is not a supported safetensors model directory (needs config.json + *.safetensors)",
        ),
    ],
)
def test_what_ollama_refuses(tmp_path, folder, args, modelfile, error):
    (folder / "Modelfile").write_text(modelfile)
    made = create(tmp_path, "m", "--experimental", "-f", str(folder / "Modelfile"), *args)
    assert made.exit_code == 1 and error in made.output, made.output
    assert not (tmp_path / "models" / "manifests").exists()


def test_only_a_server_on_this_machine(tmp_path, folder):
    made = create(
        tmp_path, "m", "--experimental", "-f", str(folder / "Modelfile"), host="10.1.2.3:11434"
    )
    assert made.exit_code == 1
    assert "remote safetensor model creation not yet supported" in made.output
    for host in ("localhost:1", "0.0.0.0", "[::1]:11434"):
        assert (
            "remote safetensor"
            not in create(tmp_path, "m", "--experimental", "-f", "none", host=host).output
        )
