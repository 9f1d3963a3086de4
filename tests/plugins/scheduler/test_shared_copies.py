"""Two names for one model file share one loaded copy, as Ollama keys its runners by model
file: through a real ``ollamakit serve`` with SmolLM2, counted by the server's loads and its
resident memory, and with fake models for the rules (options, keep_alive, unload)."""

from __future__ import annotations

import re
import time

import ollama
import pytest

from ollamakit.names import ModelName
from ollamakit.testing import models
from ollamakit.testing.fixtures import ServerProcess
from ollamakit_scheduler.fixtures import make_fake  # noqa: F401 (fixture)

GREEDY = {"temperature": 0, "num_predict": 6}


def resident_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def loads(server: ServerProcess) -> list[str]:
    """The names the server logged as loaded, in order."""
    text = (server.models_dir.parent / f"server-{server.port}.log").read_text(errors="replace")
    return re.findall(r"loaded (\S+) \(", text)


def wait_until(condition, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.real_model
@pytest.mark.slow
def test_a_copied_name_shares_the_loaded_model(tmp_path):
    path = models.smollm2_q4_1()
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    env = {"OLLAMA_NUM_PARALLEL": "1", "OLLAMA_CONTEXT_LENGTH": "512"}
    server = ServerProcess(models_dir, env).start()
    try:
        client = ollama.Client(host=server.url, timeout=600)
        client.create(model="smol", files={"smol.gguf": client.create_blob(path)})
        client.copy("smol", "smol2")
        first = client.generate(model="smol", prompt="The capital of France is", options=GREEDY)
        one_copy = resident_bytes(server.proc.pid)
        second = client.generate(model="smol2", prompt="The capital of France is", options=GREEDY)
        shared = resident_bytes(server.proc.pid)

        assert second.response == first.response
        assert loads(server) == ["smol:latest"]
        # Ollama lists the runner once, under the name that loaded it
        assert [m.model for m in client.ps().models] == ["smol:latest"]
        weights = path.stat().st_size
        assert shared - one_copy < weights / 8, (one_copy, shared)

        # another runner option loads a copy of its own, beside the first
        client.generate(model="smol2", prompt="The capital", options={**GREEDY, "num_batch": 64})
        assert loads(server) == ["smol:latest", "smol2:latest"]
        assert sorted(m.model for m in client.ps().models) == ["smol2:latest", "smol:latest"]
        own = resident_bytes(server.proc.pid)  # its own mapping's pages and its own cache
        assert own - shared > weights / 4, (shared, own)

        # keep_alive 0 through either name unloads every copy of the file
        assert client.generate(model="smol2", keep_alive=0).done_reason == "unload"
        assert wait_until(lambda: client.ps().models == [])
    finally:
        server.stop()


def generate(setup, model, **body):
    body = {"model": model, "prompt": "Q: one\nA:", "stream": False, **body}
    result = setup.client.simulate_post("/api/generate", json=body)
    assert result.status_code == 200, result.text
    return result.json


def ps(setup):
    return setup.client.simulate_get("/api/ps").json["models"]


def test_copies_share_and_options_that_change_the_runner_do_not(make_fake):
    setup = make_fake()
    setup.model("a")
    setup.kernel.store.copy(ModelName.parse("a"), ModelName.parse("b"))
    generate(setup, "a")
    generate(setup, "b", options={"num_ctx": 300, "num_gpu": -1, "temperature": 0.5})
    assert len(setup.engine.runners) == 1  # num_ctx sizes the request's cache, on any copy
    assert [m["name"] for m in ps(setup)] == ["a:latest"]
    assert ps(setup)[0]["context_length"] == 300

    generate(setup, "b", options={"num_thread": 1})
    assert len(setup.engine.runners) == 2
    assert setup.engine.runners[-1].load_options["num_thread"] == 1
    generate(setup, "a", options={"num_thread": 1})  # that copy now serves both names
    assert len(setup.engine.runners) == 2
    assert sorted(m["name"] for m in ps(setup)) == ["a:latest", "b:latest"]


def test_a_request_without_keep_alive_keeps_the_copys_own(make_fake):
    setup = make_fake()
    setup.model("a")
    setup.kernel.store.copy(ModelName.parse("a"), ModelName.parse("b"))
    generate(setup, "a", keep_alive=-1)
    generate(setup, "b")  # as in Ollama: no keep_alive leaves the runner's duration
    (entry,) = ps(setup)
    assert entry["expires_at"].startswith("2") and int(entry["expires_at"][:4]) > 2200
    generate(setup, "b", keep_alive="1m")
    assert int(ps(setup)[0]["expires_at"][:4]) < 2200


def test_unloading_one_name_unloads_the_shared_copy_once_idle(make_fake):
    setup = make_fake()
    setup.model("a")
    setup.kernel.store.copy(ModelName.parse("a"), ModelName.parse("b"))
    generate(setup, "a")
    assert generate(setup, "b", prompt="", keep_alive=0)["done_reason"] == "unload"
    assert wait_until(lambda: ps(setup) == [] and setup.runner.closed)
    generate(setup, "b")  # loads again, now listed under b
    assert [m["name"] for m in ps(setup)] == ["b:latest"]
    assert len(setup.engine.runners) == 2


def test_a_different_adapter_is_a_different_copy(make_fake):
    from ollamakit import manifest as mf

    setup = make_fake()
    base = setup.model("a")
    digest, size = setup.kernel.store.add_bytes(b"an adapter the fake engine ignores")
    layers = [*base.manifest.layers, mf.Layer(mf.ADAPTER, digest, size)]
    setup.kernel.store.write_manifest(
        ModelName.parse("a-tuned"), mf.Manifest(base.manifest.config, layers)
    )
    generate(setup, "a")
    generate(setup, "a-tuned")
    assert len(setup.engine.runners) == 2
    assert sorted(m["name"] for m in ps(setup)) == ["a-tuned:latest", "a:latest"]
