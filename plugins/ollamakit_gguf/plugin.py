"""Registers the GGUF model source for ``/api/create``."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

from .source import GGUFSource, claims


@hookimpl
def resolve_model_source(request, kernel):
    if claims(request, kernel.store):
        return GGUFSource(request.files, request.target)
    return None
