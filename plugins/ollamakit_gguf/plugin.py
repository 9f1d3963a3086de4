"""Registers the GGUF model source for ``/api/create`` and the reader of GGUF headers."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hook: the reader imports numpy and gguf, which the CLI does without
# (``PluginManager.import_deferred`` checks it before serving).
DEFERRED_IMPORTS = ("ollamakit_gguf.header", "ollamakit_gguf.source")


@hookimpl
def resolve_model_source(request, kernel):
    from .source import GGUFSource, claims

    if claims(request, kernel.store):
        return GGUFSource(request.files, request.target)
    return None


@hookimpl
def read_model_header(kernel, path):
    from .header import read_gguf_header

    return read_gguf_header(path)


@hookimpl
def read_model_header_from(kernel, file, size):
    from .header import read_gguf_header_from

    return read_gguf_header_from(file, size)
