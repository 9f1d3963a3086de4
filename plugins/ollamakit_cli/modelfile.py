'''The Modelfile: parsing, typed parameters, and rendering back to text.

The grammar is Ollama's (spec section 5.1): one ``INSTRUCTION value`` per line, instructions in
any case, ``#`` comments, values running to the end of the line or quoted with ``"..."`` or
``"""..."""``. A quoted value ends at the first line end where the text so far closes the quote,
so both quote forms may span lines. Turning the parsed file into an ``/api/create`` request
(hashing the files it names) lives in ``files.py``.
'''

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

KEYWORDS = (
    "from", "license", "template", "system", "adapter", "draft",
    "renderer", "parser", "parameter", "message", "requires",
)  # fmt: skip
MESSAGE_ROLES = ("system", "user", "assistant")

INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "draft", '
    '"renderer", "parser", "parameter", "message", or "requires"'
)
INVALID_ROLE = 'message role must be one of "system", "user", or "assistant"'
MISSING_FROM = "no FROM line"
INVALID_REQUIRES = "requires must be a valid semver (e.g. 0.14.0)"

# Runtime options a PARAMETER may set, with the type its text is parsed as (spec section 4).
PARAMETER_TYPES: dict[str, type] = {
    "num_ctx": int, "num_batch": int, "num_gpu": int, "main_gpu": int, "use_mmap": bool,
    "num_thread": int, "draft_num_predict": int, "num_keep": int, "seed": int,
    "num_predict": int, "top_k": int, "top_p": float, "min_p": float, "typical_p": float,
    "repeat_last_n": int, "temperature": float, "repeat_penalty": float,
    "presence_penalty": float, "frequency_penalty": float, "stop": list,
}  # fmt: skip
# Options Ollama removed: a Modelfile naming them still parses, with a warning.
DEPRECATED_PARAMETERS = (
    "penalize_newline", "low_vram", "f16_kv", "logits_all", "vocab_only",
    "use_mlock", "mirostat", "mirostat_tau", "mirostat_eta",
)  # fmt: skip

MAX_MODELFILE_BYTES = 16 * 1024 * 1024  # a Modelfile is text; anything bigger is a mistake

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE, _FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")
_SEMVER = re.compile(
    r"v(0|[1-9]\d*)"
    r"(?:\.(0|[1-9]\d*)(?:\.(0|[1-9]\d*)"
    r"(?:-(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)?)?"
)


class ModelfileError(ValueError):
    """A Modelfile that cannot be used; ``line`` is where the trouble starts (0: whole file)."""

    def __init__(self, message: str, line: int = 0):
        super().__init__(message)
        self.message, self.line = message, line

    def __str__(self) -> str:
        return f"(line {self.line}): {self.message}" if self.line else self.message


@dataclass(frozen=True)
class Instruction:
    keyword: str  # lower case, one of KEYWORDS
    value: str
    name: str = ""  # the PARAMETER name or the MESSAGE role
    line: int = 0

    def __str__(self) -> str:
        if self.keyword == "from":
            return f"FROM {self.value}"
        if self.keyword == "parameter":
            return f"PARAMETER {self.name} {quote(self.value)}"
        if self.keyword == "message":
            return f"MESSAGE {self.name} {quote(self.value)}"
        return f"{self.keyword.upper()} {quote(self.value)}"


@dataclass
class Modelfile:
    instructions: list[Instruction] = field(default_factory=list)

    def __iter__(self) -> Iterator[Instruction]:
        return iter(self.instructions)

    def __str__(self) -> str:
        return "".join(f"{instruction}\n" for instruction in self.instructions)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def quote(value: str) -> str:
    """Quote a value the way ``ollama show`` does: only when a bare value would not survive."""
    if "\n" in value or value.startswith(" ") or value.endswith(" "):
        return f'"""{value}"""' if '"' in value else f'"{value}"'
    return value


# -- parsing --------------------------------------------------------------------------------


class _Scanner:
    """A cursor over the text that knows its line number."""

    def __init__(self, text: str):
        self.text, self.pos, self.line = text, 0, 1

    def peek(self, size: int = 1) -> str:
        return self.text[self.pos : self.pos + size]

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def advance(self, count: int = 1) -> str:
        taken = self.text[self.pos : self.pos + count]
        self.line += taken.count("\n")
        self.pos += len(taken)
        return taken

    def take_while(self, allowed) -> str:
        start = self.pos
        while not self.at_end() and allowed(self.text[self.pos]):
            self.advance()
        return self.text[start : self.pos]

    def rest_of_line(self) -> str:
        end = self.text.find("\n", self.pos)
        end = len(self.text) if end < 0 else end
        return self.advance(end - self.pos)


def _is_blank(char: str) -> bool:
    return char in " \t"


def _is_word(char: str) -> bool:
    return char.isascii() and char.isalpha()


def _is_parameter_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


def parse(text: str | bytes) -> Modelfile:
    """Parse Modelfile text; raises ``ModelfileError`` with Ollama's messages."""
    if isinstance(text, bytes):
        if len(text) > MAX_MODELFILE_BYTES:
            raise ModelfileError(f"Modelfile is larger than {MAX_MODELFILE_BYTES} bytes")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelfileError(f"Modelfile is not UTF-8 text: {exc}") from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    scanner, instructions = _Scanner(text), []
    while True:
        scanner.take_while(lambda c: c in " \t\n")
        if scanner.at_end():
            break
        if scanner.peek() == "#":
            scanner.rest_of_line()
            continue
        instructions.append(_instruction(scanner))
    if not any(i.keyword == "from" for i in instructions):
        raise ModelfileError(MISSING_FROM)
    return Modelfile(instructions)


def _instruction(scanner: _Scanner) -> Instruction:
    line = scanner.line
    word = scanner.take_while(_is_word)
    keyword = word.lower()
    if not word or keyword not in KEYWORDS or not _is_blank(scanner.peek()):
        if keyword in KEYWORDS and scanner.peek() in ("\n", ""):
            raise ModelfileError(f"missing value for {word.upper()}", line)
        raise ModelfileError(INVALID_COMMAND, line)
    scanner.take_while(_is_blank)
    name = ""
    if keyword == "parameter":
        name = scanner.take_while(_is_parameter_char)
        if not name or not _is_blank(scanner.peek()):
            raise ModelfileError("PARAMETER needs a name ([A-Za-z0-9_]) and then a value", line)
    elif keyword == "message":
        name = scanner.take_while(_is_word)
        if name not in MESSAGE_ROLES or not _is_blank(scanner.peek()):
            raise ModelfileError(INVALID_ROLE, line)
    return Instruction(keyword, _value(scanner, line), name, line)


def _value(scanner: _Scanner, line: int) -> str:
    """The value: bare to the end of the line, or quoted, possibly over several lines."""
    scanner.take_while(_is_blank)
    mark = '"""' if scanner.peek(3) == '"""' else '"' if scanner.peek() == '"' else ""
    if not mark:
        return scanner.rest_of_line().strip(" \t")
    # Read whole lines until one ends (ignoring trailing blanks) with the closing mark.
    text = ""
    while True:
        text += scanner.rest_of_line()
        candidate = text.rstrip(" \t")
        if len(candidate) >= 2 * len(mark) and candidate.endswith(mark):
            return candidate[len(mark) : -len(mark)]
        if scanner.at_end():
            raise ModelfileError(f"unterminated {mark} quoted value", line)
        text += scanner.advance()  # the newline belongs to the value


# -- typed values ---------------------------------------------------------------------------


def parameter_value(name: str, text: str):
    """Parse one PARAMETER's text into its JSON type; raises ``ModelfileError``."""
    kind = PARAMETER_TYPES.get(name)
    if kind is None:
        raise ModelfileError(f"unknown parameter '{name}'")
    if kind is int:
        if not _INT.fullmatch(text) or not -(2**63) <= int(text) < 2**63:
            raise ModelfileError(f"invalid int value [{text}]")
        return int(text)
    if kind is float:
        if not _FLOAT.fullmatch(text):
            raise ModelfileError(f"invalid float value [{text}]")
        # Options are 32-bit floats: keep the shortest text that survives the round trip,
        # so 0.7 stays 0.7 and the stored params blob matches Ollama's byte for byte.
        import numpy  # imported here: the CLI starts (and ``--help`` answers) without it

        with numpy.errstate(over="ignore"):
            single = numpy.float32(text)
        if not numpy.isfinite(single):
            raise ModelfileError(f"invalid float value [{text}]")
        return float(str(single))
    if kind is bool:
        if text not in _TRUE + _FALSE:
            raise ModelfileError(f"invalid bool value [{text}]")
        return text in _TRUE
    return [text]  # list: repeated lines accumulate (see ``parameters``)


def parameters(modelfile: Modelfile, warn=None) -> dict:
    """Every PARAMETER as typed JSON values; repeated list options (``stop``) accumulate, a
    repeated scalar keeps the last value. Deprecated names are skipped with ``warn(message)``."""
    params: dict = {}
    for instruction in modelfile.all("parameter"):
        name = instruction.name
        if name in DEPRECATED_PARAMETERS:
            if warn:
                warn(f"warning: parameter {name} is deprecated")
            continue
        try:
            value = parameter_value(name, instruction.value)
        except ModelfileError as exc:
            raise ModelfileError(exc.message, instruction.line) from None
        if isinstance(value, list):
            params[name] = params.get(name, []) + value
        else:
            params[name] = value
    return params


def requires_version(text: str) -> str:
    """A REQUIRES value as bare semver (``v`` optional, ``1`` and ``1.2`` allowed)."""
    candidate = text if text.startswith("v") else "v" + text
    if not _SEMVER.fullmatch(candidate):
        raise ModelfileError(INVALID_REQUIRES)
    return candidate[1:]
