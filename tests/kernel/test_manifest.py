"""``ollamakit.manifest``: manifests written byte for byte as Ollama writes them, and read strictly
(a manifest comes from disk or from a registry, so it is checked before anything trusts it)."""

from __future__ import annotations

import hashlib
import json

import pytest

from ollamakit import manifest as mf
from ollamakit.errors import BadRequest

A, B, C = ("sha256:" + hashlib.sha256(x).hexdigest() for x in (b"config", b"model", b"template"))


def sample() -> mf.Manifest:
    return mf.Manifest(
        mf.Layer(mf.CONFIG_MEDIA_TYPE, A, 10),
        [mf.Layer(mf.MODEL, B, 1000), mf.Layer(mf.TEMPLATE, C, 20, from_="x", name="t")],
    )


def test_written_as_ollama_writes_it():
    data = sample().to_bytes()
    assert data.endswith(b"}\n") and b" " not in data  # compact, one trailing newline
    obj = json.loads(data)
    assert list(obj) == ["schemaVersion", "mediaType", "config", "layers"]
    assert obj["schemaVersion"] == 2 and obj["mediaType"] == mf.MANIFEST_MEDIA_TYPE
    assert obj["layers"][0] == {
        "mediaType": mf.MODEL,
        "digest": B,
        "size": 1000,
    }  # no empty annotations
    assert obj["layers"][1] == {
        "mediaType": mf.TEMPLATE,
        "digest": C,
        "size": 20,
        "from": "x",
        "name": "t",
    }


def test_read_back_whole():
    parsed = mf.Manifest.parse(sample().to_bytes())
    assert parsed == sample()
    assert parsed.size == 1030
    assert parsed.digests() == {A, B, C}
    assert parsed.find(mf.MODEL) == [mf.Layer(mf.MODEL, B, 1000)]
    assert parsed.find(mf.ADAPTER) == []


def test_json_escapes_as_go_does():
    assert mf.go_json({"t": "<a & b>\u2028"}) == '{"t":"\\u003ca \\u0026 b\\u003e\\u2028"}'
    assert mf.go_json("é") == '"é"'  # not ASCII-escaped: Go writes UTF-8


def test_the_models_digest_is_that_of_the_file():
    data = sample().to_bytes()
    assert mf.manifest_digest(data) == hashlib.sha256(data).hexdigest()


def layer(**changes) -> dict:
    return {"mediaType": mf.MODEL, "digest": B, "size": 1, **changes}


def manifest_bytes(config=None, layers=None, **top) -> bytes:
    obj = {
        "schemaVersion": 2,
        "config": config or layer(mediaType=mf.CONFIG_MEDIA_TYPE),
        "layers": layers or [],
        **top,
    }
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "invalid manifest"),
        (b"\xff\xfe", "invalid manifest"),
        (b"[]", "schemaVersion must be 2"),
        (manifest_bytes(schemaVersion=1), "schemaVersion must be 2"),
        (manifest_bytes(layers={"a": 1}), "bad layers"),
        (manifest_bytes(layers=[layer()] * (mf.MAX_LAYERS + 1)), "bad layers"),
        (json.dumps({"schemaVersion": 2}).encode(), "layer is not an object"),
        (manifest_bytes(layers=["x"]), "layer is not an object"),
        (manifest_bytes(layers=[layer(mediaType="")]), "bad layer media type"),
        (manifest_bytes(layers=[layer(mediaType="m" * 257)]), "bad layer media type"),
        (manifest_bytes(layers=[layer(digest="sha256:abc")]), "bad layer digest"),
        (
            manifest_bytes(layers=[layer(digest=B.upper().replace("SHA256", "sha256"))]),
            "bad layer digest",
        ),
        (manifest_bytes(layers=[layer(digest=B + "\n")]), "bad layer digest"),
        (manifest_bytes(layers=[layer(digest=B.replace(":", "-"))]), "bad layer digest"),
        (manifest_bytes(layers=[layer(digest=None)]), "bad layer digest"),
        (manifest_bytes(layers=[layer(size=-1)]), "bad layer size"),
        (manifest_bytes(layers=[layer(size=True)]), "bad layer size"),
        (manifest_bytes(layers=[layer(size="1")]), "bad layer size"),
        (manifest_bytes(layers=[layer(size=1.5)]), "bad layer size"),
        (manifest_bytes(layers=[layer(**{"from": 3})]), "bad layer annotation"),
    ],
)
def test_a_bad_manifest_is_refused_saying_what(data, says):
    with pytest.raises(BadRequest, match=says):
        mf.Manifest.parse(data)


def test_a_huge_manifest_is_refused_before_it_is_parsed():
    data = manifest_bytes() + b" " * mf.MAX_MANIFEST_BYTES
    with pytest.raises(BadRequest, match="too large"):
        mf.Manifest.parse(data)


def test_a_bad_digest_is_quoted_only_in_part():
    with pytest.raises(BadRequest) as caught:
        mf.Manifest.parse(manifest_bytes(layers=[layer(digest="x" * 10_000)]))
    assert len(caught.value.message) < 200
