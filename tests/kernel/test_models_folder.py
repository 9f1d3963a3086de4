"""The models folder: Ollama's by default, and Ollama's layout with nothing added, temporary
files included."""

import os
import time
from pathlib import Path

import pytest

from ollamakit.config import Settings
from ollamakit.digests import sha256_digest
from ollamakit.kernel import make_kernel


def test_the_default_is_ollamas_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    assert Settings.from_env().models_dir == tmp_path / ".ollama" / "models"
    assert Settings().models_dir == tmp_path / ".ollama" / "models"


def test_ollama_models_still_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("OLLAMA_MODELS", "~/elsewhere")
    assert Settings.from_env().models_dir == tmp_path / "elsewhere"


@pytest.fixture
def kernel(tmp_path):
    kernel = make_kernel(Settings(models_dir=tmp_path / "models"))
    yield kernel
    kernel.close()


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writes_leave_ollamas_layout_and_nothing_else(kernel):
    store, models = kernel.store, kernel.settings.models_dir
    data = b"weights" * 1000
    assert store.write_blob(sha256_digest(data), [data])
    digest, _ = store.add_bytes(b'{"model_format":"gguf"}')
    scratch = store.scratch_file(".gguf")
    assert scratch.parent == models / "blobs" and scratch.name.startswith("sha256-")
    scratch.unlink()
    assert names(models) == ["blobs", "manifests"]
    assert names(models / "blobs") == sorted(["sha256-" + sha256_digest(data)[7:], "sha256-" + digest[7:]])


def test_start_up_pruning_removes_stale_scratch_files_only(kernel):
    store, blobs = kernel.store, kernel.settings.models_dir / "blobs"
    stale, fresh = store.scratch_file(".gguf"), store.scratch_file()
    partial = blobs / f"sha256-{'0' * 64}-partial"
    partial.write_bytes(b"a pull to resume later")
    others = blobs / "notes.txt"  # not a name ollamakit makes: not its to remove
    others.write_bytes(b"x")
    long_ago = time.time() - 7200
    for path in (stale, partial, others):
        os.utime(path, (long_ago, long_ago))
    store.prune()
    assert not stale.exists()
    assert fresh.exists() and partial.exists() and others.exists()


def test_an_empty_tmp_folder_of_earlier_versions_goes(tmp_path):
    (tmp_path / "models" / "tmp").mkdir(parents=True)
    (tmp_path / "other" / "tmp").mkdir(parents=True)
    (tmp_path / "other" / "tmp" / "kept").write_bytes(b"not empty: left alone")
    for folder in ("models", "other"):
        kernel = make_kernel(Settings(models_dir=tmp_path / folder))
        kernel.storage  # made on first use
        kernel.close()
    assert names(tmp_path / "models") == ["blobs", "manifests"]
    assert (tmp_path / "other" / "tmp" / "kept").exists()
