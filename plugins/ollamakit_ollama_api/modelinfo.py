"""What ``/api/show`` (and create's config) say about a model: details, model_info, tensors,
capabilities, the parameters text and the generated Modelfile, in Ollama's formats."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from decimal import Decimal

from ollamakit import manifest as mf
from ollamakit.capabilities import (  # noqa: F401 (callers read them here)
    add_parser_capabilities,
    capabilities,
    encoder_or_completion,
    gguf_header,
    jinja_template,
)
from ollamakit.lib.templates import template_capabilities
from ollamakit.errors import OllamaError


log = logging.getLogger("ollamakit.api")

DEFAULT_TEMPLATE = "{{ .Prompt }}"
MAX_SHOWN_ARRAY = 5  # longer arrays (vocabularies, merges) are shown as [] unless verbose
_HIDDEN_KEYS = ("general.name", "tokenizer.chat_template")


def shown_template(template: str | None, header) -> str:
    """``/api/show``'s template: the Go template, else the Jinja one that runs, else the default."""
    return template if template is not None else jinja_template(header) or DEFAULT_TEMPLATE


# -- /api/tags: what Ollama's model list computes for every model ------------------------------

# blob digest -> its leading GGUF metadata (or None); ("entry", manifest digest) -> list_entry()
_LIST_CACHE: OrderedDict = OrderedDict()
_LIST_CACHE_SIZE = 4096
_CACHE_LOCK = threading.Lock()


def _leading_metadata(store, digest: str) -> dict | None:
    """The GGUF values before the vocabulary (cached by digest), or None for a missing blob or
    one that does not read as a GGUF."""
    from ollamakit.lib.gguf.reader import looks_like_gguf, read_leading_metadata

    with _CACHE_LOCK:
        if digest in _LIST_CACHE:
            _LIST_CACHE.move_to_end(digest)
            return _LIST_CACHE[digest]
    path = store.blob_path(digest)
    if not looks_like_gguf(path):
        return None
    try:
        metadata = read_leading_metadata(path)
    except (OSError, ValueError, OllamaError) as exc:  # a damaged file lists without these
        log.debug("cannot read the metadata of %s: %s", digest, exc)
        metadata = None
    with _CACHE_LOCK:
        _LIST_CACHE[digest] = metadata
        while len(_LIST_CACHE) > _LIST_CACHE_SIZE:
            _LIST_CACHE.popitem(last=False)
    return metadata


def _whole(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _gguf_summary(metadata: dict) -> tuple[list[str], int, int, str]:
    """Capabilities, context and embedding length and file type as Ollama's model list reads
    them from a GGUF: vision and audio in the order their keys come, then embedding (a pooling
    type) or completion."""
    from ollamakit.lib.gguf.constants import file_type_name

    arch = metadata.get("general.architecture")
    arch = arch if isinstance(arch, str) else ""
    found: list[str] = []
    for key in metadata:
        if arch and key.startswith(arch + "."):
            name = {"vision.block_count": "vision", "audio.block_count": "audio"}.get(
                key[len(arch) + 1 :]
            )
            if name and name not in found:
                found.append(name)
    found.append(encoder_or_completion(metadata, arch))
    file_type = (
        file_type_name(metadata["general.file_type"]) if "general.file_type" in metadata else ""
    )
    return (
        found,
        _whole(metadata.get(f"{arch}.context_length")) or 0,
        _whole(metadata.get(f"{arch}.embedding_length")) or 0,
        file_type,
    )


def list_entry(model) -> tuple[dict, list[str]]:
    """``details`` and ``capabilities`` of a stored model in ``/api/tags``, computed for every
    model (pulled, created or copied in) the way Ollama's model list computes them: from the
    config, the GGUF's leading values, the Go template (``{{ .Prompt }}`` when there is none),
    the model family and any projector. Cached by manifest digest, which covers all of them."""
    key = ("entry", model.digest)
    with _CACHE_LOCK:
        if key in _LIST_CACHE:
            _LIST_CACHE.move_to_end(key)
            details_, found = _LIST_CACHE[key]
            return dict(details_), list(found)
    details_, found = _list_entry(model)
    with _CACHE_LOCK:
        _LIST_CACHE[key] = (dict(details_), list(found))
        while len(_LIST_CACHE) > _LIST_CACHE_SIZE:
            _LIST_CACHE.popitem(last=False)
    return details_, found


def _list_entry(model) -> tuple[dict, list[str]]:
    config = model.config
    layer = model.model_layer
    out = details(config, layer.from_ if layer else "")
    found: list[str] = []
    remote = config.get("remote_host") or config.get("remote_model")
    metadata = _leading_metadata(model.store, layer.digest) if layer and not remote else None
    if metadata is not None:
        gguf_caps, context_length, embedding_length, file_type = _gguf_summary(metadata)
        found.extend(gguf_caps)
        if not out.get("context_length") and context_length:
            out["context_length"] = context_length
        if not out.get("embedding_length") and embedding_length:
            out["embedding_length"] = embedding_length
        if out["quantization_level"] in ("", "unknown") and file_type not in ("", "unknown"):
            out["quantization_level"] = file_type
    for capability in config.get("capabilities") or []:
        if isinstance(capability, str) and capability and capability not in found:
            found.append(capability)
    from_template = (
        template_capabilities(model.template or DEFAULT_TEMPLATE)
        if template_capabilities
        else set()
    )
    for capability in ("tools", "insert"):
        if capability in from_template and capability not in found:
            found.append(capability)
    add_parser_capabilities(found, config)
    family = config.get("model_family", "")
    if ("thinking" in from_template or family in ("gptoss", "gpt-oss")) and "thinking" not in found:
        found.append("thinking")
    if model.manifest.find(mf.PROJECTOR) and "vision" not in found:
        found.append("vision")
    return out, found


# -- model_info and tensors --------------------------------------------------------------------


def _short_float(value: float, float32: bool):
    """A float as Go prints it: float32 values by their own shortest digits, whole numbers
    without a fraction."""
    if float32:
        import numpy

        value = float(str(numpy.float32(value)))
    if value == value and abs(value) < 2**53 and value.is_integer():
        return int(value)
    return value


def _info_value(value, float32: bool, verbose: bool):
    if isinstance(value, list):
        if not verbose and len(value) > MAX_SHOWN_ARRAY:
            return []
        return [_info_value(v, float32, verbose) for v in value]
    if isinstance(value, float):
        return _short_float(value, float32)
    return value


def model_info(header, verbose: bool = False) -> dict:
    """The file's key-values (sorted, as Go encodes a map) plus ``general.parameter_count``."""
    if header is None:
        return {}
    float32 = header.float32_keys
    info = {
        key: _info_value(value, key in float32, verbose)
        for key, value in header.metadata.items()
        if key not in _HIDDEN_KEYS
    }
    info["general.parameter_count"] = header.parameter_count
    return dict(sorted(info.items()))


def remote_model_info(config: dict) -> dict:
    """``model_info`` of a remote stub: its family, base name and lengths, as create's ``info``
    gave them (empty without a family)."""
    family = config.get("model_family")
    if not family:
        return {}
    info = {"general.architecture": family}
    if config.get("base_name"):
        info["general.basename"] = config["base_name"]
    for key in ("context_length", "embedding_length"):
        if config.get(key):
            info[f"{family}.{key}"] = config[key]
    return info


def tensors(header) -> list[dict]:
    if header is None:
        return []
    return [{"name": t.name, "type": t.type_name, "shape": list(t.shape)} for t in header.tensors]


def details(config: dict, parent_model: str = "") -> dict:
    out = {
        "parent_model": parent_model,
        "format": config.get("model_format", ""),
        "family": config.get("model_family", ""),
        "families": config.get("model_families") or [],
        "parameter_size": config.get("model_type", ""),
        "quantization_level": config.get("file_type", ""),
    }
    for key in ("context_length", "embedding_length"):
        if config.get(key):
            out[key] = config[key]
    return out


# -- Go value formatting -------------------------------------------------------------------------

_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_quote(text: str) -> str:
    """``strconv.Quote``: printable characters kept, the rest escaped."""
    out = []
    for char in text:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def go_float(value: float) -> str:
    """A float64 as Go's ``%v`` prints it: shortest digits, exponent form when the exponent is
    below -4 or at least 6 (``1e+06``)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    sign, digits, exponent = Decimal(repr(float(value))).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + exponent  # position of the decimal point within ``text``
    exp = point - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def go_value(value, quoted: bool) -> str:
    """``%#v`` (``quoted``) or ``%v`` of a value decoded from JSON into Go's ``any``: numbers
    are float64, so ``4096`` prints as ``4096`` and ``1000000`` as ``1e+06``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return go_float(float(value)) if abs(value) < 1e300 else str(value)
    if isinstance(value, str):
        return go_quote(value) if quoted else value
    if value is None:
        return "<nil>"
    return mf.go_json(value)


def parameters_text(params: dict) -> str:
    """``%-30s %#v`` per value, arrays one line per element."""
    lines = []
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{key:<30} {go_value(item, quoted=True)}")
    return "\n".join(lines)


# -- the generated Modelfile -----------------------------------------------------------------------


def modelfile_quote(text: str) -> str:
    if "\n" in text or text.startswith(" ") or text.endswith(" "):
        return f'"""{text}"""' if '"' in text else f'"{text}"'
    return text


def modelfile(model, template: str, system: str, params: dict) -> str:
    """The text ``ollama show --modelfile`` prints for a stored model."""
    store, manifest, config = model.store, model.manifest, model.config
    lines = [
        '# Modelfile generated by "ollama show"',
        "# To build a new Modelfile based on this, replace FROM with:",
        f"# FROM {model.short_name}",
        "",
    ]
    model_layer = model.model_layer
    lines.append(f"FROM {store.blob_path(model_layer.digest) if model_layer else ''}")
    lines += [
        f"ADAPTER {modelfile_quote(str(store.blob_path(layer.digest)))}"
        for layer in manifest.find(mf.ADAPTER)
    ]
    lines += [
        f"DRAFT {modelfile_quote(str(store.blob_path(layer.digest)))}"
        for layer in manifest.find(mf.DRAFT)
    ]
    lines += [f"FROM {store.blob_path(layer.digest)}" for layer in manifest.find(mf.PROJECTOR)]
    lines.append(f"TEMPLATE {modelfile_quote(template)}")
    if system:
        lines.append(f"SYSTEM {modelfile_quote(system)}")
    for key in ("renderer", "parser"):
        if config.get(key):
            lines.append(f"{key.upper()} {modelfile_quote(config[key])}")
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"PARAMETER {key} {modelfile_quote(go_value(item, quoted=False))}")
    lines += [f"LICENSE {modelfile_quote(text)}" for text in model.licenses]
    for message in model.messages:
        if isinstance(message, dict):
            role, content = str(message.get("role", "")), str(message.get("content", ""))
            lines.append(f"MESSAGE {role} {modelfile_quote(content)}")
    return "\n".join(lines) + "\n"
