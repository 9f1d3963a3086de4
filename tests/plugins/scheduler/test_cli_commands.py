"""``ollamakit ps`` and ``stop`` against a real server running the fake engine (``run`` is tested
in tests/cli/test_run.py)."""

import pytest
from click.testing import CliRunner

from ollamakit.cli import build_cli
from ollamakit_scheduler.fixtures import make_fake  # noqa: F401 (fixture)


@pytest.fixture
def served(make_fake):
    setup = make_fake()
    setup.model(params={"temperature": 0, "stop": ["\n"]})
    with setup.server() as server:
        yield setup, server.url


def invoke(url, *args, input=None):
    return CliRunner().invoke(build_cli(), list(args), env={"OLLAMA_HOST": url}, input=input)


def test_ps_and_stop(served):
    setup, url = served
    assert invoke(url, "ps").output.split() == [
        "NAME",
        "ID",
        "SIZE",
        "PROCESSOR",
        "CONTEXT",
        "UNTIL",
    ]
    setup.client.simulate_post("/api/generate", json={"model": "fake"})
    listed = invoke(url, "ps").output
    assert "fake:latest" in listed and "100% CPU" in listed and "from now" in listed
    assert invoke(url, "stop", "fake").exit_code == 0
    assert "fake:latest" not in invoke(url, "ps").output
    missing = invoke(url, "stop", "fake")
    assert missing.exit_code != 0 and "couldn't find model" in missing.output
