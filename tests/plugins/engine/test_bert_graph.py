"""The BERT encoder on each engine (numpy arrays; the ggml graph with and without ollamakit's
float32 kernels): a random cross-encoder scores the recorded query-document pairs as
sentence-transformers' CrossEncoder did (tests/reference/cross-encoder-scores.json), whether the
pairs run in one graph or in several, and the graph holds the weights once."""

from __future__ import annotations

import numpy as np
import pytest

from ollamakit.inference.rerank import pair_tokens
from ollamakit.lib.gguf import GGUFFile
from ollamakit.lib.tokenizers import load_tokenizer
from ollamakit.testing.encoders import CROSS_RECORD, DOCUMENTS, QUERIES, tiny_cross_encoder
from ollamakit.testing.reference import reference_answers
from ollamakit_engine import bert
from ollamakit_safetensors import ModelFolder, plan_conversion

pytestmark = pytest.mark.real_model  # all-MiniLM's tokenizer comes from the package registry


@pytest.fixture(scope="module")
def reranker(tmp_path_factory):
    root = tmp_path_factory.mktemp("cross")
    folder = tiny_cross_encoder(root / "cross")
    files = {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()}
    with ModelFolder(files) as model_folder:
        plan_conversion(model_folder, "reranker").write(root / "cross.gguf")
    return root / "cross.gguf"


def pairs_of(tokenizer):
    ids, types = [], []
    for query in QUERIES:
        q = tokenizer.encode(query, add_special=False, parse_special=True)
        for document in DOCUMENTS:
            d = tokenizer.encode(document, add_special=False, parse_special=True)
            pair, kinds = pair_tokens(tokenizer, q, d, 512, True)
            ids.append(pair)
            types.append(kinds)
    return ids, types


def test_scores_match_cross_encoder(reranker, build_bert):
    reference = reference_answers(CROSS_RECORD)
    with GGUFFile.open(reranker) as gguf:
        runner = build_bert(gguf, load_tokenizer(gguf.metadata))
    ids, types = pairs_of(runner.tokenizer)
    assert ids == reference["ids"]
    scores = [float(s[0]) for s in runner.embed(ids, token_types=types)]
    np.testing.assert_allclose(scores, np.ravel(reference["logits"]), atol=1e-4)
    # one pair at a time: the same scores (no input sees another's rows)
    alone = [float(runner.embed([i], token_types=[t])[0][0]) for i, t in zip(ids[:4], types[:4])]
    np.testing.assert_allclose(alone, scores[:4], atol=1e-5)


def test_many_graphs_give_one_graphs_scores(reranker, build_bert, monkeypatch):
    """Inputs sorted by length and split into groups (a graph each) score as in one group."""
    with GGUFFile.open(reranker) as gguf:
        runner = build_bert(gguf, load_tokenizer(gguf.metadata))
    ids, types = pairs_of(runner.tokenizer)
    together = runner.embed(ids, token_types=types)
    monkeypatch.setattr(bert, "GROUP_ROWS", 40)  # a few pairs per group
    assert len(bert._groups(ids)) > 3
    apart = runner.embed(ids, token_types=types)
    np.testing.assert_allclose(np.ravel(apart), np.ravel(together), atol=1e-5)


def test_the_graph_holds_the_weights_once(reranker):
    from ollamakit_ggml import GgmlBackend

    with GGUFFile.open(reranker) as gguf:
        runner = bert.build_bert_runner(gguf, GgmlBackend())
        file_bytes = sum(info.nbytes for info in gguf.tensors)
    # the file's tensors, plus the packed copies of the float32 projections where the kernels
    # run (their pages of the file are given back): never more than twice the file
    assert file_bytes <= runner.memory_bytes <= 2 * file_bytes
    runner.close()
    with pytest.raises(RuntimeError):
        runner.embed([[1, 2]])
