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
    # This process's temporary folder, inside blobs/ (which Ollama's pruning skips): it lives
    # as long as the store does.
    assert scratch.parent.parent == models / "blobs" and scratch.parent.name.startswith(
        "sha256-tmp-"
    )
    assert scratch.name.startswith("sha256-")
    kernel.close()
    assert names(models) == ["blobs", "manifests"]
    assert names(models / "blobs") == sorted(
        ["sha256-" + sha256_digest(data)[7:], "sha256-" + digest[7:]]
    )


def test_start_up_removes_stale_unowned_temporary_files_only(kernel):
    """Temporary files nobody owns (Ollama's ``sha256-<random>``, earlier versions' manifest
    temporaries) go after an hour, as Ollama's pruning does; a pull's partial files stay."""
    store, blobs = kernel.store, kernel.settings.models_dir / "blobs"
    stale, fresh = blobs / "sha256-8125371", blobs / "sha256-1234567.gguf"
    partial = blobs / f"sha256-{'0' * 64}-partial"
    others = blobs / "notes.txt"  # not a name ollamakit or Ollama makes: not its to remove
    manifest_temp = (
        kernel.settings.models_dir
        / "manifests"
        / "registry.ollama.ai"
        / "library"
        / "m"
        / ".tmp-x1y2"
    )
    manifest_temp.parent.mkdir(parents=True)
    long_ago = time.time() - 7200
    for path in (stale, fresh, partial, others, manifest_temp):
        path.write_bytes(b"x")
        if path is not fresh:
            os.utime(path, (long_ago, long_ago))
    old_scratch = kernel.settings.models_dir / "tmp" / "k1ll3d.upload"  # an earlier version's
    old_scratch.parent.mkdir()
    old_scratch.write_bytes(b"x")
    os.utime(old_scratch, (long_ago, long_ago))
    owned = store.scratch_file(".upload")
    os.utime(owned, (long_ago, long_ago))  # old, but its process (this one) lives
    store.remove_leftovers()
    assert not stale.exists() and not manifest_temp.exists() and not old_scratch.parent.exists()
    assert fresh.exists() and partial.exists() and others.exists() and owned.exists()


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
