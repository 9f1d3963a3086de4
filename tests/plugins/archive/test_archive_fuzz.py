"""Archives damaged at random: every one is imported whole or refused with a 400 that leaves the
store as it was; never a 500, never a model whose blobs are not all there and right."""

from __future__ import annotations

import hashlib

from falcon.testing import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ollamakit import manifest as mf
from ollamakit.config import Settings
from ollamakit.kernel import make_kernel
from ollamakit.names import ModelName
from ollamakit.web import create_app


def snapshot(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def make_archive(tmp_path) -> bytes:
    kernel = make_kernel(Settings(models_dir=tmp_path / "source"))
    try:
        store = kernel.store
        weights, size = store.add_bytes(bytes(range(256)) * 9)
        config, config_size = store.add_bytes(b'{"model_format":"gguf"}')
        template, template_size = store.add_bytes(b"{{ .Prompt }}")
        manifest = mf.Manifest(
            mf.Layer(mf.CONFIG_MEDIA_TYPE, config, config_size),
            [mf.Layer(mf.MODEL, weights, size), mf.Layer(mf.TEMPLATE, template, template_size)],
        )
        store.write_manifest(ModelName.parse("fuzzed"), manifest)
        client = TestClient(create_app(kernel), headers={"Host": "localhost"})
        return client.simulate_post("/api/export", json={"model": "fuzzed"}).content
    finally:
        kernel.close()


def test_randomly_damaged_archives(tmp_path):
    archive = make_archive(tmp_path)
    target = tmp_path / "target"
    kernel = make_kernel(Settings(models_dir=target))
    client = TestClient(create_app(kernel), headers={"Host": "localhost"})
    empty = snapshot(target)
    edits = st.lists(
        st.tuples(st.integers(0, len(archive) - 1), st.integers(0, 255)), min_size=1, max_size=4
    )

    @settings(
        max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(edits=edits, cut=st.one_of(st.none(), st.integers(0, len(archive))))
    def check(edits, cut):
        data = bytearray(archive)
        for position, value in edits:
            data[position] = value
        data = bytes(data[:cut] if cut is not None else data)
        result = client.simulate_post("/api/import", body=data)
        assert result.status_code in (200, 400), result.text
        if result.status_code == 400:
            assert result.json["error"].startswith(("invalid archive: ", "missing request body"))
            assert snapshot(target) == empty
            return
        # A change the format tolerates (padding, a header field, the model's name in the index).
        (model,) = kernel.store.list()
        for digest in model.manifest.digests():
            assert (
                "sha256:" + hashlib.sha256(kernel.store.blob_path(digest).read_bytes()).hexdigest()
                == digest
            )
        kernel.store.delete(model.name)
        assert snapshot(target) == empty

    try:
        check()
    finally:
        kernel.close()
