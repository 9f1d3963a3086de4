"""Go's fmt for template values: Sprint, Sprintln and Sprintf with the common verbs
(%v %s %q %d %f %F %e %E %g %G %t %x %X %o %O %b %c %U %T %%), flags, width and precision,
including Go's inline complaints such as ``%!d(string=hi)`` and ``%!s(MISSING)``."""

from __future__ import annotations

import math

from .values import Stringer, Struct, format_float_g, format_v, is_int, shortest_digits, type_name


def sprint(args) -> str:
    out, prev_string = [], False
    for n, arg in enumerate(args):
        is_string = isinstance(arg, str)
        # Sprint puts a space between operands when neither side is a string.
        if n > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(format_v(arg))
        prev_string = is_string
    return "".join(out)


def sprintln(args) -> str:
    return " ".join(format_v(a) for a in args) + "\n"


def go_quote(s: str) -> str:
    """strconv.Quote: printable characters stay, the rest become Go escapes."""
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append(
                {
                    "\a": "\\a",
                    "\b": "\\b",
                    "\f": "\\f",
                    "\n": "\\n",
                    "\r": "\\r",
                    "\t": "\\t",
                    "\v": "\\v",
                }[ch]
            )
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _quote_rune(code: int) -> str:
    if code == ord("'"):
        return "'\\''"
    if code == ord('"'):
        return "'\"'"
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        code = 0xFFFD
    return "'" + go_quote(chr(code))[1:-1] + "'"


class _Spec:
    __slots__ = ("minus", "plus", "sharp", "space", "zero", "width", "prec", "verb")

    def __init__(self):
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.width = self.prec = None
        self.verb = ""


def sprintf(fmt: str, args) -> str:
    out, argn, i, n = [], 0, 0, len(fmt)
    while i < n:
        ch = fmt[i]
        if ch != "%":
            j = fmt.find("%", i)
            j = n if j < 0 else j
            out.append(fmt[i:j])
            i = j
            continue
        i += 1
        spec = _Spec()
        while i < n and fmt[i] in "+-# 0":
            flag = fmt[i]
            if flag == "+":
                spec.plus = True
            elif flag == "-":
                spec.minus, spec.zero = True, False
            elif flag == "#":
                spec.sharp = True
            elif flag == " ":
                spec.space = True
            elif not spec.minus:
                spec.zero = True
            i += 1
        if i < n and fmt[i] == "*":
            i += 1
            if argn < len(args) and is_int(args[argn]):
                spec.width = args[argn]
                if spec.width < 0:
                    spec.minus, spec.zero, spec.width = True, False, -spec.width
            else:
                out.append("%!(BADWIDTH)")
            argn += 1
        else:
            start = i
            while i < n and fmt[i].isdigit():
                i += 1
            if i > start:
                spec.width = int(fmt[start:i])
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                if argn < len(args) and is_int(args[argn]) and args[argn] >= 0:
                    spec.prec = args[argn]
                else:
                    out.append("%!(BADPREC)")
                argn += 1
            else:
                start = i
                while i < n and fmt[i].isdigit():
                    i += 1
                spec.prec = int(fmt[start:i] or 0)
        if i >= n:
            out.append("%!(NOVERB)")
            break
        spec.verb = fmt[i]
        i += 1
        if spec.verb == "%":
            out.append("%")
            continue
        if argn >= len(args):
            out.append(f"%!{spec.verb}(MISSING)")
            continue
        out.append(format_one(spec, args[argn]))
        argn += 1
    if argn < len(args):
        extra = ", ".join(
            f"{type_name(a)}={format_v(a)}" if a is not None else "<nil>" for a in args[argn:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _bad(spec: _Spec, arg) -> str:
    if arg is None:
        return f"%!{spec.verb}(<nil>)"
    return f"%!{spec.verb}({type_name(arg)}={format_v(arg)})"


def _pad(spec: _Spec, text: str, numeric: bool = False) -> str:
    width = spec.width or 0
    if len(text) >= width:
        return text
    fill = width - len(text)
    if spec.minus:
        return text + " " * fill
    if spec.zero and numeric:
        sign = text[0] if text[:1] in "+- " else ""
        body = text[len(sign) :]
        prefix = ""
        if body[:2].lower() in ("0x", "0b", "0o"):
            prefix, body = body[:2], body[2:]
        return sign + prefix + "0" * fill + body
    return " " * fill + text


def _sign(spec: _Spec, negative: bool) -> str:
    if negative:
        return "-"
    return "+" if spec.plus else (" " if spec.space else "")


def _format_int(spec: _Spec, v: int) -> str:
    verb, neg, a = spec.verb, v < 0, abs(v)
    if verb in "dv":
        body = str(a)
    elif verb == "x":
        body = ("0x" if spec.sharp else "") + format(a, "x")
    elif verb == "X":
        body = ("0X" if spec.sharp else "") + format(a, "X")
    elif verb == "o":
        body = ("0" if spec.sharp else "") + format(a, "o")
    elif verb == "O":
        body = "0o" + format(a, "o")
    elif verb == "b":
        body = format(a, "b")
    elif verb == "c":
        return _pad(spec, chr(v) if 0 <= v <= 0x10FFFF and not 0xD800 <= v <= 0xDFFF else "\ufffd")
    elif verb == "q":
        return _pad(spec, _quote_rune(v))
    elif verb == "U":
        return _pad(spec, f"U+{v:04X}")
    elif verb in "eEfFgG":
        return _bad(spec, v)
    else:
        return _bad(spec, v)
    if spec.prec is not None and len(body) < spec.prec:
        body = "0" * (spec.prec - len(body)) + body
    text = _sign(spec, neg) + body
    return _pad(spec, text, numeric=spec.prec is None)


def _format_float(spec: _Spec, v: float) -> str:
    verb = spec.verb
    if math.isinf(v) or math.isnan(v):
        # Go always signs infinities and never zero-pads these words.
        text = (
            ("+" if spec.plus else "") + "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")
        )
        return _pad(spec, text)
    neg = math.copysign(1, v) < 0
    a = abs(v)
    if verb == "v" or (verb in "gG" and spec.prec is None):
        body = format_float_g(a)
        if verb == "G":
            body = body.upper()
    elif verb in "fF":
        body = format(a, f".{6 if spec.prec is None else spec.prec}f")
    elif verb in "eE":
        body = format(a, f".{6 if spec.prec is None else spec.prec}{verb}")
    elif verb in "gG":
        body = _format_g_prec(a, spec.prec or 1, verb)
    elif verb in "xX":
        return _bad(spec, v)
    else:
        return _bad(spec, v)
    return _pad(spec, _sign(spec, neg) + body, numeric=True)


def _format_g_prec(a: float, prec: int, verb: str) -> str:
    # %.Ng: N significant digits; exponent form when exp < -4 or exp >= N; no trailing zeros.
    if a == 0:
        return "0"
    text = format(a, f".{prec - 1}e")
    mantissa, _, exp = text.partition("e")
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    exponent = int(exp)
    if exponent < -4 or exponent >= prec:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        out = f"{mant}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    else:
        dp = exponent + 1
        if dp <= 0:
            out = "0." + "0" * (-dp) + digits
        elif dp >= len(digits):
            out = digits + "0" * (dp - len(digits))
        else:
            out = digits[:dp] + "." + digits[dp:]
    return out.upper() if verb == "G" else out


def _format_string(spec: _Spec, s: str) -> str:
    verb = spec.verb
    if spec.prec is not None and verb in "sqv":
        s = s[: spec.prec]
    if verb in "sv":
        return _pad(spec, s)
    if verb == "q":
        return _pad(
            spec, "`" + s + "`" if spec.sharp and "`" not in s and s.isprintable() else go_quote(s)
        )
    if verb in "xX":
        data = s.encode("utf-8")
        sep = " " if spec.space else ""
        parts = [
            ("0x" if spec.sharp else "") + format(b, "02" + ("x" if verb == "x" else "X"))
            for b in data
        ]
        text = (
            sep.join(parts)
            if spec.space
            else ("0x" if spec.sharp and parts else "")
            + "".join(format(b, "02" + verb) for b in data)
        )
        return _pad(spec, text)
    return _bad(spec, s)


def format_one(spec: _Spec, arg) -> str:
    verb = spec.verb
    if verb == "T":
        return _pad(spec, type_name(arg))
    if arg is None:
        return _pad(spec, "<nil>") if verb == "v" else _bad(spec, arg)
    if isinstance(arg, Stringer) and verb in "vsq":
        return _format_string(spec, arg.go_string())
    if isinstance(arg, bool):
        if verb in "tv":
            return _pad(spec, "true" if arg else "false")
        return _bad(spec, arg)
    if is_int(arg):
        return _format_int(spec, arg)
    if isinstance(arg, float):
        return _format_float(spec, arg)
    if isinstance(arg, str):
        return _format_string(spec, arg)
    if isinstance(arg, (list, tuple)):
        inner = " ".join(_element(spec, x) for x in arg)
        return _pad(spec, "[" + inner + "]") if verb in "vsdqxXfFeEgGtbocU" else _bad(spec, arg)
    if isinstance(arg, dict):
        items = sorted(arg.items(), key=lambda kv: str(kv[0]))
        inner = " ".join(f"{_element(spec, k)}:{_element(spec, x)}" for k, x in items)
        return _pad(spec, "map[" + inner + "]")
    if isinstance(arg, Struct):
        if verb in "v":
            return _pad(spec, format_v(arg))
        inner = " ".join(_element(spec, x) for x in arg.fields.values())
        return _pad(spec, ("&" if arg.pointer else "") + "{" + inner + "}")
    return _pad(spec, format_v(arg)) if verb in "vs" else _bad(spec, arg)


def _element(spec: _Spec, value) -> str:
    inner = _Spec()
    inner.verb, inner.plus, inner.sharp, inner.space, inner.prec = (
        spec.verb,
        spec.plus,
        spec.sharp,
        spec.space,
        spec.prec,
    )
    return format_one(inner, value)


__all__ = ["sprint", "sprintln", "sprintf", "go_quote", "shortest_digits"]
