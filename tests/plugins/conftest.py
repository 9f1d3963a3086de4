"""Fixtures shared by the plugins' tests."""

from __future__ import annotations

import pytest

# The engines a BERT encoder runs on: float32 arrays (numpy), the ggml graph with ollamakit's
# float32 kernels where this CPU has them (x86 with AVX-512; elsewhere it is the next one), and
# the graph on ggml's own operations only.
BERT_ENGINES = ("numpy", "ggml", "ggml-plain")


@pytest.fixture(params=BERT_ENGINES)
def build_bert(request):
    """``build_bert(gguf, tokenizer=None)``: a BERT runner for the open GGUF file on each engine
    in turn."""
    from ollamakit_engine.bert import build_bert_runner

    def build(gguf, tokenizer=None):
        if request.param == "numpy":
            from ollamakit_numpy import NumpyBackend

            return build_bert_runner(gguf, NumpyBackend(), tokenizer)
        from ollamakit_ggml import GgmlBackend

        kernels = False if request.param == "ggml-plain" else None
        return build_bert_runner(gguf, GgmlBackend(), tokenizer, kernels=kernels)

    build.engine = request.param
    return build
