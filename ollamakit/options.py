"""Ollama's runtime ``options``: one table of their names, types and bounds, and the typed
``Options`` a request runs with.

Create types a Modelfile's ``PARAMETER`` lines with the same table (``PARAMETER_KINDS``,
``PARAMETER_BOUNDS``), so a stored parameter and a request's option are held to the same rules.
The merge order is Ollama's: defaults, then the model's parameters, then the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from .errors import BadRequest

# Options that shape how a model is loaded rather than how one request samples.
LOAD_OPTIONS = frozenset({"num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread"})

MIN_NUM_CTX = 4
INT64 = (-(2**63), 2**63 - 1)


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


def _kind(name: str, annotation: str) -> type:
    if name == "stop":
        return list
    return bool if "bool" in annotation else float if "float" in annotation else int


# Ollama's option types (``api.Options``), read off ``Options``: create stores ``PARAMETER
# temperature 0.7`` as a number and ``stop`` always as a list, as Ollama's FormatParams does.
PARAMETER_KINDS: dict[str, type] = {f.name: _kind(f.name, str(f.type)) for f in fields(Options)}

# The least value each numeric option may take (and the most, for probabilities): below it no
# sampler can honour the value. A request's option out of bounds is a 400; create refuses such a
# parameter rather than store a model that could never answer.
PARAMETER_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "num_ctx": (1, None),
    "num_batch": (1, None),
    "num_thread": (0, None),
    "num_keep": (-1, None),
    "top_k": (0, None),
    "repeat_last_n": (-1, None),
    "top_p": (0.0, 1.0),
    "min_p": (0.0, 1.0),
    "temperature": (0.0, None),
    "repeat_penalty": (0.0, None),
}

# Go's names for the types, as its error messages print them.
_GO_TYPES = {int: "integer", float: "float32", bool: "boolean", list: "array"}
_FINITE = (
    "top_p",
    "min_p",
    "typical_p",
    "temperature",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
)


def _convert(key: str, value):
    # Ollama's words for a value of the wrong type, but a 400 where Ollama answers 500: the
    # mistake is the client's.
    kind = PARAMETER_KINDS[key]
    wrong = BadRequest(f'option "{key}" must be of type {_GO_TYPES[kind]}')
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong
        if value != value or not INT64[0] <= value <= INT64[1]:  # NaN, or outside Go's int
            raise wrong
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong
        try:
            return float(value)
        except OverflowError:  # an integer too large for a double
            raise wrong from None
    if kind is bool:
        if not isinstance(value, bool):
            raise wrong
        return value
    if not isinstance(value, (list, tuple)):
        raise wrong
    if not all(isinstance(item, str) for item in value):
        raise BadRequest(f'option "{key}" must be of an array of strings')
    return tuple(value)


def apply(base: Options, values) -> Options:
    """``base`` with ``values`` (a JSON object) applied. Unknown keys and nulls are skipped;
    a value of the wrong type is a 400, in Ollama's words."""
    if values is None:
        return base
    if not isinstance(values, dict):
        raise BadRequest(
            f"json: cannot unmarshal {type(values).__name__} into field options of type map"
        )
    changes = {}
    for key, value in values.items():
        if key in PARAMETER_KINDS and value is not None:
            changes[key] = _convert(key, value)
    return replace(base, **changes) if changes else base


def _why(least, most) -> str:
    if most is not None:
        return f"must be between {least:g} and {most:g}"
    return {0: "must not be negative", -1: "must be -1 or more"}.get(
        least, f"must be at least {least:g}"
    )


def validate(options: Options) -> Options:
    """Values no sampler can honour are the client's mistake: a 400, never a crash later."""
    for name, (least, most) in PARAMETER_BOUNDS.items():
        value = getattr(options, name)
        if value is None:
            continue
        # written so that NaN fails too, as no comparison holds for it
        if (least is not None and not value >= least) or (most is not None and not value <= most):
            raise BadRequest(f'invalid option "{name}": {_why(least, most)} (got {value})')
    if not options.typical_p > 0.0:
        raise BadRequest(
            f'invalid option "typical_p": must be greater than 0 (got {options.typical_p})'
        )
    for name in _FINITE:
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
