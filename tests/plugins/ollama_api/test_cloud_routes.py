"""The cloud and account routes answer as Ollama 0.33 does without an account
(server/routes.go StatusHandler, WhoamiHandler, SignoutHandler, webExperimentalProxyHandler,
ModelRecommendationsExperimentalHandler; cloud_proxy.go), through real HTTP."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import requests

from ollamakit.config import Settings, cloud_disabled_in_file
from ollamakit_scheduler.fixtures import make_fake  # noqa: F401 (fixture)


@pytest.fixture
def cloudless(make_fake):
    """A server with OLLAMA_NO_CLOUD's setting, as Settings.from_env reads it."""
    setup = make_fake(no_cloud=True, no_cloud_source="env")
    with setup.server() as running:
        yield running.url


@pytest.fixture
def signed_out(make_fake):
    with make_fake().server() as running:
        yield running.url


def test_status_reports_the_switch(cloudless, signed_out):
    assert requests.get(cloudless + "/api/status").json() == {
        "cloud": {"disabled": True, "source": "env"}
    }
    assert requests.get(signed_out + "/api/status").json() == {
        "cloud": {"disabled": False, "source": "none"}
    }


def test_no_account(cloudless, signed_out):
    for url in (cloudless, signed_out):
        me = requests.post(url + "/api/me")
        assert me.status_code == 503 and me.json() == {"error": "account unavailable"}
        for out in (
            requests.post(url + "/api/signout"),
            requests.delete(url + "/api/user/keys/c3NoLWVkMjU1MTk"),
        ):
            assert out.status_code == 401 and out.json() == {
                "error": "you are not currently signed in"
            }
        assert requests.get(url + "/api/me").status_code == 405


@pytest.mark.parametrize(
    "path, operation", [("web_search", "web search"), ("web_fetch", "web fetch")]
)
def test_web_proxies(cloudless, signed_out, path, operation):
    for url in (cloudless, signed_out):
        missing = requests.post(f"{url}/api/experimental/{path}", data=b"  ")
        assert missing.status_code == 400 and missing.json() == {"error": "missing request body"}
    refused = requests.post(f"{cloudless}/api/experimental/{path}", json={"query": "ollama"})
    assert refused.status_code == 403
    assert refused.json() == {"error": f"ollama cloud is disabled: {operation} is unavailable"}
    unsigned = requests.post(
        f"{signed_out}/api/experimental/{path}",
        json={"query": "ollama"},
        headers={"Authorization": "Bearer someone-elses-key"},
    )
    assert unsigned.status_code == 401 and unsigned.json() == {"error": "unauthorized"}


def test_model_recommendations_are_ollamas_defaults(cloudless):
    recommendations = requests.get(cloudless + "/api/experimental/model-recommendations").json()[
        "recommendations"
    ]
    assert [r["model"] for r in recommendations] == [
        "kimi-k2.6:cloud",
        "glm-5.1:cloud",
        "qwen3.5:cloud",
        "minimax-m2.7:cloud",
        "gemma4",
        "qwen3.5",
    ]
    assert recommendations[4] == {
        "model": "gemma4",
        "description": "Reasoning and code generation locally",
        "vram_bytes": 12_000_000_000,
    }


def test_the_switch_is_read_from_the_environment_and_server_json(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("OLLAMA_NO_CLOUD", raising=False)
    assert (Settings.from_env().no_cloud, Settings.from_env().no_cloud_source) == (False, "none")
    monkeypatch.setenv("OLLAMA_NO_CLOUD", "1")
    assert (Settings.from_env().no_cloud, Settings.from_env().no_cloud_source) == (True, "env")
    (tmp_path / ".ollama").mkdir()
    (tmp_path / ".ollama" / "server.json").write_text(json.dumps({"disable_ollama_cloud": True}))
    assert Settings.from_env().no_cloud_source == "both"
    monkeypatch.setenv("OLLAMA_NO_CLOUD", "false")
    assert (Settings.from_env().no_cloud, Settings.from_env().no_cloud_source) == (True, "config")
    (tmp_path / ".ollama" / "server.json").write_text("{not json")
    assert not cloud_disabled_in_file(tmp_path / ".ollama" / "server.json")
    assert replace(Settings(), no_cloud=True).no_cloud


@pytest.fixture
def cloudless_with_model(make_fake):
    setup = make_fake(no_cloud=True, no_cloud_source="env")
    setup.model()
    with setup.server() as running:
        yield running.url


def test_model_names_with_a_source(cloudless_with_model, make_fake):
    """Ollama's ``:local`` runs the stored model; ``:cloud`` and ``-cloud`` would go to
    ollama.com, which is off here (403) or cannot be signed for (401); both at once is a 400."""
    url = cloudless_with_model
    chat = {"messages": [{"role": "user", "content": "hi"}], "stream": False}
    local = requests.post(url + "/api/chat", json={**chat, "model": "fake:local"})
    assert local.status_code == 200, local.text
    assert requests.post(url + "/api/show", json={"model": "fake:local"}).status_code == 200
    missing = requests.post(url + "/api/chat", json={**chat, "model": "nope:local"})
    assert missing.status_code == 404 and missing.json() == {
        "error": "model 'nope:local' not found"
    }
    for name in ("fake:cloud", "gpt-oss:120b-cloud", "glm-5.1:CLOUD"):
        for path in ("/api/chat", "/api/generate", "/api/embed"):
            refused = requests.post(url + path, json={**chat, "model": name, "input": "x"})
            assert refused.status_code == 403, (path, refused.text)
            assert refused.json() == {
                "error": "ollama cloud is disabled: remote model is unavailable"
            }
        shown = requests.post(url + "/api/show", json={"model": name})
        assert shown.status_code == 403 and shown.json() == {
            "error": "ollama cloud is disabled: remote model details are unavailable"
        }
    both = requests.post(url + "/api/chat", json={**chat, "model": "fake:cloud:local"})
    assert both.status_code == 400
    assert both.json() == {"error": 'use either :local or :cloud, not both: "fake:cloud:local"'}
    openai = requests.post(
        url + "/v1/chat/completions", json={"model": "fake:cloud", "messages": chat["messages"]}
    )
    assert openai.status_code == 403
    signed_out = make_fake()
    signed_out.model()
    with signed_out.server() as running:
        unsigned = requests.post(running.url + "/api/chat", json={**chat, "model": "fake:cloud"})
        assert unsigned.status_code == 401 and unsigned.json() == {"error": "unauthorized"}
