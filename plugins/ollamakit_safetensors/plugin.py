"""Registers the safetensors model source for ``/api/create``: a request whose ``files`` hold a
``.safetensors`` file is a Hugging Face folder to convert."""

from __future__ import annotations

from ollamakit.hookspecs import hookimpl

from .source import SafetensorsSource, claims


@hookimpl
def resolve_model_source(request, kernel):
    if claims(request):
        return SafetensorsSource(request.files, request.target)
    return None
