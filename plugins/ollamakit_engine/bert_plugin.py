"""Plugin ``engine_bert``: runs BERT encoders (``general.architecture`` ``bert`` or
``nomic-bert``) for embeddings and reranking, beside the decoder engine. The encoder itself is
``bert.py``."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hook: the encoder imports numpy, which the CLI does without
# (``PluginManager.import_deferred`` checks it before serving).
DEFERRED_IMPORTS = (
    "ollamakit_engine.bert",
    "ollamakit_engine.loader",
    "ollamakit_engine.requirements",
)

ARCHITECTURES = ("bert", "nomic-bert")


@hookimpl
def load_model(kernel, model, options):
    from .loader import BERT, load_runner

    path = model.model_path
    if path is None:
        return None
    return load_runner(path, kernel.compute, options, adapters=model.adapter_paths, kinds=(BERT,))


@hookimpl
def check_model(kernel, header):
    if header.architecture not in ARCHITECTURES:
        return None
    from .requirements import check_bert

    check_bert(header)
    return True
