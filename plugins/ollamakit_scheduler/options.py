"""Runtime ``options``: Ollama's types, defaults and merge order (defaults, then the model's
``PARAMETER`` values, then the request), plus range checks Ollama leaves to the runner."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from ollamakit.errors import BadRequest

# Options that shape how a model is loaded rather than how one request samples.
LOAD_OPTIONS = frozenset({"num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread"})

MIN_NUM_CTX = 4


@dataclass(frozen=True)
class Options:
    # load
    num_ctx: int | None = None  # None: the server default, clamped to the model's context
    num_batch: int = 512
    num_gpu: int = -1
    main_gpu: int | None = None
    use_mmap: bool | None = None
    num_thread: int = 0
    draft_num_predict: int = 4
    # predict
    num_keep: int = 4
    seed: int = -1
    num_predict: int = -1
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_last_n: int = 64
    temperature: float = 0.8
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# Go's names for the types, as its error messages print them.
_KINDS = {}
for _f in fields(Options):
    _type = str(_f.type)
    _KINDS[_f.name] = (
        "array" if _f.name == "stop" else "boolean" if "bool" in _type else "float32" if "float" in _type else "integer"
    )


INT64 = (-(2**63), 2**63 - 1)


def _convert(key: str, value):
    # Ollama's words for a value of the wrong type, but a 400 where Ollama answers 500: the
    # mistake is the client's.
    kind = _KINDS[key]
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequest(f'option "{key}" must be of type integer')
        if value != value or not INT64[0] <= value <= INT64[1]:  # NaN, or outside Go's int
            raise BadRequest(f'option "{key}" must be of type integer')
        return int(value)
    if kind == "float32":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequest(f'option "{key}" must be of type float32')
        try:
            return float(value)
        except OverflowError:  # an integer too large for a double
            raise BadRequest(f'option "{key}" must be of type float32') from None
    if kind == "boolean":
        if not isinstance(value, bool):
            raise BadRequest(f'option "{key}" must be of type boolean')
        return value
    if not isinstance(value, (list, tuple)):
        raise BadRequest(f'option "{key}" must be of type array')
    if not all(isinstance(item, str) for item in value):
        raise BadRequest(f'option "{key}" must be of an array of strings')
    return tuple(value)


def apply(base: Options, values) -> Options:
    """``base`` with ``values`` (a JSON object) applied. Unknown keys and nulls are skipped;
    a value of the wrong type is a 400, in Ollama's words."""
    if values is None:
        return base
    if not isinstance(values, dict):
        raise BadRequest(f"json: cannot unmarshal {type(values).__name__} into field options of type map")
    changes = {}
    for key, value in values.items():
        if key in _KINDS and value is not None:
            changes[key] = _convert(key, value)
    return replace(base, **changes) if changes else base


def validate(options: Options) -> Options:
    """Values no sampler can honour are the client's mistake: a 400, never a crash later."""
    checks = [
        ("num_ctx", options.num_ctx is None or options.num_ctx >= 1, "must be at least 1"),
        ("num_batch", options.num_batch >= 1, "must be at least 1"),
        ("num_thread", options.num_thread >= 0, "must not be negative"),
        ("num_keep", options.num_keep >= -1, "must be -1 or more"),
        ("top_k", options.top_k >= 0, "must not be negative"),
        ("top_p", 0.0 <= options.top_p <= 1.0, "must be between 0 and 1"),
        ("min_p", 0.0 <= options.min_p <= 1.0, "must be between 0 and 1"),
        ("typical_p", options.typical_p > 0.0, "must be greater than 0"),
        ("repeat_last_n", options.repeat_last_n >= -1, "must be -1 or more"),
        ("temperature", options.temperature >= 0.0, "must not be negative"),
        ("repeat_penalty", options.repeat_penalty >= 0.0, "must not be negative"),
    ]
    for name, ok, why in checks:
        if not ok:
            raise BadRequest(f'invalid option "{name}": {why} (got {getattr(options, name)})')
    for name in ("top_p", "min_p", "typical_p", "temperature", "repeat_penalty", "presence_penalty", "frequency_penalty"):
        value = getattr(options, name)
        if value != value or value in (float("inf"), float("-inf")):
            raise BadRequest(f'invalid option "{name}": must be a finite number')
    if any(stop == "" for stop in options.stop):
        raise BadRequest('invalid option "stop": stop sequences must not be empty')
    return options


def merged(model_params: dict | None, request_options) -> Options:
    """Defaults, then the model's parameters, then the request's options (request keys win)."""
    return validate(apply(apply(Options(), model_params or {}), request_options))


def load_options(options: Options) -> dict:
    """The options that affect loading, as the engine's ``load_model`` receives them."""
    return {key: getattr(options, key) for key in LOAD_OPTIONS}
