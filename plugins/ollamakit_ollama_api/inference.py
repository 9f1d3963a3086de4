"""What ``/api/generate`` and ``/api/chat`` share: the common request fields, the model lookup,
the load/unload replies, and turning a running sequence into reply objects with metrics."""

from __future__ import annotations

import binascii
import time
from dataclasses import dataclass, replace

from ollamakit.config import parse_duration
from ollamakit import OLLAMA_VERSION
from ollamakit.create import unmet_requirement
from ollamakit.errors import BadRequest, Cancelled, NotFound, OllamaError
from ollamakit.names import ModelName
from ollamakit.store import LocalModel, format_utc_now
from ollamakit.web.body import field
import ollamakit.lib.structured as structured
from ollamakit.events import Chunk
from ollamakit.lib.structured.output import Parsed

from . import modelinfo

THINK_LEVELS = ("high", "medium", "low", "max")
MAX_IMAGE_BYTES = 64 * 1024 * 1024


@dataclass
class Common:
    """Fields every inference request has, validated."""

    model: str
    stream: bool
    keep_alive: float | None  # seconds; None: the server default; inf: forever
    options: dict | None
    think: bool | str | None
    logprobs: bool
    top_logprobs: int
    truncate: bool
    shift: bool
    format: object
    debug_render_only: bool

    @property
    def unload_requested(self) -> bool:
        return self.keep_alive == 0


def parse_keep_alive(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadRequest(f"Unsupported type: '{type(value).__name__}'")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def parse_think(value):
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value in THINK_LEVELS:
        return value
    if isinstance(value, str):
        raise BadRequest(f'invalid think value: "{value}" (must be "high", "medium", "low", "max", true, or false)')
    raise BadRequest(f"json: cannot unmarshal {type(value).__name__} into field think of type bool or string")


def parse_format(value):
    """``"json"``, a JSON Schema object, or nothing: a checked ``FormatSpec`` or None. Any other
    string is a 500 as in Ollama; a schema that cannot be enforced is a 400."""
    return structured.parse_format(value)


def format_constraint(spec, lease, after: str | None = None):
    """The constraint that holds one sequence's answer to ``spec`` (None without a format);
    ``after``: a thinking model's closing tag, before which the text is free."""
    if spec is None:
        return None
    if after:
        spec = spec.with_preamble(after)
    try:
        return structured.Constraint(spec, lease.tokenizer, getattr(lease.runner, "vocab_size", None))
    except ValueError as exc:
        raise OllamaError(f"this model cannot use format: {exc}") from None


def parse_common(body: dict) -> Common:
    top_logprobs = field(body, "top_logprobs", int, 0)
    if not 0 <= top_logprobs <= 20:
        raise BadRequest("top_logprobs must be between 0 and 20")
    options = body.get("options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest(f"json: cannot unmarshal {type(options).__name__} into field options of type map")
    return Common(
        model=field(body, "model", str, ""),
        stream=field(body, "stream", bool, True),
        keep_alive=parse_keep_alive(body.get("keep_alive")),
        options=options,
        think=parse_think(body.get("think")),
        logprobs=field(body, "logprobs", bool, False),
        top_logprobs=top_logprobs,
        truncate=field(body, "truncate", bool, True),
        shift=field(body, "shift", bool, True),
        format=body.get("format"),
        debug_render_only=field(body, "_debug_render_only", bool, False),
    )


def find_model(kernel, name: str) -> LocalModel:
    """The stored model; 404 ``model '<name>' not found`` (the raw name) otherwise."""
    if name and ModelName.parse(name) is None:
        raise BadRequest("invalid model name")
    model = kernel.store.get(name) if name else None
    if model is None:
        raise NotFound(f"model '{name}' not found")
    check_requires(model)
    return with_chosen_template(model, kernel.settings)


def with_chosen_template(model: LocalModel, settings) -> LocalModel:
    """``OLLAMA_GO_TEMPLATE=false``: a model that has both a Go template and the GGUF's own
    (Jinja) chat template is prompted, and its capabilities read, through the Jinja one, as in
    Ollama; the model as seen by this request, the stored one unchanged. Without a Jinja template
    the Go template stays (Ollama would have no template to use at all)."""
    if settings.go_template or model.template is None:
        return model
    layer = model.model_layer
    if not layer or modelinfo.jinja_template(modelinfo.gguf_header(model.store, layer.digest)) is None:
        return model
    chosen = replace(model)
    chosen.__dict__["template"] = None  # the cached_property's slot: no Go template
    return chosen


def check_requires(model: LocalModel) -> None:
    """A model whose Modelfile said ``REQUIRES`` a newer Ollama than the API this server
    implements does not run: 412 in the words ollama.com's registry uses when an older Ollama
    asks for such a model (Ollama itself stores the version and checks only that it is a semver,
    so the registry is where it is enforced; a model copied in or created here meets the same
    rule when it is used)."""
    requires = model.config.get("requires")
    if isinstance(requires, str) and unmet_requirement(requires, OLLAMA_VERSION):
        raise OllamaError(
            f"The model you are attempting to run requires a newer version of Ollama "
            f"({requires.lstrip('v')}; this server implements {OLLAMA_VERSION}).",
            412,
        )


def decode_images(images, where: str = "images") -> list[bytes]:
    if images is None:
        return []
    if not isinstance(images, list):
        raise BadRequest(f"json: cannot unmarshal {type(images).__name__} into field {where} of type []string")
    decoded = []
    for image in images:
        if not isinstance(image, str):
            raise BadRequest(f"json: cannot unmarshal {type(image).__name__} into field {where} of type string")
        if len(image) > MAX_IMAGE_BYTES * 4 // 3 + 4:
            raise BadRequest("image is too large")
        try:
            decoded.append(binascii.a2b_base64(image.encode("ascii"), strict_mode=True))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            bad = next((i for i, c in enumerate(image) if not (c.isalnum() or c in "+/=")), 0)
            raise BadRequest(f"illegal base64 data at input byte {bad}") from None
    return decoded


def check_images(lease, count: int) -> None:
    """Images reach only a model that can encode them: a model whose projector is missing or
    of a kind the engine does not run answers 400 rather than reading the text without them."""
    if count and getattr(lease.runner, "vision", None) is None:
        raise BadRequest("this model is missing data required for image input")


def check_think(model: LocalModel, name: str, think, capabilities: set[str]):
    """Thinking models default to thinking; asking a model that cannot think is a 400."""
    if "thinking" in capabilities:
        return True if think is None else think
    if think not in (None, False):
        raise BadRequest(f'"{name}" does not support thinking')
    return None


def require(model: LocalModel, capabilities: set[str], needed: list[str]) -> None:
    missing = [c for c in needed if c not in capabilities]
    if missing:
        raise BadRequest(f"{model.name.display_full()} does not support {', '.join(missing)}")


def nanoseconds_since(start: int) -> int:
    return max(1, time.perf_counter_ns() - start)


def metrics(done, started: int, load_ns: int) -> dict:
    """The final chunk's counts and durations (integer nanoseconds); zeros are left out."""
    values = {
        "total_duration": nanoseconds_since(started),
        "load_duration": load_ns,
        "prompt_eval_count": done.metrics.prompt_eval_count,
        "prompt_eval_duration": done.metrics.prompt_eval_duration,
        "eval_count": done.metrics.eval_count,
        "eval_duration": done.metrics.eval_duration,
    }
    return {k: int(v) for k, v in values.items() if v}


def base(model_name: str) -> dict:
    return {"model": model_name, "created_at": format_utc_now()}


def run_sequence(lease, tokens: list[int], common: Common, constraint=None, gone=None):
    """Start the prompt ``tokens`` on the leased model; yield its ``Chunk``s and ``Done``.
    ``constraint`` holds the answer to a ``format``. Closing this generator, or ``gone()``
    saying the client went away, cancels the sequence at once."""
    if gone is not None and gone():  # it left while the prompt was prepared: take no slot
        raise Cancelled("client disconnected")
    sequence = lease.start(
        tokens,
        shift=common.shift,
        truncate=common.truncate,
        logprobs=common.logprobs,
        # Ollama reads top_logprobs only when logprobs is asked for
        top_logprobs=common.top_logprobs if common.logprobs else 0,
        constraint=constraint,
    )
    events = sequence.events(gone)
    try:
        yield from events
    finally:
        events.close()


def parsed_events(events, parser):
    """A sequence's events with their text put through the template's output ``parser`` (None:
    the text as it is): ``(Parsed, logprobs)`` for each piece worth sending, the tail the parser
    held back, then the ``Done``."""
    for event in events:
        if isinstance(event, Chunk):
            parsed = parser.feed(event.text) if parser else Parsed(event.text)
            if parsed or event.logprobs or not parser:
                yield parsed, event.logprobs
            continue
        tail = parser.flush() if parser else None
        if tail:
            yield tail, []
        yield event


def concatenate(chunks: list[dict], text_of, set_text) -> dict:
    """``stream:false``: the last chunk, with the text and log-probabilities of all of them."""
    if not chunks:
        return {}
    final = dict(chunks[-1])
    set_text(final, "".join(text_of(c) for c in chunks))
    logprobs = [entry for c in chunks for entry in (c.get("logprobs") or [])]
    if logprobs:
        final["logprobs"] = logprobs
    return final

