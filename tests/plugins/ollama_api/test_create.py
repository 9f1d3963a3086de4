"""POST /api/create: statuses, layers, the config blob and the manifest on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ollamakit import manifest as mf
from ollamakit.create import CreateRequest
from ollamakit.digests import is_digest
from ollamakit.errors import BadRequest
from ollamakit.testing.gguf_factory import make_gguf

from model_store_helpers import (
    create,
    digest_of,
    ndjson,
    read_blob,
    read_manifest,
    snapshot,
    tiny_gguf,
    upload,
)

CHATML_JINJA = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture
def model_blob(client, tmp_path):
    return upload(client, tiny_gguf(tmp_path / "tiny.gguf"))


def layers_by_type(models_dir, name):
    return {layer["mediaType"]: layer for layer in read_manifest(models_dir, name)["layers"]}


def test_create_from_gguf_streams_statuses_and_writes_manifest(client, models_dir, model_blob):
    statuses = [s["status"] for s in create(client, model="tiny", files={"tiny.gguf": model_blob})]
    assert statuses[0] == "parsing GGUF"
    assert statuses[1] == f"using existing layer {model_blob}"
    assert statuses[-2:] == ["writing manifest", "success"]

    path = models_dir / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "latest"
    raw = path.read_bytes()
    assert raw.endswith(b"}\n") and b"\n" not in raw[:-1]  # compact, newline-terminated
    manifest = json.loads(raw)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == mf.MANIFEST_MEDIA_TYPE
    assert manifest["config"]["mediaType"] == mf.CONFIG_MEDIA_TYPE
    model_layer = manifest["layers"][0]
    assert model_layer == {
        "mediaType": mf.MODEL,
        "digest": model_blob,
        "size": model_layer["size"],
        "from": "tiny.gguf",
    }

    config_bytes = read_blob(models_dir, manifest["config"]["digest"])
    assert config_bytes.endswith(b"\n")
    config = json.loads(config_bytes)
    assert list(config)[:5] == [
        "model_format",
        "model_family",
        "model_families",
        "model_type",
        "file_type",
    ]
    assert config["model_format"] == "gguf"
    assert config["model_family"] == "llama"
    assert config["model_families"] == ["llama"]
    assert config["model_type"] == "6K"  # 6,496 parameters, in Ollama's rounding
    assert config["file_type"] == "F16"
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["context_length"] == 64 and config["embedding_length"] == 32
    assert "completion" in config["capabilities"]


def test_stream_false_gives_one_success_object(client, model_blob):
    response = client.simulate_post(
        "/api/create", json={"model": "tiny", "files": {"m.gguf": model_blob}, "stream": False}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json == {"status": "success"}


def test_gguf_is_recognised_by_magic_without_suffix(client, models_dir, model_blob):
    create(client, model="nosuffix", files={"weights": model_blob})
    assert layers_by_type(models_dir, "nosuffix")[mf.MODEL]["digest"] == model_blob


def test_request_layers_and_parameter_typing(client, models_dir, model_blob):
    statuses = [
        s["status"]
        for s in create(
            client,
            model="full",
            files={"m.gguf": model_blob},
            template="{{ .System }} {{ .Prompt }}",
            system="be brief",
            license=["MIT", "Apache"],
            parameters={
                "temperature": "0.5",
                "num_ctx": 2048.0,
                "stop": "<|end|>",
                "use_mmap": "false",
                "custom": 1,
            },
            messages=[
                {"role": "user", "content": "a < b & c"},
                {"role": "assistant", "content": "ok"},
            ],
        )
    ]
    assert (
        sum(s.startswith("creating new layer") for s in statuses) == 6
    )  # template, system, 2 licenses, params, messages
    manifest = read_manifest(models_dir, "full")
    kinds = [layer["mediaType"] for layer in manifest["layers"]]
    assert kinds == [
        mf.MODEL,
        mf.TEMPLATE,
        mf.SYSTEM,
        mf.LICENSE,
        mf.LICENSE,
        mf.PARAMS,
        mf.MESSAGES,
    ]
    by_type = {layer["mediaType"]: layer["digest"] for layer in manifest["layers"]}
    params = read_blob(models_dir, by_type[mf.PARAMS])
    # Go's json.Encoder: sorted keys, typed values, whole floats without a fraction, trailing newline
    assert (
        params
        == b'{"custom":1,"num_ctx":2048,"stop":["\\u003c|end|\\u003e"],"temperature":0.5,"use_mmap":false}\n'
    )
    messages = read_blob(models_dir, by_type[mf.MESSAGES])
    assert messages == (
        b'[{"role":"user","content":"a \\u003c b \\u0026 c"},{"role":"assistant","content":"ok"}]\n'
    )
    assert read_blob(models_dir, by_type[mf.SYSTEM]) == b"be brief"


def test_from_parent_copies_layers_and_merges_parameters(client, models_dir, model_blob):
    create(
        client,
        model="base",
        files={"m.gguf": model_blob},
        system="old",
        parameters={"temperature": 0.9, "top_k": 10},
    )
    base = read_manifest(models_dir, "base")
    statuses = [
        s["status"]
        for s in create(client, model="child", **{"from": "base"}, parameters={"temperature": 0.1})
    ]
    assert "parsing GGUF" not in statuses
    child = read_manifest(models_dir, "child")
    model_layer = child["layers"][0]
    assert model_layer["digest"] == base["layers"][0]["digest"]
    assert model_layer["from"] == "base:latest"
    by_type = {layer["mediaType"]: layer["digest"] for layer in child["layers"]}
    assert json.loads(read_blob(models_dir, by_type[mf.PARAMS])) == {
        "temperature": 0.1,
        "top_k": 10,
    }
    assert read_blob(models_dir, by_type[mf.SYSTEM]) == b"old"
    config = json.loads(read_blob(models_dir, child["config"]["digest"]))
    assert config["model_family"] == "llama" and config["file_type"] == "F16"

    show = client.simulate_post("/api/show", json={"model": "child"}).json
    assert show["details"]["parent_model"] == "base:latest"
    assert show["system"] == "old"


def test_from_parent_replaces_template_system_and_messages(client, models_dir, model_blob):
    create(
        client,
        model="base",
        files={"m.gguf": model_blob},
        template="A {{ .Prompt }}",
        system="s1",
        messages=[{"role": "user", "content": "hi"}],
    )
    create(
        client,
        model="child",
        **{"from": "base"},
        template="B {{ .Prompt }}",
        system="s2",
        messages=[{"role": "user", "content": "bye"}],
        license="L",
    )
    layers = read_manifest(models_dir, "child")["layers"]
    kinds = [layer["mediaType"] for layer in layers]
    assert kinds.count(mf.TEMPLATE) == kinds.count(mf.SYSTEM) == kinds.count(mf.MESSAGES) == 1
    show = client.simulate_post("/api/show", json={"model": "child"}).json
    assert show["template"] == "B {{ .Prompt }}"
    assert show["system"] == "s2"
    assert show["messages"] == [{"role": "user", "content": "bye"}]
    assert show["license"] == "L"


def test_recreating_a_model_removes_layers_only_the_old_version_used(
    client, models_dir, model_blob
):
    create(client, model="m", files={"m.gguf": model_blob}, system="first")
    first_system = layers_by_type(models_dir, "m")[mf.SYSTEM]["digest"]
    create(client, model="m", files={"m.gguf": model_blob}, system="second")
    assert not (models_dir / "blobs" / first_system.replace(":", "-")).exists()
    assert (models_dir / "blobs" / model_blob.replace(":", "-")).exists()


def test_adapter_layer(client, models_dir, tmp_path):
    model_blob = upload(
        client, tiny_gguf(tmp_path / "m.gguf")
    )  # its blk.0.attn_q.weight is 32 x 32
    lora = {
        "blk.0.attn_q.weight.lora_a": np.zeros((2, 32), np.float32),
        "blk.0.attn_q.weight.lora_b": np.zeros((32, 2), np.float32),
    }
    meta = {"general.type": "adapter", "general.architecture": "llama", "adapter.type": "lora"}
    adapter = upload(client, make_gguf(tmp_path / "lora.gguf", meta, lora).read_bytes())
    create(client, model="tuned", files={"m.gguf": model_blob}, adapters={"lora.gguf": adapter})
    layers = layers_by_type(models_dir, "tuned")
    assert layers[mf.ADAPTER]["digest"] == adapter
    modelfile = client.simulate_post("/api/show", json={"model": "tuned"}).json["modelfile"]
    assert f"ADAPTER {models_dir / 'blobs' / adapter.replace(':', '-')}" in modelfile


def test_adapter_must_be_an_adapter_and_only_one(client, models_dir, model_blob, tmp_path):
    adapter = upload(client, tiny_gguf(tmp_path / "lora.gguf", general__type="adapter"))
    before = snapshot(models_dir)
    response = client.simulate_post(
        "/api/create",
        json={"model": "x", "files": {"m.gguf": model_blob}, "adapters": {"a.gguf": model_blob}},
    )
    assert response.status_code == 400
    assert "is not a LoRA adapter" in response.json["error"]
    response = client.simulate_post(
        "/api/create",
        json={
            "model": "x",
            "files": {"m.gguf": model_blob},
            "adapters": {"a.gguf": adapter, "b.gguf": adapter},
        },
    )
    assert response.status_code == 400
    assert response.json == {"error": "only one adapter is currently supported"}
    assert snapshot(models_dir) == before


def test_quantize_without_a_quantizer_is_a_clear_400(client, models_dir, model_blob):
    before = snapshot(models_dir)
    response = client.simulate_post(
        "/api/create", json={"model": "q", "files": {"m.gguf": model_blob}, "quantize": "q9_X"}
    )
    assert response.status_code == 400
    assert response.json["error"].startswith("unsupported quantization type Q9_X - ")
    assert snapshot(models_dir) == before


@pytest.mark.parametrize(("file_type", "source_name"), [(1, "F16"), (0, "F32")])
def test_quantize_runs_the_named_quantizer(kernel, models_dir, tmp_path, file_type, source_name):
    """A quantizer plugin is asked for the type; its output becomes the model layer."""
    from falcon.testing import TestClient

    from ollamakit.hookspecs import hookimpl
    from ollamakit.web import create_app

    from ollamakit.interfaces import Quantizer

    quantized = tiny_gguf(tmp_path / "q.gguf", file_type=15)

    class FakeQ4KM(Quantizer):
        name = "Q4_K_M"

        def quantize(self, source, destination, progress=None):
            assert source.read_bytes()[:4] == b"GGUF"
            for done in range(3):
                progress(done + 1, 3)
            destination.write_bytes(quantized)

    class Plugin:
        @hookimpl(tryfirst=True)
        def make_quantizer(self, kernel, name):
            return FakeQ4KM() if name.lower() == "q4_k_m" else None

    kernel.pm.register(Plugin())
    client = TestClient(create_app(kernel), headers={"Host": "localhost"})
    model_blob = upload(client, tiny_gguf(tmp_path / "src.gguf", file_type=file_type))
    events = create(client, model="q", files={"m.gguf": model_blob}, quantize="q4_K_M")
    status = f"quantizing {source_name} model to Q4_K_M"
    progress = [e for e in events if e["status"] == status]
    assert progress[-1] == {"status": status, "digest": "0" * 19, "total": 3, "completed": 3}
    layer = layers_by_type(models_dir, "q")[mf.MODEL]
    assert layer["digest"] == digest_of(quantized)
    config = json.loads(read_blob(models_dir, read_manifest(models_dir, "q")["config"]["digest"]))
    assert config["file_type"] == "Q4_K_M"
    # The scratch output, in this process's temporary folder in blobs/, was moved in or removed.
    blobs = list((models_dir / "blobs").iterdir())
    assert all(is_digest(p.name) for p in blobs if p.is_file())
    assert all(
        p.name.startswith("sha256-tmp-") and not any(p.iterdir()) for p in blobs if p.is_dir()
    )
    assert sorted(p.name for p in models_dir.iterdir()) == ["blobs", "manifests"]


def test_quantize_refuses_an_already_quantized_source(kernel, client, models_dir, tmp_path):
    """Which types a model may be quantized from is the kernel's ``Quantizer`` rule: a
    quantizer plugin that says nothing of it refuses a Q4_1 source before it is called."""
    from ollamakit.hookspecs import hookimpl
    from ollamakit.interfaces import Quantizer

    class NeverCalled(Quantizer):
        name = "Q8_0"

        def quantize(self, source, destination, progress=None):
            raise AssertionError("the source is checked first")

    class Plugin:
        @hookimpl(tryfirst=True)
        def make_quantizer(self, kernel, name):
            return NeverCalled()

    kernel.pm.register(Plugin())
    blob = upload(client, tiny_gguf(tmp_path / "q.gguf", file_type=3))
    before = snapshot(models_dir)
    response = client.simulate_post(
        "/api/create",
        json={"model": "q", "files": {"m.gguf": blob}, "quantize": "q8_0", "stream": False},
    )
    assert (response.status_code, response.json) == (
        400,
        {"error": "quantization is only supported for F16, BF16 and F32 models"},
    )
    assert snapshot(models_dir) == before


def test_safetensors_input_without_a_config_is_refused(client, models_dir):
    digest = upload(client, b"{}")
    before = snapshot(models_dir)
    response = client.simulate_post(
        "/api/create", json={"model": "st", "files": {"model.safetensors": digest}}
    )
    assert (response.status_code, response.json) == (
        400,
        {"error": "the model folder has no config.json"},
    )
    assert snapshot(models_dir) == before


def test_name_alias_and_case_insensitive_overwrite(client, models_dir, model_blob):
    create(client, name="Mixed", files={"m.gguf": model_blob})
    create(client, model="mixed", files={"m.gguf": model_blob}, system="x")
    names = [m["name"] for m in client.simulate_get("/api/tags").json["models"]]
    assert names == ["Mixed:latest"]  # the stored spelling wins


def test_chat_template_is_autodetected(client, models_dir, tmp_path):
    blob = upload(client, tiny_gguf(tmp_path / "chat.gguf", tokenizer__chat_template=CHATML_JINJA))
    statuses = [s["status"] for s in create(client, model="chat", files={"m.gguf": blob})]
    assert "using autodetected template chatml" in statuses
    show = client.simulate_post("/api/show", json={"model": "chat"}).json
    assert "<|im_start|>" in show["template"]
    assert '"<|im_end|>"' in show["parameters"]


def test_bad_template_is_rejected_before_anything_is_written(client, models_dir, model_blob):
    before = snapshot(models_dir)
    response = client.simulate_post(
        "/api/create",
        json={"model": "t", "files": {"m.gguf": model_blob}, "template": "{{ .Prompt"},
    )
    assert response.status_code == 400
    assert response.json["error"].startswith("template error: ")
    assert snapshot(models_dir) == before


def test_create_request_validation_order():
    digest = "sha256:" + "a" * 64
    with pytest.raises(BadRequest, match="file path must be relative"):
        CreateRequest.from_body({"model": "bad name!", "files": {"../x": digest}})
    with pytest.raises(BadRequest, match="invalid model name"):
        CreateRequest.from_body({"model": "bad name!", "files": {"x.gguf": "nope"}})
    with pytest.raises(BadRequest, match="neither 'from' or 'files' was specified"):
        CreateRequest.from_body({"model": "ok", "files": {}})
    with pytest.raises(BadRequest, match="invalid digest format"):
        CreateRequest.from_body({"model": "ok", "files": {"x.gguf": ""}})
    request = CreateRequest.from_body(
        {"model": "ok", "files": {"dir/x.gguf": "sha256-" + "a" * 64}}
    )
    assert request.files == {"dir/x.gguf": digest} and request.stream is True


def test_stream_error_after_first_line_is_an_ndjson_error(client, models_dir, model_blob, kernel):
    """A failure mid-stream keeps HTTP 200 and ends with an error line; nothing new is kept."""
    from ollamakit.hookspecs import hookimpl

    class Failing:
        def build(self, ctx):
            yield {"status": "parsing GGUF"}
            ctx.add_bytes(mf.SYSTEM, b"orphan")
            raise BadRequest("boom")

    class Plugin:
        @hookimpl(tryfirst=True)
        def resolve_model_source(self, request, kernel):
            return Failing()

    kernel.pm.register(Plugin())
    before = snapshot(models_dir)
    response = client.simulate_post(
        "/api/create", json={"model": "f", "files": {"m.gguf": model_blob}}
    )
    assert response.status_code == 200
    assert ndjson(response) == [{"status": "parsing GGUF"}, {"error": "boom"}]
    assert snapshot(models_dir) == before


def test_unknown_parent_is_pulled_first(client, models_dir):
    """As Ollama: a ``from`` model that is not local is pulled, its statuses streamed; a failed
    pull (here a registry that refuses connections) ends the stream and changes nothing."""
    before = snapshot(models_dir)
    response = client.simulate_post(
        "/api/create", json={"model": "m", "from": "127.0.0.1:9/library/ghost"}
    )
    events = ndjson(response)
    assert response.status_code == 200
    assert events[0] == {"status": "pulling manifest"}
    assert "error" in events[-1]
    assert snapshot(models_dir) == before


def test_unknown_parent_without_a_registry_client_is_404(client, models_dir, kernel):
    """No plugin answers ``pull_model``: a registry reference the store lacks is a model that
    is not there, and nothing is fetched (port 9 would refuse the connection)."""
    kernel.pm.unregister(name="registry")
    before = snapshot(models_dir)
    response = client.simulate_post(
        "/api/create", json={"model": "m", "from": "127.0.0.1:9/library/ghost"}
    )
    assert (response.status_code, response.json) == (
        404,
        {"error": "model '127.0.0.1:9/library/ghost' not found"},
    )
    assert snapshot(models_dir) == before


def test_create_keeps_no_unreferenced_blobs(client, models_dir, tmp_path):
    """The autodetected params layer is replaced by the merged one: the first is taken back."""
    blob = upload(client, tiny_gguf(tmp_path / "chat.gguf", tokenizer__chat_template=CHATML_JINJA))
    create(client, model="chat", files={"m.gguf": blob}, parameters={"temperature": 0.3})
    manifest = read_manifest(models_dir, "chat")
    referenced = {manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])}
    on_disk = {"sha256:" + p.name[7:] for p in (models_dir / "blobs").iterdir() if p.is_file()}
    assert on_disk == referenced
    params = next(layer for layer in manifest["layers"] if layer["mediaType"] == mf.PARAMS)
    assert json.loads(read_blob(models_dir, params["digest"])) == {
        "stop": ["<|im_start|>", "<|im_end|>"],
        "temperature": 0.3,
    }


@pytest.mark.parametrize("requires", ["0.34.0", "v1.0.0", "0.33.1-rc1"])
def test_requires_a_newer_ollama_is_stored_but_the_model_does_not_run(client, model_blob, requires):
    """Like Ollama, create stores any semver; using the model is a 412 in the words ollama.com
    answers an older Ollama with, against the API version this server reports."""
    create(client, model="future", files={"m.gguf": model_blob}, requires=requires)
    assert client.simulate_post("/api/show", json={"model": "future"}).json[
        "requires"
    ] == requires.lstrip("v")
    assert client.simulate_get("/api/version").json["version"] == "0.33.0"
    for route, body in (
        ("/api/generate", {"prompt": "hi"}),
        ("/api/chat", {"messages": []}),
        ("/api/embed", {"input": "x"}),
        ("/api/embeddings", {"prompt": "x"}),
    ):
        response = client.simulate_post(route, json={"model": "future", "stream": False, **body})
        assert response.status_code == 412, route
        assert response.json == {
            "error": "The model you are attempting to run requires a newer version of Ollama "
            f"({requires.lstrip('v')}; this server implements 0.33.0)."
        }


@pytest.mark.parametrize("requires", ["0.33.0", "0.14.0", "0.33.0+build.5", "0.33.0-rc2"])
def test_requires_met_by_this_version_lets_the_model_run(client, model_blob, requires):
    create(client, model="past", files={"m.gguf": model_blob}, requires=requires)
    response = client.simulate_post(
        "/api/generate", json={"model": "past"}
    )  # a load; the tiny model has no weights to run
    assert response.status_code != 412


def test_a_from_model_the_store_lacks_is_fetched_through_pull_model(kernel, client, tmp_path):
    """The parent source asks the hook ``pull_model`` (any plugin's, not a particular
    registry client's) for a registry reference the store lacks, and streams its progress."""
    from ollamakit.hookspecs import hookimpl
    from ollamakit.names import ModelName

    create(client, model="seed", files={"m.gguf": upload(client, tiny_gguf(tmp_path / "m.gguf"))})
    asked = []

    class Mirror:
        @hookimpl(tryfirst=True)
        def pull_model(self, kernel, name):
            asked.append(name.display_shortest())

            def fetch():
                yield {"status": "mirroring"}
                kernel.store.copy(ModelName.parse("seed"), name)
                yield {"status": "success"}

            return fetch()

    kernel.pm.register(Mirror())
    events = create(client, model="mine", system="hi", **{"from": "mirror.example/library/base"})
    assert asked == ["mirror.example/library/base:latest"]
    assert events[0] == {"status": "mirroring"} and events[-1] == {"status": "success"}
    mine = kernel.store.get("mine")
    assert (
        mine.system == "hi"
        and mine.model_layer.digest == kernel.store.get("seed").model_layer.digest
    )
    assert mine.model_layer.from_ == "mirror.example/library/base:latest"


def test_a_name_beside_files_builds_on_the_name_and_ignores_the_files(
    client, models_dir, model_blob, tmp_path
):
    # A Modelfile with `FROM base` and `FROM ./other.gguf` sends both; Ollama's create takes
    # `from` and ignores `files`, so the new model is the parent's, and it still generates.
    create(client, model="base", files={"m.gguf": model_blob})
    other = upload(client, tiny_gguf(tmp_path / "other.gguf", general__name="other"))
    assert other != model_blob
    create(client, model="child", files={"other.gguf": other}, **{"from": "base"})
    child = read_manifest(models_dir, "child")
    digests = {layer["digest"] for layer in child["layers"]}
    assert model_blob in digests and other not in digests
    assert child["layers"][0]["from"] == "base:latest"
