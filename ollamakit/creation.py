"""The create pipeline, a kernel service: model sources build the base layers, then the
request's own layers, the config blob and, last and atomically, the manifest.

    events = create_model(kernel, request)  # raises before any work on a bad request
    for progress in events: ...                          # {"status": ...} objects

Everything that can be checked before work starts (the request, the template, the quantize
type, the input files' headers) is checked before the first progress object, so a bad request
is a plain error even when streaming. Blobs are content-addressed and harmless, and any this
request added but did not use are taken back when it ends. A route only translates HTTP to
``create_model`` and its progress back.

A request's Go template must parse (``ollamakit.lib.templates``); a model file's Jinja chat
template that matches a known family gives the model that family's Go template and parameters.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator

from . import drivers, rendering
from . import manifest as mf
from .capabilities import capabilities
from .create import CreateContext, CreateRequest
from .errors import BadRequest, OllamaError
from .lib.templates import detect_template, parse_template
from .headers import format_parameter_size, require_header
from .store import writing

QUANTIZE_DIGEST = "0" * 19  # Ollama's placeholder digest on quantize progress lines
_CONFIG_HEAD = ("model_format", "model_family", "model_families", "model_type", "file_type")
_CONFIG_OPTIONAL = (
    "renderer",
    "parser",
    "requires",
    "remote_host",
    "remote_model",
    "capabilities",
    "context_length",
    "embedding_length",
    "base_name",
    "draft",
)
_INFO_FIELDS = {
    "model_family": "model_family",
    "base_name": "base_name",
    "quantization_level": "file_type",
    "parameter_size": "model_type",
    "context_length": "context_length",
    "embedding_length": "embedding_length",
    "capabilities": "capabilities",
}


def find_quantizer(kernel, name: str):
    quantizer = kernel.quantizer(name)
    if quantizer is None:
        names = ", ".join(n.upper() for n in drivers.driver_names("quantizer"))
        raise BadRequest(
            f"unsupported quantization type {name.upper()} - "
            + (f"supported types are {names}" if names else "no quantizer plugin is installed")
        )
    return quantizer


def create_model(kernel, request: CreateRequest) -> Iterator[dict]:
    """Check what can be checked at once (raising ``OllamaError``), then return the pipeline
    as an iterator of progress objects."""
    if request.template:
        parse_template(request.template)  # raises BadRequest("template error: ...")
    quantize = []
    if request.quantize:
        quantize.append(
            (mf.MODEL, request.quantize.upper(), find_quantizer(kernel, request.quantize))
        )
    if request.draft_quantize:
        quantize.append(
            (
                mf.DRAFT,
                request.draft_quantize.upper(),
                find_quantizer(kernel, request.draft_quantize),
            )
        )
    return _store_errors(_run(kernel, request, quantize))


def _store_errors(events):
    """A write that fails for want of space or permission (a quantizer's output, a source's
    conversion) is said as such, not as an internal error."""
    with writing("create"):
        yield from events


def _run(kernel, request: CreateRequest, quantize):
    store = kernel.store
    ctx = CreateContext(kernel, request)
    previous = store.get(request.name)
    written = None
    try:
        # A remote stub has no weights: only the request's own layers and where it runs (as
        # in Ollama, its adapters are not read).
        builds = [] if request.remote_host else [_build(ctx, request)]
        builds += [
            _build(ctx, request.for_target(target))
            for target, files in (("adapter", request.adapters), ("draft", request.draft_files))
            if files and not request.remote_host
        ]
        # Each source checks its input before its first status: run them all that far before
        # anything is sent, so a bad adapter is a plain 400 too.
        for first, rest in [_prime(build) for build in builds]:
            if first is not _END:
                yield first
                yield from rest
        _autodetect_template(ctx)
        for media_type, wanted, quantizer in quantize:
            yield from _quantize(ctx, media_type, wanted, quantizer)
        _apply_request(ctx)
        config = build_config(ctx)
        digest, size, _ = ctx.store_bytes((mf.go_json(config) + "\n").encode())
        for base in ctx.layers:
            yield {"status": base.status}
        yield {"status": "writing manifest"}
        written = mf.Manifest(
            mf.Layer(mf.CONFIG_MEDIA_TYPE, digest, size), [b.layer for b in ctx.layers]
        )
        store.write_manifest(request.name, written)
    finally:
        unused = ctx.created - (written.digests() if written else set())
        if unused:
            store.collect_garbage(unused)
    if previous is not None and not kernel.settings.noprune:
        store.collect_garbage(previous.manifest.digests())  # layers the old version alone used
    yield {"status": "success"}


_END = object()


def _prime(events):
    """Run a generator up to its first object; returns (first or _END, the rest)."""
    events = iter(events)
    return next(events, _END), events


def _build(ctx: CreateContext, request: CreateRequest):
    source = ctx.kernel.hook.resolve_model_source(request=request, kernel=ctx.kernel)
    if source is None:
        raise _no_source(ctx, request)
    yield from source.build(ctx)


def _no_source(ctx: CreateContext, request: CreateRequest) -> OllamaError:
    """Why nobody took the input, in the most useful words available."""
    for key, digest in sorted(request.files.items()):
        ctx.blob_size(digest, key)  # a missing upload is the likeliest cause
    if any(key.lower().endswith(".safetensors") for key in request.files):
        return BadRequest("safetensors import is not supported yet")
    if request.files:
        return BadRequest(
            "unknown type: "
            + ", ".join(f'"{k}"' for k in sorted(request.files))
            + " is not a GGUF or safetensors file"
        )
    return BadRequest(f"no installed model source accepts 'from' {request.from_!r}")


def _autodetect_template(ctx: CreateContext) -> None:
    """A model file's Jinja chat template, matched to a known Go template (files input only)."""
    for base in list(ctx.layers):
        if base.media_type != mf.MODEL or base.origin != "file" or base.header is None:
            continue
        jinja = base.header.chat_template
        found = detect_template(jinja) if jinja else None
        if found:
            name, text, params = found
            ctx.add_bytes(mf.TEMPLATE, text.encode(), status=f"using autodetected template {name}")
            if params:
                ctx.add_bytes(mf.PARAMS, params_blob(params))
            return


def _architecture_defaults(ctx: CreateContext) -> dict:
    """The renderer, parser and stop Ollama gives the model file's architecture, where neither
    the request nor the parent model names a renderer and a parser."""
    model = next((b.header for b in ctx.layers if b.media_type == mf.MODEL and b.header), None)
    request = ctx.request
    renderer = request.renderer or ctx.config.get("renderer") or ""
    parser = request.parser or ctx.config.get("parser") or ""
    architecture = model.architecture if model is not None else None
    return rendering.architecture_defaults(architecture, renderer, parser)


def params_blob(params: dict) -> bytes:
    """As Go's json.Encoder writes a map: keys sorted, HTML-escaped, newline-terminated."""
    return (mf.go_json(dict(sorted(params.items()))) + "\n").encode()


def _apply_request(ctx: CreateContext) -> None:
    """The request's template, system, licenses, parameters and messages, Ollama's way."""
    request = ctx.request
    if request.template:
        ctx.remove(mf.TEMPLATE)
        ctx.remove(mf.PROMPT)
        ctx.add_bytes(mf.TEMPLATE, request.template.encode())
    if request.system:
        ctx.remove(mf.SYSTEM)
        ctx.add_bytes(mf.SYSTEM, request.system.encode())
    for text in request.license:
        ctx.add_bytes(mf.LICENSE, text.encode())
    params = dict(request.parameters)
    stop = _architecture_defaults(ctx).get("stop")
    if stop and "stop" not in params:  # the request's own, over what the parent had
        params["stop"] = stop
    for base in ctx.find(mf.PARAMS):  # inherited values fill in what the request leaves out
        for key, value in _read_params(ctx, base.layer.digest).items():
            params.setdefault(key, value)
    if params:
        ctx.remove(mf.PARAMS)
        ctx.add_bytes(mf.PARAMS, params_blob(params))
    if request.messages:
        ctx.remove(mf.MESSAGES)
        ctx.add_bytes(mf.MESSAGES, (mf.go_json(request.messages) + "\n").encode())


def _read_params(ctx: CreateContext, digest: str) -> dict:
    try:
        value = json.loads(ctx.store.read_small_blob(digest))
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise OllamaError(f"stored parameters {digest} are not a JSON object")
    return value


def _quantize(ctx: CreateContext, media_type: str, wanted: str, quantizer):
    for base in ctx.find(media_type):
        # The quantizer says whether it has work, and refuses what it cannot quantize.
        have = quantizer.source_type(base.header) if base.header is not None else None
        if have is None:
            continue
        source = ctx.store.blob_path(base.layer.digest)
        output = ctx.store.scratch_file(".gguf")
        try:
            status = f"quantizing {have} model to {wanted}"
            yield from _with_progress(
                status, lambda progress: quantizer.quantize(source, output, progress)
            )
            header = require_header(ctx.kernel, output, "quantized model")
            digest, size, new = ctx.store_file(output)
        finally:
            output.unlink(missing_ok=True)
        base.layer = mf.Layer(media_type, digest, size, base.layer.from_, base.layer.name)
        base.header = header
        base.status = f"{'creating new' if new else 'using existing'} layer {digest}"


def _with_progress(status: str, work):
    """Run ``work(progress)`` in a thread, turning its progress calls into status lines."""
    events: queue.Queue = queue.Queue()
    done = object()

    def run():
        try:
            work(lambda completed, total: events.put((completed, total)))
            events.put(done)
        except BaseException as exc:  # handed to the request's thread, which reports it
            events.put(exc)

    thread = threading.Thread(target=run, name="quantize", daemon=True)
    thread.start()
    try:
        yield {"status": status, "digest": QUANTIZE_DIGEST, "total": 0, "completed": 0}
        while (item := events.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            completed, total = item
            yield {
                "status": status,
                "digest": QUANTIZE_DIGEST,
                "total": int(total),
                "completed": int(completed),
            }
    finally:
        thread.join()  # the output file must not be written after the caller removes it


def build_config(ctx: CreateContext) -> dict:
    """The config blob (``model.ConfigV2``), in Go's field order."""
    weights = [
        (b.media_type, b.header)
        for b in ctx.layers
        if b.header is not None and b.media_type != mf.DRAFT
    ]
    weights.sort(key=lambda weight: weight[0] != mf.MODEL)  # the model speaks first
    derived: dict = {}
    families: list[str] = []
    for _, header in weights:
        derived.setdefault("model_format", header.format)
        if header.architecture:
            derived.setdefault("model_family", header.architecture)
            if header.architecture not in families:
                families.append(header.architecture)
        derived.setdefault("model_type", format_parameter_size(header.parameter_count))
        derived.setdefault("file_type", header.file_type)
    if families:
        derived["model_families"] = families
    model = next((header for media_type, header in weights if media_type == mf.MODEL), None)
    if model is not None:
        for key in ("context_length", "embedding_length"):
            value = model.metadata.get(f"{model.architecture}.{key}")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                derived[key] = value
    config = {**ctx.config, **derived}
    for key in ("renderer", "parser"):
        config[key] = _architecture_defaults(ctx).get(key) or config.get(key)
    templates_ = ctx.find(mf.TEMPLATE) or ctx.find(mf.PROMPT)
    template = (
        ctx.store.read_small_blob(templates_[-1].layer.digest).decode("utf-8", "replace")
        if templates_
        else None
    )
    request = ctx.request
    if request.remote_host:  # what the remote can do is known only from the request's info
        config.update(remote_host=request.remote_host, remote_model=request.remote_model)
    else:
        found = capabilities(model, template, bool(ctx.find(mf.PROJECTOR)), config)
        if found:
            config["capabilities"] = found
    for key in ("renderer", "parser", "requires"):
        if getattr(request, key):
            config[key] = getattr(request, key)
    for key, value in request.info.items():
        config[_INFO_FIELDS[key]] = value
    if request.info.get("model_family"):  # Ollama's families start with the one info names
        config["model_families"] = [request.info["model_family"], *families]
    return _ordered_config(config)


def _ordered_config(config: dict) -> dict:
    out = {key: config.get(key) or ([] if key == "model_families" else "") for key in _CONFIG_HEAD}
    out.update((key, config[key]) for key in _CONFIG_OPTIONAL if config.get(key))
    known = {*_CONFIG_HEAD, *_CONFIG_OPTIONAL, "architecture", "os", "rootfs"}
    out.update((key, value) for key, value in config.items() if key not in known)
    out["architecture"], out["os"] = "amd64", "linux"
    return out
