"""Create gives a model file of some architectures the renderer and parser Ollama's create gives
them (and Gemma 4 its end-of-turn stop), where neither the request nor the parent names them.
No engine here runs those architectures, so a stand-in engine claims them through the same hook
a third-party one would use."""

from __future__ import annotations

import numpy as np
import pytest

from ollamakit.hookspecs import hookimpl
from ollamakit.testing.gguf_factory import make_gguf

from model_store_helpers import create, upload


class StandInEngine:
    @hookimpl
    def check_model(self, kernel, header):
        return True if header.architecture in ("gemma4", "laguna") else None


@pytest.fixture
def model_file(client, kernel, tmp_path):
    kernel.pm.register(StandInEngine(), name="stand-in-engine")

    def made(architecture: str) -> str:
        path = tmp_path / f"{architecture}.gguf"
        make_gguf(
            path, {"general.architecture": architecture}, {"a": np.zeros((4, 32), np.float16)}
        )
        return upload(client, path.read_bytes())

    return made


def shown(client, name: str) -> dict:
    return client.simulate_post("/api/show", json={"model": name}).json


@pytest.mark.parametrize(
    "architecture,renderer,parser,stop",
    [("gemma4", "gemma4", "gemma4", '"<turn|>"'), ("laguna", "laguna", "laguna", None)],
)
def test_the_architecture_names_its_renderer_and_parser(
    client, model_file, architecture, renderer, parser, stop
):
    assert create(client, model="m", files={"m.gguf": model_file(architecture)})[-1] == {
        "status": "success"
    }
    show = shown(client, "m")
    assert f"RENDERER {renderer}" in show["modelfile"] and f"PARSER {parser}" in show["modelfile"]
    assert (
        (stop in show.get("parameters", "")) if stop else "stop" not in show.get("parameters", "")
    )


def test_the_request_and_the_parent_come_first(client, model_file):
    own = {"model": "own", "files": {"m.gguf": model_file("gemma4")}, "parser": "passthrough"}
    assert create(client, **own, parameters={"stop": ["<eos>"]})[-1] == {"status": "success"}
    show = shown(client, "own")
    assert "RENDERER gemma4" in show["modelfile"] and "PARSER passthrough" in show["modelfile"]
    assert '"<eos>"' in show["parameters"] and "<turn|>" not in show["parameters"]
    # a child keeps its parent's names and parameters: nothing is filled in again
    assert create(client, model="child", **{"from": "own"})[-1] == {"status": "success"}
    child = shown(client, "child")
    assert "PARSER passthrough" in child["modelfile"] and "<turn|>" not in child["parameters"]
