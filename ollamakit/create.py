"""What ``/api/create`` receives and what model sources build: the validated ``CreateRequest``
and the ``CreateContext`` that sources fill with base layers.

A model source (hook ``resolve_model_source``) looks at a request and, if the input is its
kind (a GGUF file, a safetensors folder, a parent model), adds layers to the context. The create
pipeline (``ollamakit.creation``) then adds the request's own layers (template, system, ...), the
config and the manifest.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from . import cloud, manifest as mf, rendering
from .digests import parse_digest
from .errors import BadRequest, InvalidModelFile, TooLarge
from .headers import ModelHeader
from .names import ModelName
from .options import PARAMETER_BOUNDS, PARAMETER_KINDS

MAX_FILES = 10_000
MAX_FILE_KEY = 4096
# A create request's own parts (docs/configuration.md, "Limits"). Ollama sets none, but each
# license and message is a blob or a line of work, and every text is read back in full by show
# and at load: Modelfiles hold a few of each, and the largest real licenses are tens of KB.
MAX_LICENSES = 64
MAX_TEXT = 8 << 20  # bytes of a template, of a system prompt, of the licenses together
MAX_MESSAGES = 1024
MAX_PARAMETERS = 256  # keys, and values in a list (stop)

_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?\Z"
)


def _semver_key(version: str) -> tuple:
    """A sort key with semver's order: a pre-release sorts before its release, numeric
    identifiers numerically and below alphanumeric ones; build metadata does not count."""
    match = _SEMVER.match(version)
    if match is None:
        raise ValueError(f"not a semver: {version!r}")
    core = tuple(int(match.group(i)) for i in (1, 2, 3))
    pre = match.group(4)
    if not pre:
        return core, (1,)
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre[1:].split("."))
    return core, (0, parts)


def unmet_requirement(requires: str, version: str) -> bool:
    """Whether a model's ``requires`` (a semver, leading ``v`` allowed) names a version newer
    than ``version``; an unreadable one, which create never stores, counts as met."""
    try:
        return bool(requires) and _semver_key(requires) > _semver_key(version)
    except ValueError:
        return False


_INFO_INTS = ("context_length", "embedding_length")
_INFO_STRINGS = ("model_family", "base_name", "quantization_level", "parameter_size")


def valid_file_path(key: str) -> bool:
    """Go's ``fs.ValidPath``: relative, slash-separated, no empty, ``.`` or ``..`` element."""
    if not isinstance(key, str) or not key or len(key) > MAX_FILE_KEY or "\x00" in key:
        return False
    return all(part not in ("", ".", "..") for part in key.split("/"))


def _get(body: dict, key: str, kind, default=None):
    value = body.get(key)
    if value is None:
        return default
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
    if not ok:
        go_type = {str: "string", bool: "bool", dict: "map", list: "array"}[kind]
        raise BadRequest(
            f"json: cannot unmarshal {_json_type(value)} into Go struct field CreateRequest.{key} of type {go_type}"
        )
    return value


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), "value")


def _file_map(body: dict, key: str) -> dict[str, str]:
    files = _get(body, key, dict, {})
    if len(files) > MAX_FILES:
        raise BadRequest(f"too many {key}: {len(files)} (at most {MAX_FILES})")
    for name, digest in files.items():
        if not isinstance(digest, str):
            raise BadRequest(
                f"json: cannot unmarshal {_json_type(digest)} into Go struct field CreateRequest.{key} of type string"
            )
        if not valid_file_path(name):
            raise BadRequest("file path must be relative")
    return files


def _digests(files: dict[str, str]) -> dict[str, str]:
    return {name: parse_digest(digest) for name, digest in files.items()}


def _shown(value) -> str:
    """A value as JSON, cut short, for an error message."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def normalize_parameter(key: str, value):
    """One parameter typed as Ollama types it; strings from a Modelfile are converted."""
    kind = PARAMETER_KINDS.get(key)
    if kind is None:
        return value  # unknown keys are stored as given (Ollama does not validate at create)
    if kind is list:
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            raise BadRequest(
                f'invalid value for parameter "{key}": expected a string or a list of strings'
            )
        return values
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in _GO_TRUE + _GO_FALSE:
            return value in _GO_TRUE
        raise BadRequest(f'invalid bool value for parameter "{key}": {_shown(value)}')
    number = value
    if isinstance(value, str):
        try:
            number = int(value) if kind is int else float(value)
        except ValueError:
            raise BadRequest(
                f'invalid {kind.__name__} value for parameter "{key}": {_shown(value)}'
            ) from None
    if (
        isinstance(number, bool)
        or not isinstance(number, (int, float))
        or number != number
        or abs(number) == float("inf")
    ):
        raise BadRequest(f'invalid {kind.__name__} value for parameter "{key}": {_shown(value)}')
    if abs(number) >= 2**63:
        raise BadRequest(f'invalid {kind.__name__} value for parameter "{key}": {_shown(value)}')
    least, most = PARAMETER_BOUNDS.get(key, (None, None))
    if (least is not None and number < least) or (most is not None and number > most):
        bounds = f"between {least} and {most}" if most is not None else f"at least {least}"
        raise BadRequest(
            f'invalid value for parameter "{key}": must be {bounds} (got {_shown(value)})'
        )
    if kind is int or isinstance(number, int):
        return int(number)
    # Go writes a whole float64 without a fraction; storing it as an int keeps the same bytes.
    return int(number) if number.is_integer() else number


def normalize_parameters(params: dict) -> dict:
    return {
        key: normalize_parameter(key, value) for key, value in params.items() if value is not None
    }


def normalize_message(message) -> dict:
    """A Message as Go's ``api.Message`` encodes it: fixed field order, empty fields omitted."""
    if not isinstance(message, dict):
        raise BadRequest(
            "json: cannot unmarshal into Go struct field CreateRequest.messages of type api.Message"
        )
    out = {}
    for key in ("role", "content", "thinking", "tool_name", "tool_call_id"):
        value = message.get(key)
        if value is not None and not isinstance(value, str):
            raise BadRequest(
                f"json: cannot unmarshal {_json_type(value)} into Go struct field Message.messages.{key} of type string"
            )
    out["role"] = message.get("role") or ""
    out["content"] = message.get("content") or ""
    if message.get("thinking"):
        out["thinking"] = message["thinking"]
    images = message.get("images")
    if images:
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            raise BadRequest(
                "json: cannot unmarshal into Go struct field Message.messages.images of type []api.ImageData"
            )
        for image in images:
            try:
                base64.b64decode(image, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest("illegal base64 data in message image") from None
        out["images"] = images
    tool_calls = message.get("tool_calls")
    if tool_calls:
        if not isinstance(tool_calls, list) or not all(isinstance(c, dict) for c in tool_calls):
            raise BadRequest(
                "json: cannot unmarshal into Go struct field Message.messages.tool_calls of type []api.ToolCall"
            )
        out["tool_calls"] = tool_calls
    for key in ("tool_name", "tool_call_id"):
        if message.get(key):
            out[key] = message[key]
    return out


def _licenses(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        licenses = [value] if value else []
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        if len(value) > MAX_LICENSES:
            raise BadRequest(f"too many licenses: {len(value)} (at most {MAX_LICENSES})")
        licenses = [v for v in value if v]
    else:
        raise BadRequest("license must be a string or a list of strings")
    _bounded_text("license", sum(len(v) for v in licenses), licenses)
    return licenses


def _bounded_text(field: str, chars: int, texts) -> None:
    """Refuse ``texts`` past MAX_TEXT bytes together (counted cheaply: a character is at
    most four bytes, and only a text that could be too long is encoded)."""
    if chars * 4 <= MAX_TEXT:
        return
    size = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    if size > MAX_TEXT:
        raise TooLarge(f"{field} too large: {size} bytes (at most {MAX_TEXT})")


def _text(body: dict, key: str) -> str | None:
    value = _get(body, key, str) or None
    if value is not None:
        _bounded_text(key, len(value), [value])
    return value


def _parameters(body: dict) -> dict:
    params = _get(body, "parameters", dict, {})
    if len(params) > MAX_PARAMETERS:
        raise BadRequest(f"too many parameters: {len(params)} (at most {MAX_PARAMETERS})")
    for key, value in params.items():
        if isinstance(value, list) and len(value) > MAX_PARAMETERS:
            raise BadRequest(
                f'too many values for parameter "{key}": {len(value)} (at most {MAX_PARAMETERS})'
            )
    return normalize_parameters(params)


def _info(value) -> dict:
    info = value or {}
    if not isinstance(info, dict):
        raise BadRequest("info must be an object")
    out: dict[str, object] = {}
    for key in _INFO_INTS:
        if info.get(key) is not None:
            number = info[key]
            whole = isinstance(number, int) or (isinstance(number, float) and number.is_integer())
            if isinstance(number, bool) or not whole or number < 0 or number >= 2**63:
                raise BadRequest(f"info.{key} must be a non-negative integer")
            out[key] = int(number)
    for key in _INFO_STRINGS:
        if info.get(key) is not None:
            if not isinstance(info[key], str):
                raise BadRequest(f"info.{key} must be a string")
            out[key] = info[key]
    if info.get("capabilities") is not None:
        caps = info["capabilities"]
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise BadRequest("info.capabilities must be a list of strings")
        out["capabilities"] = caps
    return out


@dataclass(frozen=True)
class CreateRequest:
    """A create request, validated. ``target`` says what the files become: ``model`` for the
    main input, ``adapter`` or ``draft`` when a source is asked about those maps."""

    name: ModelName
    from_: str = ""
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256:<hex>
    adapters: dict[str, str] = field(default_factory=dict)
    draft_files: dict[str, str] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    license: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict] = field(default_factory=list)
    quantize: str = ""
    draft_quantize: str = ""
    renderer: str = ""
    parser: str = ""
    requires: str = ""
    info: dict = field(default_factory=dict)
    remote_host: str = ""  # a remote stub: the host that runs it, as remote_url writes it
    remote_model: str = ""  # and the model's name there
    stream: bool = True
    target: str = "model"
    body: dict = field(default_factory=dict, repr=False)  # the raw JSON, for third-party sources

    @classmethod
    def from_body(cls, body: dict) -> CreateRequest:
        """Validate in Ollama's order: file paths, the name, then the input, then the rest."""
        files = _file_map(body, "files")
        adapters = _file_map(body, "adapters")
        draft_files = _file_map(body, "draft_files")
        raw_name = _get(body, "model", str, "") or _get(body, "name", str, "")
        name = ModelName.parse(raw_name)
        if name is None:
            raise BadRequest("invalid model name")
        from_ = _get(body, "from", str, "")
        remote_host, remote_model = "", ""
        if from_:
            try:
                from_, source = cloud.split_source(from_)  # ``:local`` names the stored model
            except BadRequest:
                source = "both"
            if source == "both" or ModelName.parse(from_) is None:
                raise BadRequest("invalid model name")
            remote_model = from_
            # A parent on another server makes a remote stub: no weights, only where to ask.
            remote_host = _get(body, "remote_host", str, "") or (
                cloud.CLOUD_BASE_URL if source == "cloud" else ""
            )
            if remote_host:
                remote_host = cloud.remote_url(remote_host)
            else:
                remote_model = ""
        if not from_ and not files:
            raise BadRequest("neither 'from' or 'files' was specified")
        if remote_host and draft_files:
            raise BadRequest("DRAFT cannot be used with remote models")
        draft_quantize = _get(body, "draft_quantize", str, "")
        if draft_quantize and not draft_files:
            raise BadRequest("--draft-quantize requires a DRAFT model")
        requires = _get(body, "requires", str, "")
        if requires and not _SEMVER.match(requires):
            raise BadRequest("requires must be a valid semver (e.g. 0.14.0)")
        renderer, parser = _get(body, "renderer", str, ""), _get(body, "parser", str, "")
        rendering.check_names(renderer, parser)
        messages = _get(body, "messages", list, [])
        if len(messages) > MAX_MESSAGES:
            raise BadRequest(f"too many messages: {len(messages)} (at most {MAX_MESSAGES})")
        return cls(
            name=name,
            from_=from_,
            files=_digests(files),
            adapters=_digests(adapters),
            draft_files=_digests(draft_files),
            template=_text(body, "template"),
            system=_text(body, "system"),
            license=_licenses(body.get("license")),
            parameters=_parameters(body),
            messages=[normalize_message(m) for m in messages],
            quantize=_get(body, "quantize", str, "") or _get(body, "quantization", str, ""),
            draft_quantize=draft_quantize,
            renderer=renderer,
            parser=parser,
            requires=requires.lstrip("v"),
            info=_info(body.get("info")),
            remote_host=remote_host,
            remote_model=remote_model,
            stream=_get(body, "stream", bool, True),
            body=body,
        )

    def for_target(self, target: str) -> CreateRequest:
        """The same request, asking a source about the adapter or draft files instead."""
        files = {"adapter": self.adapters, "draft": self.draft_files}[target]
        return replace(self, files=files, from_="", target=target)


def check_runnable(kernel, header: ModelHeader, label: str = "") -> None:
    """Refuse a model file no installed engine can run (hook ``check_model``): an unknown
    architecture, a file with no tensors, broken hyperparameters, missing or misshapen tensors."""
    where = f'"{label}": ' if label else ""
    if not header.tensors:
        raise InvalidModelFile(f"{where}model file has no tensors")
    try:
        claimed = kernel.hook.check_model(kernel=kernel, header=header)
    except InvalidModelFile as exc:
        raise InvalidModelFile(where + exc.message) from None
    if not claimed:
        shown = f"'{header.architecture}'" if header.architecture else "(none given)"
        raise InvalidModelFile(f"{where}unsupported model architecture {shown}")


@dataclass
class BaseLayer:
    """A layer of the model being built, with what create learned about it.

    ``header`` is the model file's ``ModelHeader`` for weight layers: it feeds the config and
    template detection. ``origin`` is ``file`` for uploaded inputs, ``parent`` when copied.
    """

    layer: mf.Layer
    status: str
    header: ModelHeader | None = None
    origin: str = "file"

    @property
    def media_type(self) -> str:
        return self.layer.media_type


class CreateContext:
    """The model under construction. Sources call ``add_blob`` for existing blobs and
    ``add_bytes`` for new small ones; ``created`` remembers what this request added so that an
    abandoned create can take back the blobs nobody references."""

    def __init__(self, kernel, request: CreateRequest):
        self.kernel = kernel
        self.request = request
        self.layers: list[BaseLayer] = []
        self.config: dict = {}  # config fields a source carries over (a parent's renderer, ...)
        self.created: set[str] = set()

    @property
    def store(self):
        return self.kernel.store

    def blob_size(self, digest: str, label: str = "") -> int:
        size = self.store.blob_size(digest)
        if size is None:
            where = f' for file "{label}"' if label else ""
            raise BadRequest(
                f'blob "{digest}"{where} not found; upload it first with POST /api/blobs/{digest}'
            )
        return size

    def add_blob(
        self,
        media_type: str,
        digest: str,
        *,
        from_: str = "",
        label: str = "",
        header: ModelHeader | None = None,
        origin: str = "file",
        status: str | None = None,
        layer_name: str = "",
    ) -> BaseLayer:
        """Add an existing blob as a layer; ``label`` names it in errors (the file key). A
        model's weights must be runnable, whichever source brings them (an upload, a
        conversion, a parent model)."""
        size = self.blob_size(digest, label or from_)
        if media_type == mf.MODEL and header is not None:
            check_runnable(self.kernel, header, label or from_)
        layer = mf.Layer(media_type, digest, size, from_, layer_name)
        base = BaseLayer(layer, status or f"using existing layer {digest}", header, origin)
        self.layers.append(base)
        return base

    def store_bytes(self, data: bytes) -> tuple[str, int, bool]:
        """Put ``data`` in the store; returns (digest, size, whether it was new)."""
        digest, size, new = self.store.put_bytes(data)
        if new:
            self.created.add(digest)
        return digest, size, new

    def store_file(self, path) -> tuple[str, int, bool]:
        """Move a scratch file in as a blob; returns (digest, size, whether it was new)."""
        digest, size, new = self.store.put_file(path)
        if new:
            self.created.add(digest)
        return digest, size, new

    def add_bytes(self, media_type: str, data: bytes, *, status: str | None = None) -> BaseLayer:
        digest, size, new = self.store_bytes(data)
        default = f"creating new layer {digest}" if new else f"using existing layer {digest}"
        base = BaseLayer(mf.Layer(media_type, digest, size), status or default)
        self.layers.append(base)
        return base

    def remove(self, media_type: str) -> list[BaseLayer]:
        removed = [b for b in self.layers if b.media_type == media_type]
        self.layers = [b for b in self.layers if b.media_type != media_type]
        return removed

    def find(self, media_type: str) -> list[BaseLayer]:
        return [b for b in self.layers if b.media_type == media_type]
