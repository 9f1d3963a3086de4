"""OLLAMA_DEBUG_LOG_REQUESTS: inference request bodies and curl scripts that replay them."""

from __future__ import annotations

import json
import stat
import subprocess
import tempfile

import httpx

from ollamakit_scheduler.fixtures import fake, make_fake  # noqa: F401 (fixtures)


def test_inference_requests_are_logged_and_the_scripts_replay_them(
    make_fake, monkeypatch, tmp_path
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    setup = make_fake(debug_log_requests=True)
    setup.model()
    with setup.server() as server:
        body = {
            "model": "fake",
            "prompt": "Q: two\nA:",
            "stream": False,
            "options": {"temperature": 0},
        }
        first = httpx.post(f"{server.url}/api/generate", json=body, timeout=60)
        assert first.status_code == 200
        chat = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "stream": False}
        assert httpx.post(f"{server.url}/api/chat", json=chat, timeout=60).status_code == 200
        assert httpx.get(f"{server.url}/api/tags").status_code == 200  # not an inference route
        assert httpx.post(f"{server.url}/api/show", json={"model": "fake"}).status_code == 200

        # one folder per app: the fixture made one for its in-process client too
        (folder,) = [f for f in tmp_path.glob("ollama-request-logs-*") if any(f.iterdir())]
        files = sorted(p.name for p in folder.iterdir())
        assert len(files) == 4
        assert files[0].endswith("-000001_api_generate_body.json") and files[1].endswith(
            "-000001_api_generate_request.sh"
        )
        assert files[2].endswith("-000002_api_chat_body.json") and files[3].endswith(
            "-000002_api_chat_request.sh"
        )
        assert all(stat.S_IMODE((folder / f).stat().st_mode) == 0o600 for f in files)
        assert json.loads((folder / files[0]).read_bytes()) == body

        replay = subprocess.run(
            ["sh", str(folder / files[1])], capture_output=True, timeout=60, check=True
        )
        assert json.loads(replay.stdout)["response"] == first.json()["response"]


def test_off_by_default_and_nothing_is_written(fake, monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert (
        fake.client.simulate_post(
            "/api/generate", json={"model": "fake", "prompt": "Q: two\nA:"}
        ).status_code
        == 200
    )
    assert not list(tmp_path.glob("ollama-request-logs-*"))
