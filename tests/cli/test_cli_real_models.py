"""The README's quick start, and a safetensors folder, through the CLI with real model files."""

import hashlib

import httpx
import pytest

from ollamakit.testing import models

pytestmark = [pytest.mark.real_model, pytest.mark.slow]


def test_create_smollm2_from_its_gguf(cli, server, tmp_path):
    gguf = models.smollm2_q4_1()
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(
        f"FROM {gguf}\nSYSTEM You are a concise assistant.\nPARAMETER temperature 0.2\n"
    )
    result = cli("create", "smol", "-f", str(modelfile))
    assert "copying file sha256:" in result.stderr and " 98 MB/98 MB" in result.stderr
    assert result.stderr.rstrip().endswith("success")

    [row] = cli("list").stdout.splitlines()[1:]
    assert row.split()[:1] == ["smol:latest"] and "98 MB" in row
    summary = cli("show", "smol").stdout
    for expected in (
        "architecture        llama",
        "parameters          134.52M",
        "context length      8192",
        "quantization        Q4_1",
        "temperature    0.2",
        "You are a concise assistant.",
    ):
        assert expected in summary


def test_a_safetensors_folder_uploads_every_file_under_its_relative_name(cli, server, tmp_path):
    folder = models.all_minilm_l6_v2()
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {folder}\n")
    result = cli("create", "minilm", "-f", str(modelfile), ok=False)
    expected = ["model.safetensors", "config.json", "tokenizer.json", "1_Pooling/config.json"]
    for name in expected:
        digest = "sha256:" + hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert httpx.head(f"{server.url}/api/blobs/{digest}").status_code == 200, name
    if result.exit_code == 0:
        assert "bert" in cli("show", "minilm").stdout
    else:  # the server must refuse in words, not with a traceback
        assert (
            result.stderr.splitlines()[-1].startswith("Error: ")
            and "Traceback" not in result.stderr
        )
