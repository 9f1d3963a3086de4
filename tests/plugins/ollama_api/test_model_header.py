"""A model format other than GGUF, through the kernel's contracts alone: a plugin reads its
files' headers (hook ``read_model_header``) and an engine claims its architecture (hook
``check_model``). ``/api/show`` and create read every fact of a model file through its
``ModelHeader``, and create refuses a parent model no engine can run, naming its architecture."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from ollamakit import manifest as mf
from ollamakit.headers import ModelHeader
from ollamakit.hookspecs import hookimpl
from ollamakit.names import ModelName

from model_store_helpers import create, snapshot, tiny_gguf, upload

MAGIC = b"TOYM"


@dataclass(frozen=True)
class ToyTensor:
    name: str
    shape: tuple[int, ...]
    type_name: str = "F16"


@dataclass(frozen=True)
class ToyHeader:
    architecture: str
    metadata: dict
    tensors: list
    format: str = "toy"
    file_type: str = "F16"
    float32_keys: frozenset = field(default_factory=frozenset)
    chat_template: str | None = None

    @property
    def parameter_count(self) -> int:
        return sum(math.prod(t.shape) for t in self.tensors)


class ToyFormat:
    """Reads ``TOYM`` + JSON files: the whole of what a format plugin gives the kernel."""

    @hookimpl
    def read_model_header(self, kernel, path):
        with open(path, "rb") as fh:
            if fh.read(4) != MAGIC:
                return None
            data = json.loads(fh.read(1 << 16))
        tensors = [ToyTensor(name, tuple(shape)) for name, shape in data["tensors"].items()]
        return ToyHeader(
            data["architecture"], data["metadata"], tensors, chat_template=data.get("chat_template")
        )


class ToyEngine:
    @hookimpl
    def check_model(self, kernel, header):
        return True if header.architecture == "toyarch" else None


def store_toy(kernel, name: str, chat_template: str | None = None) -> None:
    """A toy model written straight into the store (as a pull would bring it)."""
    body = {
        "architecture": "toyarch",
        "chat_template": chat_template,
        "metadata": {
            "general.architecture": "toyarch",
            "toyarch.block_count": 2,
            "toyarch.context_length": 512,
        },
        "tensors": {"embed": [64, 1000], "blk.0.w": [64, 64], "blk.1.w": [64, 64]},
    }
    store = kernel.store
    digest, size = store.add_bytes(MAGIC + json.dumps(body).encode())
    config = {"model_format": "toy", "model_family": "toyarch", "file_type": "F16"}
    config_digest, config_size = store.add_bytes(json.dumps(config).encode())
    manifest = mf.Manifest(
        mf.Layer(mf.CONFIG_MEDIA_TYPE, config_digest, config_size),
        [mf.Layer(mf.MODEL, digest, size)],
    )
    store.write_manifest(ModelName.parse(name), manifest)


def test_the_gguf_plugin_provides_model_headers(kernel, client, tmp_path):
    digest = upload(client, tiny_gguf(tmp_path / "m.gguf", file_type=1))
    header = kernel.store.model_header(digest)
    assert isinstance(header, ModelHeader)
    assert (header.format, header.architecture, header.file_type) == ("gguf", "llama", "F16")
    assert header.parameter_count == sum(math.prod(t.shape) for t in header.tensors) > 0
    assert kernel.store.model_header(upload(client, b"neither GGUF nor anything else")) is None


def test_show_reads_a_model_s_facts_through_its_header(kernel, client):
    kernel.pm.register(ToyFormat(), name="toy-format")
    store_toy(kernel, "toy", chat_template="{% for m in messages %}{{ m.content }}{% endfor %}")
    shown = client.simulate_post("/api/show", json={"model": "toy"}).json
    assert shown["model_info"] == {
        "general.architecture": "toyarch",
        "general.parameter_count": 72_192,
        "toyarch.block_count": 2,
        "toyarch.context_length": 512,
    }
    assert shown["tensors"] == [
        {"name": "embed", "type": "F16", "shape": [64, 1000]},
        {"name": "blk.0.w", "type": "F16", "shape": [64, 64]},
        {"name": "blk.1.w", "type": "F16", "shape": [64, 64]},
    ]
    assert (
        shown["template"] == "{% for m in messages %}{{ m.content }}{% endfor %}"
    )  # the file's own
    assert shown["capabilities"] == ["completion"]


def test_create_refuses_a_parent_no_engine_runs(kernel, client, models_dir):
    kernel.pm.register(ToyFormat(), name="toy-format")
    store_toy(kernel, "toy")
    before = snapshot(models_dir)
    for stream in (True, False):
        response = client.simulate_post(
            "/api/create", json={"model": "child", "from": "toy", "system": "hi", "stream": stream}
        )
        assert response.status_code == 400, response.text
        assert response.json == {
            "error": "\"toy:latest\": unsupported model architecture 'toyarch'"
        }
    assert snapshot(models_dir) == before


def test_create_from_a_parent_an_engine_runs_describes_it_from_its_header(kernel, client):
    kernel.pm.register(ToyFormat(), name="toy-format")
    kernel.pm.register(ToyEngine(), name="toy-engine")
    store_toy(kernel, "toy")
    assert create(client, model="child", **{"from": "toy"}, system="hi")[-1] == {
        "status": "success"
    }
    details = client.simulate_post("/api/show", json={"model": "child"}).json["details"]
    assert details == {
        "parent_model": "toy:latest",
        "format": "toy",
        "family": "toyarch",
        "families": ["toyarch"],
        "parameter_size": "72K",
        "quantization_level": "F16",
        "context_length": 512,
    }
