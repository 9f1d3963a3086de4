"""Registers the parent-model source for ``/api/create``."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

from .source import ParentModelSource, registry_pull


@hookimpl(trylast=True)
def resolve_model_source(request, kernel):
    if request.from_ and request.target == "model":
        return ParentModelSource(request.from_, pull=registry_pull())
    return None
