"""Plugin ``engine_bert``: runs BERT encoders (``general.architecture`` ``bert`` or
``nomic-bert``) for embeddings and reranking, beside the decoder engine. The encoder itself is
``bert.py``."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hook: the encoder imports numpy, which the CLI does without
# (``PluginManager.import_deferred`` checks it before serving).
DEFERRED_IMPORTS = ("ollamakit_engine.bert", "ollamakit_engine.requirements")

ARCHITECTURES = ("bert", "nomic-bert")


@hookimpl
def load_model(kernel, model, options):
    from ollamakit.lib.gguf.reader import GGUFFile

    path = model.model_path
    if path is None:
        return None
    with GGUFFile.open(path) as gguf:
        if gguf.metadata.get("general.architecture") not in ARCHITECTURES:
            return None
        from ollamakit.lib.tokenizers import load_tokenizer

        from .bert import build_bert_runner

        return build_bert_runner(gguf, kernel.compute, load_tokenizer(gguf.metadata))


@hookimpl
def check_model(kernel, gguf):
    if gguf.metadata.get("general.architecture") not in ARCHITECTURES:
        return None
    from .requirements import check_bert

    check_bert(gguf)
    return True
