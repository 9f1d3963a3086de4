"""Registers the parent-model source for ``/api/create``."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hook, so that loading this plugin (every command does) stays cheap
# (``PluginManager.import_deferred`` checks it before serving).
DEFERRED_IMPORTS = ("ollamakit_parent.source",)


@hookimpl(tryfirst=True)
def resolve_model_source(request, kernel):
    from .source import ParentModelSource

    if request.from_ and request.target == "model":
        return ParentModelSource(request.from_)
    return None
