"""``/api/tags``, ``/api/show``, ``/api/copy`` and ``/api/delete``: the stored models."""

from __future__ import annotations

import logging

from ollamakit import cloud
from ollamakit import manifest as mf
from ollamakit.errors import BadRequest, NotFound, OllamaError
from ollamakit.names import ModelName
from ollamakit.web import json_response, read_json
from ollamakit.web.body import field

from . import modelinfo

log = logging.getLogger("ollamakit.api")


def _model_field(body: dict) -> str:
    """``model``, or its deprecated alias ``name``."""
    return field(body, "model", str, "") or field(body, "name", str, "")


def _empty_ok(resp) -> None:
    resp.status = 200
    resp.content_type = "application/json; charset=utf-8"
    resp.data = b""


class Tags:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_get(self, req, resp):
        models = []
        for model in self.kernel.store.list():  # newest first
            try:
                config = model.config
            except OllamaError as exc:  # a missing or oversized config: list the rest
                log.warning("skipping %s: %s", model.short_name, exc)
                continue
            details, capabilities = modelinfo.list_entry(model)
            entry = {"name": model.short_name, "model": model.short_name}
            for key in ("remote_model", "remote_host"):
                if config.get(key):
                    entry[key] = config[key]
            entry.update(
                modified_at=model.modified_at,
                size=model.manifest.size,
                digest=model.digest,
                details=details,
            )
            if capabilities:
                entry["capabilities"] = capabilities
            models.append(entry)
        json_response(resp, {"models": models})

    on_head = on_get


class Show:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_post(self, req, resp):
        body = read_json(req)
        raw = _model_field(body)
        verbose = field(body, "verbose", bool, False)
        system = field(body, "system", str, "")
        options = field(body, "options", dict, {})
        if not raw:
            raise BadRequest("model is required")
        stored, source = cloud.split_source(raw)
        if source == "cloud":
            raise cloud.refusal(self.kernel.settings, cloud.REMOTE_DETAILS)
        name = ModelName.parse(stored)
        if name is None:
            raise BadRequest("invalid model name")
        model = self.kernel.store.get(name)
        remote = model is not None and bool(model.config.get("remote_host"))
        if model is None or (remote and source == "local"):
            raise NotFound(f"model '{raw}' not found")
        if remote and self.kernel.settings.no_cloud:
            raise OllamaError(cloud.disabled_error(cloud.REMOTE_DETAILS), 403)
        reply = show(model, verbose=verbose, system=system, options=options)
        if (req.user_agent or "").startswith("GitHubCopilotChat/"):
            reply["model_info"]["general.basename"] = raw  # Copilot labels models by this key
        json_response(resp, reply)


def show(model, verbose: bool = False, system: str = "", options: dict | None = None) -> dict:
    """The ``/api/show`` reply for a stored model, fields in Ollama's order."""
    store, config = model.store, model.config
    layer = model.model_layer
    header = model.header
    template = modelinfo.shown_template(model.template, header)
    system = system or model.system
    params = model.params
    reply = {
        "license": "\n".join(model.licenses),
        "modelfile": modelinfo.modelfile(model, template, system, {**params, **(options or {})}),
        "parameters": modelinfo.parameters_text(params),
        "template": template,
        "system": system,
        "details": modelinfo.details(config, layer.from_ if layer else ""),
        "messages": [
            {"role": m.get("role", ""), "content": m.get("content", "")}
            for m in model.messages
            if isinstance(m, dict)
        ],
        "remote_model": config.get("remote_model"),
        "remote_host": config.get("remote_host"),
        "model_info": modelinfo.model_info(header, verbose),
        "tensors": modelinfo.tensors(header),
        "capabilities": modelinfo.capabilities(
            header, model.template, bool(model.manifest.find(mf.PROJECTOR)), config
        ),
        "modified_at": model.modified_at,
    }
    projectors = model.manifest.find(mf.PROJECTOR)
    if projectors:
        reply["projector_info"] = modelinfo.model_info(
            store.model_header(projectors[0].digest), verbose
        )
    if config.get("remote_host"):  # what is known of a remote model: what its config says
        reply["model_info"] = modelinfo.remote_model_info(config)
    if config.get("requires"):
        reply["requires"] = config["requires"]
    # Go omits empty fields; model_info is always present (clients require the key).
    keep = {"model_info", "details"}
    return {k: v for k, v in reply.items() if k in keep or v not in ("", [], None)}


class Copy:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_post(self, req, resp):
        body = read_json(req)
        source_raw = field(body, "source", str, "")
        destination_raw = field(body, "destination", str, "")
        source = ModelName.parse(source_raw)
        if source is None:
            raise BadRequest(f'source "{source_raw}" is invalid')
        destination = ModelName.parse(destination_raw)
        if destination is None:
            raise BadRequest(f'destination "{destination_raw}" is invalid')
        if self.kernel.store.get(source) is None:
            raise NotFound(f'model "{source_raw}" not found')
        self.kernel.store.copy(source, destination)
        _empty_ok(resp)


class Delete:
    def __init__(self, kernel):
        self.kernel = kernel

    def on_delete(self, req, resp):
        body = read_json(req)
        raw = _model_field(body)
        if not raw:
            raise BadRequest("model is required")
        name = ModelName.parse(raw)
        if name is None:
            raise BadRequest(f'name "{raw}" is invalid')
        if self.kernel.store.get(name) is None:
            raise NotFound(f"model '{raw}' not found")
        try:
            self.kernel.store.delete(name)
        except NotFound:  # deleted by a concurrent request in between
            raise NotFound(f"model '{raw}' not found") from None
        _empty_ok(resp)
