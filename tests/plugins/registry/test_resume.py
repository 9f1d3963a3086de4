"""Kill the server in the middle of a pull, start it again, pull again: the download resumes
from its partial files, fetches less than the whole blob, and the digest checks out."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time

import httpx
import pytest
from registry_fakes import sha

from ollamakit.testing.fixtures import ServerProcess

MB = 1000 * 1000


@pytest.mark.slow
def test_pull_resumes_after_the_server_is_killed(tmp_path, fake_registry):
    layer = os.urandom(48 * MB)
    fake_registry.add_model("library/big:latest", layer)
    fake_registry.throttle = 6 * MB  # per connection: the pull takes a few seconds
    name = f"{fake_registry.host}/library/big:latest"
    models = tmp_path / "models"
    models.mkdir()

    server = ServerProcess(models).start()
    try:
        seen = 0
        with httpx.Client(base_url=server.url, timeout=30) as http:
            with http.stream("POST", "/api/pull", json={"model": name, "insecure": True}) as reply:
                started = time.monotonic()
                for line in reply.iter_lines():
                    event = json.loads(line)
                    assert "error" not in event, event
                    if event.get("digest") == sha(layer):
                        seen = event.get("completed", 0)
                    # Past the first state-file save (every second), well short of the end.
                    if time.monotonic() - started > 1.6 and seen > 8 * MB:
                        break
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
    finally:
        server.stop()
    first = fake_registry.blob_bytes_sent
    assert first < len(layer), "the pull finished before the server was killed"

    blobs = models / "blobs"
    hex_ = sha(layer)[7:]
    assert (blobs / f"sha256-{hex_}-partial").exists()
    states = sorted(blobs.glob(f"sha256-{hex_}-partial-*[0-9]"))
    assert states and sum(json.loads(p.read_text())["Completed"] for p in states) > 0
    assert not (blobs / f"sha256-{hex_}").exists()

    fake_registry.throttle = None
    fake_registry.blob_bytes_sent = 0
    server = ServerProcess(models).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            reply = http.post("/api/pull", json={"model": name, "insecure": True})
        events = [json.loads(line) for line in reply.text.splitlines()]
        assert events[-1] == {"status": "success"}, events[-3:]
        # The first report of the blob already counts the bytes kept from the first run.
        first_report = next(e for e in events if e.get("digest") == sha(layer))
        assert first_report.get("completed", 0) > 0
    finally:
        server.stop()
    second = fake_registry.blob_bytes_sent
    assert second < len(layer) - 4 * MB, (first, second)
    blob = blobs / f"sha256-{hex_}"
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == hex_
    assert not list(blobs.glob("*partial*"))


def test_corrupt_state_files_start_over(instance, fake_registry):
    """State files that do not describe our part plan are ignored, never trusted."""
    target = instance()
    layer = os.urandom(3 * 1000)
    fake_registry.add_model("library/m:latest", layer)
    blobs = target.models / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    partial = blobs / f"sha256-{sha(layer)[7:]}-partial"
    partial.write_bytes(b"\0" * len(layer))
    (blobs / f"{partial.name}-0").write_text(
        json.dumps({"N": 0, "Offset": 0, "Size": 10**12, "Completed": 10**12})
    )
    (blobs / f"{partial.name}-7").write_text("not json")
    events = target.pull(f"{fake_registry.host}/library/m:latest")
    assert events[-1] == {"status": "success"}
    assert target.kernel.store.blob_path(sha(layer)).read_bytes() == layer
