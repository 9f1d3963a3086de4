"""Splits Go text/template source into tokens, applying trim markers and dropping comments.

Token kinds: text, left, right (delimiters), space, field (".Name"), variable ("$x"), ident,
keyword, string, number, bool, nil, dot, pipe ("|"), lparen, rparen, declare (":="),
assign ("="), comma, eof.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

SPACE = " \t\r\n"
KEYWORDS = {
    "if",
    "else",
    "end",
    "range",
    "with",
    "define",
    "template",
    "block",
    "break",
    "continue",
}
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


class TemplateSyntaxError(Exception):
    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.detail, self.line = message, line

    def __str__(self) -> str:
        return f"template: :{self.line}: {self.detail}"


@dataclass
class Token:
    kind: str
    value: object
    pos: int
    text: str = ""

    @property
    def string(self) -> str:
        """The value of a token that carries text: text, string, variable, field, ident, keyword."""
        if not isinstance(self.value, str):
            raise TypeError(f"a {self.kind} token carries no text")
        return self.value


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalnum()


class Lexer:
    def __init__(self, source: str):
        self.src = source
        self.tokens: list[Token] = []

    def line_of(self, pos: int) -> int:
        return self.src.count("\n", 0, pos) + 1

    def fail(self, message: str, pos: int) -> NoReturn:
        raise TemplateSyntaxError(message, self.line_of(pos))

    def run(self) -> list[Token]:
        src, pos, n = self.src, 0, len(self.src)
        trim_next_text = False
        while pos < n:
            start = src.find("{{", pos)
            text_end = n if start < 0 else start
            text = src[pos:text_end]
            trim_left = (
                start >= 0
                and src.startswith("-", start + 2)
                and start + 3 < n
                and src[start + 3] in SPACE
            )
            if trim_next_text:
                text = text.lstrip(SPACE)
            if trim_left:
                text = text.rstrip(SPACE)
            if text:
                self.tokens.append(Token("text", text, pos))
            if start < 0:
                break
            pos = start + 2 + (2 if trim_left else 0)
            pos, trim_next_text = self._action(start, pos)
        self.tokens.append(Token("eof", None, n))
        return self.tokens

    # -- one action -------------------------------------------------------------------------

    def _at_right(self, pos: int) -> tuple[bool, bool]:
        src = self.src
        if (
            pos + 1 < len(src)
            and src[pos] in SPACE
            and src[pos + 1] == "-"
            and src.startswith("}}", pos + 2)
        ):
            return True, True
        return src.startswith("}}", pos), False

    def _action(self, start: int, pos: int) -> tuple[int, bool]:
        src = self.src
        if src.startswith("/*", pos):
            close = src.find("*/", pos + 2)
            if close < 0:
                self.fail("unclosed comment", start)
            at, trim = self._at_right(close + 2)
            if not at:
                self.fail("comment ends before closing delimiter", start)
            return close + 2 + (4 if trim else 2), trim
        self.tokens.append(Token("left", None, start))
        depth = 0
        while True:
            at, trim = self._at_right(pos)
            if at and depth > 0:
                self.fail("unclosed left paren", pos)
            if at:
                self.tokens.append(Token("right", None, pos))
                return pos + (4 if trim else 2), trim
            if pos >= len(src):
                self.fail("unclosed action", start)
            ch = src[pos]
            if ch in SPACE:
                end = pos + 1
                # A run of spaces stops before the space that begins " -}}".
                while end < len(src) and src[end] in SPACE and not self._at_right(end)[0]:
                    end += 1
                self.tokens.append(Token("space", None, pos))
                pos = end
            elif ch == "(":
                depth += 1
                self.tokens.append(Token("lparen", None, pos))
                pos += 1
            elif ch == ")":
                depth -= 1
                if depth < 0:
                    self.fail("unexpected right paren", pos)
                self.tokens.append(Token("rparen", None, pos))
                pos += 1
            elif ch == "|":
                self.tokens.append(Token("pipe", None, pos))
                pos += 1
            elif ch == ",":
                self.tokens.append(Token("comma", None, pos))
                pos += 1
            elif src.startswith(":=", pos):
                self.tokens.append(Token("declare", None, pos))
                pos += 2
            elif ch == "=":
                self.tokens.append(Token("assign", None, pos))
                pos += 1
            elif ch == '"':
                pos = self._quoted(pos)
            elif ch == "`":
                close = src.find("`", pos + 1)
                if close < 0:
                    self.fail("unterminated raw quoted string", pos)
                self.tokens.append(Token("string", src[pos + 1 : close], pos, src[pos : close + 1]))
                pos = close + 1
            elif ch == "'":
                pos = self._char(pos)
            elif ch == "$":
                end = pos + 1
                while end < len(src) and _is_alnum(src[end]):
                    end += 1
                self.tokens.append(Token("variable", src[pos:end], pos, src[pos:end]))
                pos = end
            elif ch == "." and pos + 1 < len(src) and src[pos + 1].isdigit():
                pos = self._number(pos)
            elif ch == ".":
                end = pos + 1
                while end < len(src) and _is_alnum(src[end]):
                    end += 1
                if end == pos + 1:
                    self.tokens.append(Token("dot", None, pos, "."))
                else:
                    self.tokens.append(Token("field", src[pos + 1 : end], pos, src[pos:end]))
                pos = end
            elif ch.isdigit() or (
                ch in "+-"
                and pos + 1 < len(src)
                and (src[pos + 1].isdigit() or src[pos + 1] == ".")
            ):
                pos = self._number(pos)
            elif _is_alnum(ch):
                end = pos
                while end < len(src) and _is_alnum(src[end]):
                    end += 1
                word = src[pos:end]
                if word in KEYWORDS:
                    self.tokens.append(Token("keyword", word, pos, word))
                elif word in ("true", "false"):
                    self.tokens.append(Token("bool", word == "true", pos, word))
                elif word == "nil":
                    self.tokens.append(Token("nil", None, pos, word))
                else:
                    self.tokens.append(Token("ident", word, pos, word))
                pos = end
            else:
                self.fail(f'unexpected "{ch}" in command', pos)

    # -- literals -----------------------------------------------------------------------------

    def _quoted(self, pos: int) -> int:
        src, i, out = self.src, pos + 1, []
        while True:
            if i >= len(src) or src[i] == "\n":
                self.fail("unterminated quoted string", pos)
            ch = src[i]
            if ch == '"':
                break
            if ch == "\\":
                value, i = self._escape(i, '"')
                out.append(value)
                continue
            out.append(ch)
            i += 1
        self.tokens.append(Token("string", "".join(out), pos, src[pos : i + 1]))
        return i + 1

    def _escape(self, i: int, quote: str) -> tuple[str, int]:
        src = self.src
        if i + 1 >= len(src):
            self.fail("unterminated quoted string", i)
        ch = src[i + 1]
        if ch in _ESCAPES:
            return _ESCAPES[ch], i + 2
        if ch == quote:
            return quote, i + 2
        widths = {"x": 2, "u": 4, "U": 8}
        if ch in widths:
            digits = src[i + 2 : i + 2 + widths[ch]]
            if len(digits) != widths[ch] or any(c not in "0123456789abcdefABCDEF" for c in digits):
                self.fail("invalid syntax in escape sequence", i)
            code = int(digits, 16)
            if ch != "x" and (code > 0x10FFFF or 0xD800 <= code <= 0xDFFF):
                self.fail("invalid syntax in escape sequence", i)
            return chr(code), i + 2 + widths[ch]
        if ch in "01234567":
            digits = src[i + 1 : i + 4]
            if len(digits) != 3 or any(c not in "01234567" for c in digits) or int(digits, 8) > 255:
                self.fail("invalid syntax in escape sequence", i)
            return chr(int(digits, 8)), i + 4
        self.fail("invalid syntax in escape sequence", i)

    def _char(self, pos: int) -> int:
        src = self.src
        if pos + 1 >= len(src):
            self.fail("unterminated character constant", pos)
        if src[pos + 1] == "\\":
            value, i = self._escape(pos + 1, "'")
        else:
            value, i = src[pos + 1], pos + 2
        if i >= len(src) or src[i] != "'" or len(value) != 1:
            self.fail("unterminated character constant", pos)
        self.tokens.append(Token("number", ord(value), pos, src[pos : i + 1]))
        return i + 1

    def _number(self, pos: int) -> int:
        src, end = self.src, pos
        if src[end] in "+-":
            end += 1
        digits, exponent = "0123456789_", "eE"
        prefix = src[end : end + 2].lower()
        if prefix == "0x":
            digits, exponent = "0123456789abcdefABCDEF_", "pP"
        elif prefix in ("0o", "0b"):
            digits, exponent = ("01234567_" if prefix == "0o" else "01_"), ""
        if prefix in ("0x", "0o", "0b"):
            end += 2

        def scan(i: int, allowed: str) -> int:
            while i < len(src) and src[i] in allowed:
                i += 1
            return i

        end = scan(end, digits)
        if end < len(src) and src[end] == ".":
            end = scan(end + 1, digits)
        if exponent and end < len(src) and src[end] in exponent:
            end += 1
            if end < len(src) and src[end] in "+-":
                end += 1
            end = scan(end, "0123456789_")
        if end < len(src) and _is_alnum(src[end]):
            self.fail(f'bad number syntax: "{src[pos : end + 1]}"', pos)
        text = src[pos:end]
        value = parse_number(text)
        if value is None:
            self.fail(f'bad number syntax: "{text}"', pos)
        self.tokens.append(Token("number", value, pos, text))
        return end


def parse_number(text: str):
    """Go's rule for template constants: text with '.', 'e' or 'p' (outside hex) is a float64,
    everything else an int. Underscores between digits are allowed, as in Go source."""
    body = text.replace("_", "")
    if "__" in text or text.endswith("_"):
        return None
    sign = -1 if body.startswith("-") else 1
    digits = body.lstrip("+-")
    lower = digits.lower()
    try:
        if lower.startswith("0x"):
            if "p" in lower or "." in lower:
                return sign * float.fromhex(digits)
            return sign * int(lower[2:], 16)
        if lower.startswith("0o"):
            return sign * int(lower[2:], 8)
        if lower.startswith("0b"):
            return sign * int(lower[2:], 2)
        if any(c in lower for c in ".e"):
            return sign * float(digits)
        if len(lower) > 1 and lower.startswith("0"):
            return sign * int(lower[1:], 8)
        return sign * int(lower, 10)
    except ValueError:
        return None
