"""Reads the table literals of Go test files into JSON-able values, so that a test table of
Ollama's is carried over as data without retyping it (``python golit.py FILE FUNC [VAR]``).

A keyed composite literal (``api.Message{Role: "user"}``) becomes a dict, an unkeyed one a
list; map literals become dicts; ``f(x)`` wrappers such as ``testArgs(...)`` become ``x``;
identifiers it cannot resolve become ``{"$ref": name}``; a literal of a local (unqualified)
type keeps its name as ``"$type"``."""

from __future__ import annotations

import ast
import copy
import json
import re
import sys

TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<raw>`[^`]*`)
  | (?P<str>"(?:\\.|[^"\\])*")
  | (?P<char>'(?:\\.|[^'\\])+')
  | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>:=|\.\.\.|[{}()\[\],:&+*=;.<>!-])
""",
    re.S | re.X,
)


def tokens(text: str):
    out = []
    for m in TOKEN.finditer(text):
        kind = m.lastgroup
        if kind != "space":
            out.append((kind, m.group()))
    return out


class Reader:
    def __init__(self, toks, env=None, sources: str = ""):
        self.toks, self.i = toks, 0
        self.env = env if env is not None else {}  # local variables assigned before the table
        self.sources = sources  # the package's test files: helpers that return a literal

    def peek(self, k=0):
        return self.toks[self.i + k] if self.i + k < len(self.toks) else (None, None)

    def next(self):
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, value):
        tok = self.next()
        if tok[1] != value:
            raise SyntaxError(
                f"expected {value!r}, got {tok!r} near {self.toks[self.i - 5 : self.i + 5]}"
            )

    def skip_type(self):
        """A type in front of a literal: []T, map[K]V, *T, struct{...}, pkg.T."""
        while True:
            kind, value = self.peek()
            if value == "[":
                self.next()
                if self.peek()[1] != "]":
                    self.next()
                self.expect("]")
            elif value in ("*", "&"):
                self.next()
            elif value == "map":
                self.next()
                self.expect("[")
                self.skip_type()
                self.expect("]")
            elif value in ("struct", "interface"):
                self.next()
                self.skip_braces()
                return
            elif kind == "ident":
                self.next()
                return
            else:
                return

    def skip_braces(self):
        self.expect("{")
        depth = 1
        while depth:
            value = self.next()[1]
            depth += value == "{"
            depth -= value == "}"

    def value(self):
        result = self.term()
        while self.peek()[1] == "+":
            self.next()
            result = result + self.term()
        return result

    def term(self):
        kind, value = self.peek()
        if value == "&":
            self.next()
            return self.term()
        if kind == "raw":
            self.next()
            return value[1:-1].replace("\r", "")
        if kind == "str":
            self.next()
            return ast.literal_eval(value)
        if kind == "num":
            self.next()
            return float(value) if any(c in value for c in ".eE") else int(value)
        if value == "{":
            return self.literal()
        if value in ("[", "map", "struct") or kind == "ident":
            if kind == "ident" and value in ("true", "false", "nil"):
                self.next()
                return {"true": True, "false": False, "nil": None}[value]
            start = self.i
            if kind == "ident" and self.peek(1)[1] == "(":
                return self.indexed(self.call())
            if kind == "ident" and value in self.env and self.peek(1)[1] not in ("{", "."):
                self.next()
                return copy.deepcopy(self.env[value])
            self.skip_type()
            if self.peek()[1] == "{":
                named = self.i == start + 1 and kind == "ident" and "." not in value
                literal = self.literal()
                if value == "map" and literal == []:
                    return {}
                if named:  # a local type (an event kind): keep its name
                    fields = literal if isinstance(literal, dict) else {}
                    return {"$type": value, **fields}
                return literal
            if self.peek()[1] == "(":  # a conversion such as json.RawMessage(...)
                self.next()
                inner = self.value()
                self.expect(")")
                return inner
            self.i = start + 1
            return {"$ref": value}
        raise SyntaxError(f"unexpected {self.peek()} near {self.toks[self.i - 5 : self.i + 5]}")

    def indexed(self, value):
        """``value[N]``, as ``helper()[0]`` picks one of a helper's list."""
        while self.peek()[1] == "[" and self.peek(1)[0] == "num" and self.peek(2)[1] == "]":
            self.next()
            value = value[int(self.next()[1])]
            self.next()
        return value

    def call(self):
        name = self.next()[1]
        self.expect("(")
        args, spread = [], []
        while self.peek()[1] != ")":
            args.append(self.value())
            if self.peek()[1] == "...":  # f(xs...): the list's items as arguments
                self.next()
                spread.append(len(args) - 1)
            if self.peek()[1] == ",":
                self.next()
        self.expect(")")
        if name == "append":
            items = [
                v for n, arg in enumerate(args[1:], 1) for v in (arg if n in spread else [arg])
            ]
            return copy.deepcopy(args[0]) + items
        if (
            not args and self.sources and f"func {name}(" in self.sources
        ):  # a helper returning a literal
            return table(self.sources, name, "return", sources=self.sources)
        if name == "strings.Repeat":
            return args[0] * args[1]
        if name == "len":  # Go's len of a string: its UTF-8 bytes
            return len(args[0].encode())
        if name == "strings.TrimSuffix":
            return (
                args[0][: len(args[0]) - len(args[1])]
                if args[1] and args[0].endswith(args[1])
                else args[0]
            )
        if name == "strings.Replace" and all(isinstance(a, str) for a in args[:3]):
            return args[0].replace(args[1], args[2], args[3] if args[3] >= 0 else -1)
        if name == "strings.TrimPrefix":
            return args[0][len(args[1]) :] if args[0].startswith(args[1]) else args[0]
        return args[0] if len(args) == 1 else {"$call": name, "args": args}

    def literal(self):
        self.expect("{")
        keyed, items = None, []
        while self.peek()[1] != "}":
            if (
                self.peek()[0] == "ident" and self.peek(1)[1] == ":"
            ):  # a field name, never a variable
                key = self.next()[1]
                self.next()
                items.append((key, self.value()))
                keyed = True
                if self.peek()[1] == ",":
                    self.next()
                continue
            first = self.value()
            if self.peek()[1] == ":":
                self.next()
                key = first["$ref"] if isinstance(first, dict) and "$ref" in first else first
                items.append((key, self.value()))
                keyed = True
            else:
                items.append(first)
                keyed = keyed or False
            if self.peek()[1] == ",":
                self.next()
        self.expect("}")
        return dict(items) if keyed else items


LITERAL = r"""(?:"(?:\\.|[^"\\\n])*"|`[^`]*`)"""
CONSTANT = re.compile(
    r"^\s*(?:const\s+|var\s+)?(\w+)\s*=\s*(" + LITERAL + r"(?:\s*\+\s*" + LITERAL + r")*)\s*$", re.M
)


def constants(*texts: str) -> dict:
    """String constants declared in Go sources (``name = "text"`` in const and var blocks, or
    on their own line, the literals maybe joined by ``+``)."""
    found = {}
    for text in texts:
        for name, literals in CONSTANT.findall(text):
            found[name] = "".join(
                part[1:-1] if part.startswith("`") else ast.literal_eval(part)
                for part in re.findall(LITERAL, literals)
            )
    return found


def table(text: str, func: str, var: str = "tests", package: dict | None = None, sources: str = ""):
    """The literal assigned to ``var`` inside ``func``, with the local variables assigned before
    it (``x := literal``, and ``x.Set(key, value)`` on a map) and the string constants of
    ``package`` and of the file resolved. ``var`` ``"return"``: the literal the function returns;
    a call of a helper in ``sources`` (the package's test files) that takes no arguments is the
    literal that helper returns."""
    body = text[text.index(f"func {func}(") :] if func else text  # no function: a package-level var
    toks = tokens(body)
    env: dict = {**constants(text), **(package or {})}
    for n in range(len(toks) - 1):
        kind, value = toks[n]
        if kind != "ident":
            continue
        if var == "return" and value == "return":
            reader = Reader(toks, env, sources)
            reader.i = n + 1
            return reader.value()
        if toks[n + 1][1] == ":=" or (value == var and toks[n + 1][1] == "="):
            reader = Reader(toks, env, sources)
            reader.i = n + 2
            if value == var:
                return reader.value()
            try:
                env[value] = reader.value()
            except (SyntaxError, TypeError, IndexError, ValueError):
                pass  # not a literal: a variable the table does not need
        elif value.endswith(".Set") and value[:-4] in env and toks[n + 1][1] == "(":
            reader = Reader(toks, env, sources)
            reader.i = n + 2
            try:
                key = reader.value()
                reader.expect(",")
                target = env[value[:-4]]
                if (
                    isinstance(target, dict) and "$call" in target
                ):  # api.NewToolCallFunctionArguments()
                    target = env[value[:-4]] = {}
                target[key] = reader.value()
            except (SyntaxError, TypeError, IndexError, ValueError):
                pass
    raise LookupError(f"{var} not found in {func}")


if __name__ == "__main__":
    path, func, *rest = sys.argv[1:]
    print(json.dumps(table(open(path).read(), func, *rest), indent=1, ensure_ascii=False))
