"""``OLLAMAKIT_NUMERICS``: the server-wide choice of the engine's arithmetic reaches the loader."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ollamakit.config import Settings
from ollamakit.errors import BadRequest
from ollamakit.testing.gguf_factory import tiny_llama
from ollamakit_engine import plugin
from ollamakit_engine.ggml_numerics import LlamaCppOps
from ollamakit_numpy import NumpyBackend


def load(tmp_path, numerics: str):
    path = tmp_path / "tiny.gguf"
    tiny_llama(path)
    kernel = SimpleNamespace(settings=Settings(numerics=numerics), compute=NumpyBackend())
    return plugin.load_model(kernel=kernel, model=SimpleNamespace(model_path=path), options={})


def test_the_variable_sets_the_engine_numerics(monkeypatch):
    monkeypatch.setenv("OLLAMAKIT_NUMERICS", "llama.cpp")
    assert Settings.from_env().numerics == "llama.cpp"
    monkeypatch.delenv("OLLAMAKIT_NUMERICS")
    assert Settings.from_env().numerics == ""


def test_a_server_in_llama_cpp_numerics_loads_models_with_ggml_kernels(tmp_path):
    runner = load(tmp_path, "llama.cpp")
    assert isinstance(runner.ops, LlamaCppOps)
    assert not isinstance(load(tmp_path, "").ops, LlamaCppOps)


def test_an_unknown_numerics_is_refused_when_a_model_loads(tmp_path):
    with pytest.raises(BadRequest, match="numerics must be one of"):
        load(tmp_path, "float16")
