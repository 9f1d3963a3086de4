"""A pull into a store that streams (the s3 driver, on the test S3 server) sends each large blob
to the bucket while it downloads, through the storage's blob writer, instead of downloading it
whole and uploading it after; a blob that does not hash to its digest leaves nothing there."""

from __future__ import annotations

import hashlib
import os

import pytest
from registry_fakes import FakeRegistry

from ollamakit.config import Settings
from ollamakit.errors import OllamaError
from ollamakit.kernel import make_kernel
from ollamakit_registry.pull import pull_model
from ollamakit_s3store import S3Storage
from ollamakit_s3store.transfer import MultipartWriter

MB = 1 << 20


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def kernel(s3_bucket, tmp_path):
    kernel = make_kernel(Settings(models_dir=tmp_path / "models", storage="s3"))
    yield kernel
    kernel.close()


@pytest.fixture
def spied(monkeypatch):
    """The blobs that went up by a local file (put_blob) and the parts a writer sent."""
    seen: dict[str, list] = {"put_blob": [], "parts": []}
    put_blob, upload_part = S3Storage.put_blob, MultipartWriter._upload_part

    def spy_put(self, digest, source):
        seen["put_blob"].append(digest)
        return put_blob(self, digest, source)

    def spy_part(self, number, data):
        seen["parts"].append((self.digest, number))
        return upload_part(self, number, data)

    monkeypatch.setattr(S3Storage, "put_blob", spy_put)
    monkeypatch.setattr(MultipartWriter, "_upload_part", spy_part)
    return seen


def test_a_pulled_blob_streams_into_the_bucket(kernel, fake_registry, spied):
    layer = os.urandom(13 * MB)  # three parts of 5 MiB
    fake_registry.add_model("library/big:latest", layer)
    events = list(pull_model(kernel, f"{fake_registry.host}/library/big:latest", insecure=True))
    assert events[-1] == {"status": "success"}
    storage = kernel.storage
    assert sha(layer) not in spied["put_blob"]  # not uploaded from the finished file
    assert sorted(n for d, n in spied["parts"] if d == sha(layer)) == [1, 2, 3]
    with storage.open_blob(sha(layer)) as fh:
        assert fh.read() == layer
    assert storage.uploads_in_flight() == []
    assert [p.name for p in storage.scratch_dir().iterdir()] == []


def test_a_pulled_blob_with_the_wrong_bytes_leaves_nothing(kernel, fake_registry: FakeRegistry):
    layer = os.urandom(13 * MB)
    fake_registry.add_model("library/bad:latest", layer)
    fake_registry.blobs[sha(layer)] = os.urandom(len(layer))  # what the registry sends instead
    with pytest.raises(OllamaError, match="digest mismatch"):
        list(pull_model(kernel, f"{fake_registry.host}/library/bad:latest", insecure=True))
    storage = kernel.storage
    assert not storage.has_blob(sha(layer))
    assert storage.uploads_in_flight() == []
    assert kernel.store.get(f"{fake_registry.host}/library/bad:latest") is None
