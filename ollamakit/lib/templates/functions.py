"""The functions a template can call: Go's built-ins and the four Ollama adds.

Each function takes already-evaluated arguments and raises :class:`FuncError` with Go's
wording; the executor reports it as ``error calling <name>: <message>``. ``and`` and ``or``
short-circuit, so the executor evaluates their arguments itself.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from urllib.parse import quote_plus

from .gofmt import sprint, sprintf, sprintln
from .values import Struct, basic_kind, is_int, to_json, truth, type_name


class FuncError(Exception):
    pass


class ArityError(Exception):
    """Go reports a wrong argument count without the "error calling" prefix."""


def _arity(name: str, args, want: int, at_least: bool = False):
    if (len(args) < want) if at_least else (len(args) != want):
        qual = "at least " if at_least else ""
        raise ArityError(f"wrong number of args for {name}: want {qual}{want} got {len(args)}")


# -- comparisons ---------------------------------------------------------------------------------

BAD_COMPARISON = "incompatible types for comparison"
BAD_COMPARISON_TYPE = "invalid type for comparison"


def _eq_pair(a, b) -> bool:
    ka, kb = basic_kind(a), basic_kind(b)
    if ka != kb:
        if a is not None and b is not None:
            raise FuncError(BAD_COMPARISON)
        return False
    if ka:
        return a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        raise FuncError(f"non-comparable type {type_name(a)}")
    return a is b


def eq(*args):
    if len(args) < 2:
        _arity("eq", args, 1, at_least=True)
        raise FuncError("missing argument for comparison")
    first = args[0]
    return any(_eq_pair(first, other) for other in args[1:])


def ne(*args):
    _arity("ne", args, 2)
    return not _eq_pair(args[0], args[1])


def _less(name: str, args) -> bool:
    _arity(name, args, 2)
    a, b = args
    ka, kb = basic_kind(a), basic_kind(b)
    if not ka or not kb:
        raise FuncError(BAD_COMPARISON_TYPE)
    if ka != kb:
        raise FuncError(BAD_COMPARISON)
    if ka == "bool":
        raise FuncError(BAD_COMPARISON_TYPE)
    if ka == "string":  # Go compares strings bytewise
        return a.encode("utf-8") < b.encode("utf-8")
    return a < b


def lt(*args):
    return _less("lt", args)


def le(*args):
    return _less("le", args) or eq(args[0], args[1])


def gt(*args):
    _arity("gt", args, 2)
    return not le(*args)


def ge(*args):
    return not lt(*args)


# -- collections ---------------------------------------------------------------------------------


def length(*args):
    _arity("len", args, 1)
    v = args[0]
    if isinstance(v, str):
        return len(v.encode("utf-8"))
    if isinstance(v, (list, tuple, dict)):
        return len(v)
    if v is None:
        raise FuncError("len of nil pointer")
    raise FuncError(f"len of type {type_name(v)}")


def _index_int(v, cap: int, what: str = "index") -> int:
    if not is_int(v):
        raise FuncError(f"cannot index slice/array with type {type_name(v)}")
    if v < 0 or v > cap:
        raise FuncError(f"{what} out of range: {v}")
    return v


def index(*args):
    _arity("index", args, 1, at_least=True)
    item = args[0]
    for key in args[1:]:
        if item is None:
            raise FuncError("index of untyped nil")
        if isinstance(item, (list, tuple)):
            i = _index_int(key, len(item) - 1)
            item = item[i]
        elif isinstance(item, str):
            data = item.encode("utf-8")
            item = data[_index_int(key, len(data) - 1)]
        elif isinstance(item, dict):
            if not isinstance(key, str) and not is_int(key):
                raise FuncError(f"value has type {type_name(key)}; should be string")
            item = item.get(key)
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def slice_(*args):
    _arity("slice", args, 1, at_least=True)
    item, idx = args[0], list(args[1:])
    if item is None:
        raise FuncError("slice of untyped nil")
    if len(idx) > 3:
        raise FuncError(f"too many slice indexes: {len(idx)}")
    if isinstance(item, str):
        if len(idx) == 3:
            raise FuncError("cannot 3-index slice a string")
        data = item.encode("utf-8")
        bounds = _slice_bounds(idx, len(data))
        return data[bounds[0] : bounds[1]].decode("utf-8", errors="replace")
    if isinstance(item, (list, tuple)):
        bounds = _slice_bounds(idx, len(item))
        return list(item[bounds[0] : bounds[1]])
    raise FuncError(f"can't slice item of type {type_name(item)}")


def _slice_bounds(idx, size: int):
    values = [0, size, size]
    for n, v in enumerate(idx):
        values[n] = _index_int(v, size)
    if values[0] > values[1]:
        raise FuncError(f"invalid slice index: {values[0]} > {values[1]}")
    if len(idx) == 3 and values[1] > values[2]:
        raise FuncError(f"invalid slice index: {values[1]} > {values[2]}")
    return values


# -- text ----------------------------------------------------------------------------------------


def _joined(args) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(args)


def html(*args):
    text = _joined(args)
    return (
        text.replace("&", "&amp;")
        .replace("'", "&#39;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("\0", "\ufffd")
    )


_JS = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "<": "\\u003C",
    ">": "\\u003E",
    "&": "\\u0026",
    "=": "\\u003D",
}


def js(*args):
    out = []
    for ch in _joined(args):
        if ch in _JS:
            out.append(_JS[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04X}")
        elif ord(ch) >= 0x80 and not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def urlquery(*args):
    return quote_plus(_joined(args), safe="")


def printf(*args):
    _arity("printf", args, 1, at_least=True)
    if not isinstance(args[0], str):
        raise ArityError(f"wrong type for value; expected string; got {type_name(args[0])}")
    return sprintf(args[0], args[1:])


def not_(*args):
    _arity("not", args, 1)
    return not truth(args[0])


def call(*args):
    _arity("call", args, 1, at_least=True)
    raise FuncError(f"non-function of type {type_name(args[0])}")


# -- Ollama's additions --------------------------------------------------------------------------


def json_(*args):
    _arity("json", args, 1)
    try:
        return to_json(args[0])
    except ValueError:
        return ""  # Go ignores the marshal error and prints an empty string


def _date_args(name, args):
    for a in args:
        if not isinstance(a, str):
            raise ArityError(f"wrong type for value; expected string; got {type_name(a)}")


def current_date(*args):
    _date_args("currentDate", args)  # the format argument is accepted and ignored, as in Ollama
    return datetime.date.today().isoformat()


def yesterday_date(*args):
    _date_args("yesterdayDate", args)
    return (datetime.date.today() - datetime.timedelta(days=1)).isoformat()


_TS_TYPES = {
    "string": "string",
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
    "array": "any[]",
    "object": "Record<string, any>",
    "null": "null",
}


def typescript_type(prop) -> str:
    """A tool property's type as TypeScript: anyOf and type lists become unions."""
    if isinstance(prop, Struct) and prop.type_name == "api.ToolProperty":
        any_of = prop.fields.get("AnyOf") or []
        if any_of:
            return " | ".join(typescript_type(p) for p in any_of)
        types = list(prop.fields.get("Type") or [])
    elif isinstance(prop, dict):  # a plain JSON schema fragment
        if prop.get("anyOf"):
            return " | ".join(typescript_type(p) for p in prop["anyOf"])
        t = prop.get("type")
        types = [t] if isinstance(t, str) else list(t or [])
    else:
        return "any"
    if not types:
        return "any"
    return " | ".join(_TS_TYPES.get(t, "any") for t in types)


def to_typescript_type(*args):
    _arity("toTypeScriptType", args, 1)
    return typescript_type(args[0])


# The template functions by name; None for "and" and "or", which the executor evaluates itself
# (lazily, stopping at the first argument that decides the result).
FUNCTIONS: dict[str, Callable[..., object] | None] = {
    "and": None,
    "or": None,  # evaluated lazily by the executor
    "not": not_,
    "len": length,
    "index": index,
    "slice": slice_,
    "eq": eq,
    "ne": ne,
    "lt": lt,
    "le": le,
    "gt": gt,
    "ge": ge,
    "print": lambda *a: sprint(a),
    "printf": printf,
    "println": lambda *a: sprintln(a),
    "html": html,
    "js": js,
    "urlquery": urlquery,
    "call": call,
    "json": json_,
    "currentDate": current_date,
    "yesterdayDate": yesterday_date,
    "toTypeScriptType": to_typescript_type,
}
