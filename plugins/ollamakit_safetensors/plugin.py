"""Registers the safetensors model source for ``/api/create``: a request whose ``files`` hold a
``.safetensors`` file is a Hugging Face folder to convert, or, among its ``adapters``, a PEFT
LoRA adapter to convert for the model's base."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

# Imported by the hook: the conversion imports numpy and gguf, which the CLI does without
# (``PluginManager.import_deferred`` checks it before serving).
DEFERRED_IMPORTS = ("ollamakit_safetensors.source",)


@hookimpl
def resolve_model_source(request, kernel):
    from .source import SafetensorsSource, claims

    if claims(request):
        return SafetensorsSource(request.files, request.target)
    return None
