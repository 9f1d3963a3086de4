"""Go's view of Python values: truth, type names, ``%v`` printing and ``encoding/json`` output.

Templates see plain Python values (str, bool, int, float, list, dict, None) plus a few wrappers
that stand for the Go types Ollama hands its templates: :class:`Struct` (a Go struct, whose
unknown fields are an error rather than a zero value), and the "Stringer" wrappers whose printed
form is JSON (``.Tools``, a tool call's ``.Arguments``) or Go's own ``String()`` text.
"""

from __future__ import annotations

import math


class Struct:
    """A Go struct value. ``fields`` keeps Go's declaration order (it shows in ``%v`` output)."""

    __slots__ = ("type_name", "fields", "pointer", "json_value")

    def __init__(self, type_name: str, fields: dict, pointer: bool = False, json_value=None):
        self.type_name = type_name
        self.fields = fields
        self.pointer = pointer
        # What encoding/json would write for this struct, prepared by whoever built it.
        self.json_value = json_value

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Struct({self.type_name}, {self.fields!r})"


class Stringer:
    """Mixin: the value prints as ``go_string()`` (Go's fmt uses a String method when present)."""

    def go_string(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class JsonMap(dict, Stringer):
    """A Go map whose String() is its JSON, such as a tool call's ``.Arguments``."""

    type_name = "map[string]interface {}"

    def go_string(self) -> str:
        return to_json(dict(self)) if self else "{}"


class JsonList(list, Stringer):
    """A Go slice whose String() is its JSON (``.Tools``). A nil slice (no tools sent at all)
    prints ``null``; an empty one ``[]``."""

    type_name = "[]interface {}"

    def __init__(self, items=(), is_nil: bool = False):
        super().__init__(items)
        self.is_nil = is_nil

    def go_string(self) -> str:
        return to_json(self)


class StructJson(Struct, Stringer):
    """A struct with a String() method that marshals it (each item of ``.Tools``)."""

    __slots__ = ()

    def go_string(self) -> str:
        return to_json(self)


class TypeList(list, Stringer):
    """A tool property's ``type``: one name prints bare, several print as ``[a b]``."""

    type_name = "api.PropertyType"

    def go_string(self) -> str:
        if not self:
            return ""
        if len(self) == 1:
            return str(self[0])
        return "[" + " ".join(str(t) for t in self) + "]"


# ---------------------------------------------------------------------------------------------
# kinds and truth


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    return is_int(v) or isinstance(v, float)


def basic_kind(v) -> str:
    """Go's basicKind for comparison functions: bool, int, float, string, or '' for the rest."""
    if isinstance(v, bool):
        return "bool"
    if is_int(v):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return ""


def truth(v) -> bool:
    """Go's template truth: false, 0, nil, and empty strings, slices and maps are false."""
    if v is None:
        return False
    if isinstance(v, (bool, int, float, str, list, dict, tuple)):
        return bool(v)
    return True  # structs and anything else non-nil


def type_name(v) -> str:
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if is_int(v):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Struct):
        return ("*" if v.pointer else "") + v.type_name
    if hasattr(v, "type_name"):
        return v.type_name
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    if isinstance(v, dict):
        return "map[string]interface {}"
    return type(v).__name__


# ---------------------------------------------------------------------------------------------
# floats, the way strconv writes them


def shortest_digits(f: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of a positive finite float and the decimal point
    position ``dp`` such that the value is ``0.<digits> * 10**dp``."""
    mantissa, _, exp = repr(f).partition("e")
    whole, _, frac = mantissa.partition(".")
    if frac == "0":
        frac = ""
    raw = whole + frac
    stripped = raw.lstrip("0")
    dp = len(whole) + (int(exp) if exp else 0) - (len(raw) - len(stripped))
    digits = stripped.rstrip("0") or "0"
    return digits, dp


def _exp_form(digits: str, dp: int, min_exp_digits: int = 2) -> str:
    exp = dp - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    sign = "-" if exp < 0 else "+"
    return f"{mant}e{sign}{abs(exp):0{min_exp_digits}d}"


def _fixed_form(digits: str, dp: int) -> str:
    if dp <= 0:
        return "0." + "0" * (-dp) + digits
    if dp >= len(digits):
        return digits + "0" * (dp - len(digits))
    return digits[:dp] + "." + digits[dp:]


def format_float_g(f: float) -> str:
    """``%v`` of a float64: the shortest digits that round-trip, as strconv's 'g' with precision -1."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    sign = "-" if f < 0 else ""
    digits, dp = shortest_digits(abs(f))
    exp = dp - 1
    # strconv's shortest %g switches to exponent form for exponents < -4 or >= 6.
    if exp < -4 or exp >= 6:
        return sign + _exp_form(digits, dp)
    return sign + _fixed_form(digits, dp)


def json_float(f: float) -> str:
    """encoding/json's float64 text (ES6 style): 3 not 3.0, 1e-7 not 1e-07, 1e+21 from 1e21."""
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"json: unsupported value: {format_float_g(f)}")
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    sign = "-" if f < 0 else ""
    a = abs(f)
    digits, dp = shortest_digits(a)
    if a < 1e-6 or a >= 1e21:
        return sign + _exp_form(digits, dp, min_exp_digits=1)
    return sign + _fixed_form(digits, dp)


# ---------------------------------------------------------------------------------------------
# printing


def format_v(v, top: bool = True) -> str:
    """fmt's ``%v`` (and Sprint) for a template value."""
    if v is None:
        return "<nil>"
    if isinstance(v, Stringer):
        return v.go_string()
    if isinstance(v, bool):
        return "true" if v else "false"
    if is_int(v):
        return str(v)
    if isinstance(v, float):
        return format_float_g(v)
    if isinstance(v, str):
        return v
    if isinstance(v, Struct):
        inner = "{" + " ".join(format_v(x, False) for x in v.fields.values()) + "}"
        # fmt marks a pointer to a struct with & at the top level only.
        return "&" + inner if v.pointer and top else inner
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(format_v(x, False) for x in v) + "]"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: _sort_key(kv[0]))
        return (
            "map[" + " ".join(f"{format_v(k, False)}:{format_v(x, False)}" for k, x in items) + "]"
        )
    return str(v)


def _sort_key(k):
    return (0, k, "") if is_number(k) else (1, 0, str(k))


# ---------------------------------------------------------------------------------------------
# encoding/json


_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def json_string(s: str) -> str:
    out = ['"']
    for ch in s:
        esc = _JSON_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def to_json(v) -> str:
    """encoding/json.Marshal: compact, map keys sorted, HTML characters escaped."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if is_int(v):
        return str(v)
    if isinstance(v, float):
        return json_float(v)
    if isinstance(v, str):
        return json_string(v)
    if isinstance(v, Struct):
        if v.json_value is None:
            return (
                "{" + ",".join(f"{json_string(k)}:{to_json(x)}" for k, x in v.fields.items()) + "}"
            )
        return to_json(v.json_value)
    if isinstance(v, OrderedJson):
        return "{" + ",".join(f"{json_string(str(k))}:{to_json(x)}" for k, x in v.items()) + "}"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: str(kv[0]))
        return "{" + ",".join(f"{json_string(str(k))}:{to_json(x)}" for k, x in items) + "}"
    if isinstance(v, (list, tuple)):
        if getattr(v, "is_nil", False):
            return "null"
        return "[" + ",".join(to_json(x) for x in v) + "]"
    raise ValueError(f"json: unsupported type: {type_name(v)}")


class OrderedJson(dict):
    """A JSON object that marshals in insertion order (a Go struct or an ordered map)."""
