"""Reading Gemma 4's call notation (``call:name{key:<|"|>text<|"|>,n:1}``) into a call, and the
repairs Ollama tries when the model leaves a string or the object open, quotes a value with
``'``, or writes a string argument raw."""

from __future__ import annotations

import re

from ollamakit.lib.templates import to_json

from .common import (
    function_of,
    go_json,
    is_go_space,
    lstrip_go,
    properties_of,
    property_types,
    rstrip_go,
    strip_go,
)

Q = '<|"|>'  # Gemma 4's string delimiter

QUOTED = re.compile(re.escape(Q) + "(.*?)" + re.escape(Q), re.S)


def skip_space(text: str, at: int) -> int:
    while at < len(text) and is_go_space(text[at]):
        at += 1
    return at


def word_end(text: str, at: int) -> int:
    """Where a bare key (letters, digits, underscores) that starts at ``at`` ends."""
    while at < len(text) and (text[at] == "_" or text[at].isalpha() or text[at].isdecimal()):
        at += 1
    return at


def json_string_end(text: str, start: int) -> int:
    """Just past the JSON string that opens at ``start``; -1 when it does not close."""
    escaped = False
    for at in range(start + 1, len(text)):
        if text[at] == '"' and not escaped:
            return at + 1
        escaped = text[at] == "\\" and not escaped
    return -1


def args_to_json(text: str) -> str:
    """Gemma 4's argument notation as JSON: ``<|"|>`` strings as JSON strings, bare keys
    quoted; JSON strings already in it are kept."""
    strings: list[str] = []

    def stash(match) -> str:
        strings.append(match.group(1))
        return "\x00" + chr(len(strings) - 1) + "\x00"

    text = quote_keys(QUOTED.sub(stash, text))
    for n, value in enumerate(strings):
        text = text.replace("\x00" + chr(n) + "\x00", to_json(value))
    return text


def quote_keys(text: str) -> str:
    out, at = [], 0
    while at < len(text):
        if text[at] == '"':
            end = json_string_end(text, at)
            if end >= 0:
                out.append(text[at:end])
                at = end
                continue
        out.append(text[at])
        at += 1
        if text[at - 1] not in "{,":
            continue
        start, at = at, skip_space(text, at)
        out.append(text[start:at])
        end = word_end(text, at)
        if at < end < len(text) and text[end] == ":":
            out.append('"' + text[at:end] + '":')
            at = end + 1
    return "".join(out)


def decode_arguments(text: str) -> dict | None:
    """encoding/json's reading of a call's arguments: an object, or None."""
    try:
        value = go_json(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_call(text: str, tools) -> dict | None:
    """``call:NAME{args}`` as ``{"name", "arguments"}``; None when it cannot be read, even
    after the repairs."""
    if not text.startswith("call:"):
        return None
    text = text[len("call:") :]
    brace = text.find("{")
    if brace < 0:
        return None
    name, raw = strip_go(text[:brace]), text[brace:]
    arguments = decode_arguments(args_to_json(raw))
    for candidate in () if arguments is not None else repair_candidates(raw, name, tools):
        arguments = decode_arguments(args_to_json(candidate))
        if arguments is not None:
            break
    return None if arguments is None else {"name": name, "arguments": arguments}


# -- repairs of calls that do not parse --------------------------------------------------------


def repair_candidates(raw: str, name: str, tools) -> list[str]:
    """The few repaired forms of ``raw`` worth a try, in order, each once: quotes and a missing
    delimiter fixed (and then a missing close); a raw string value of a string argument
    delimited, where the tool's schema says it is one."""
    candidates: list[str] = []

    def add(candidate: str, may_close: bool) -> None:
        original = candidate
        candidate = repair_delimiter(repair_single_quotes(candidate))
        if may_close or candidate != original:
            candidate = repair_object_close(candidate)
        if candidate not in candidates:
            candidates.append(candidate)

    add(raw, False)
    delimited = repair_raw_string(raw, name, tools)
    if delimited is not None:
        add(delimited, True)
    return candidates


def repair_delimiter(text: str) -> str:
    """Close an unclosed ``<|"|>`` string: before a final ``}`` or ``]``, else at the end."""
    if text.count(Q) % 2 == 0:
        return text
    at = len(rstrip_go(text))
    if at and text[at - 1] in "}]":
        at -= 1
    return text[:at] + Q + text[at:]


def repair_object_close(text: str) -> str:
    """Close an object the model left open (before any trailing space)."""
    if not lstrip_go(text).startswith("{"):
        return text
    end = len(rstrip_go(text))
    if end and text[end - 1] == "}":
        return text
    return text[:end] + "}" + text[end:]


def repair_single_quotes(text: str) -> str:
    """``key:'value'`` as ``key:<|"|>value<|"|>`` (and a stray ``<|"|>`` right after the
    closing quote dropped)."""
    out, at = [], 0
    while at < len(text):
        if text.startswith(Q, at):
            end = text.find(Q, at + len(Q))
            if end < 0:
                out.append(text[at:])
                break
            out.append(text[at : end + len(Q)])
            at = end + len(Q)
            continue
        if text[at] == '"':
            end = json_string_end(text, at)
            if end >= 0:
                out.append(text[at:end])
                at = end
                continue
        out.append(text[at])
        at += 1
        if text[at - 1] != ":":
            continue
        start, at = at, skip_space(text, at)
        out.append(text[start:at])
        if at >= len(text) or text[at] != "'":
            continue
        quoted = single_quoted(text, at)
        if quoted is None:
            continue
        value, at = quoted
        out.append(Q + value + Q)
        if text.startswith(Q, at):
            at += len(Q)
    return "".join(out)


def single_quoted(text: str, start: int) -> tuple[str, int] | None:
    """The text of the ``'...'`` that opens at ``start`` and where it ends."""
    escaped = False
    for at in range(start + 1, len(text)):
        if text[at] == "'" and not escaped:
            return text[start + 1 : at], at + 1
        escaped = text[at] == "\\" and not escaped
    return None


def repair_raw_string(raw: str, name: str, tools) -> str | None:
    """The first string argument (by the tool's schema) whose value is raw text, delimited;
    None when there is none."""
    tool = next((t for t in tools or () if function_of(t).get("name") == name), None)
    props = properties_of(tool) if tool is not None else {}
    for key, prop in props.items():
        if accepts_string(prop):
            repaired = delimit_raw_value(raw, key, props)
            if repaired is not None:
                return repaired
    return None


def accepts_string(prop) -> bool:
    if any(t.lower() == "string" for t in property_types(prop)):
        return True
    branches = prop.get("anyOf") if isinstance(prop, dict) else None
    return any(accepts_string(b) for b in branches or () if isinstance(b, dict))


def delimit_raw_value(text: str, key: str, props: dict) -> str | None:
    search = 0
    while search < len(text):
        start = value_start(text, key, search)
        if start is None:
            return None
        if starts_structured(text, skip_space(text, start)):
            search = start
            continue
        end = raw_value_end(text, start, props)
        return text[:start] + Q + text[start:end] + Q + text[end:]
    return None


def value_start(text: str, key: str, at: int) -> int | None:
    """Just past the ``:`` of ``key``'s first occurrence from ``at``, outside strings."""
    while at < len(text):
        if text.startswith(Q, at):
            end = text.find(Q, at + len(Q))
            if end < 0:
                return None
            at = end + len(Q)
            continue
        if text[at] == '"':
            end = json_string_end(text, at)
            if end >= 0:
                at = end
                continue
        if text[at] in "{,":
            key_start = skip_space(text, at + 1)
            if text.startswith(key, key_start):
                colon = skip_space(text, key_start + len(key))
                if colon < len(text) and text[colon] == ":":
                    return colon + 1
        at += 1
    return None


def raw_value_end(text: str, start: int, props: dict) -> int:
    """Where a raw value ends: at the comma before another declared argument's key, else
    before a final ``}``, else at the end."""
    for at in range(start, len(text)):
        if text[at] != ",":
            continue
        key_start = skip_space(text, at + 1)
        key_end = word_end(text, key_start)
        if key_end == key_start:
            continue
        colon = skip_space(text, key_end)
        if colon < len(text) and text[colon] == ":" and text[key_start:key_end] in props:
            return at
    end = len(rstrip_go(text))
    return end - 1 if end > start and text[end - 1] == "}" else len(text)


def starts_structured(text: str, at: int) -> bool:
    if at >= len(text):
        return False
    return text.startswith(Q, at) or text[at] in "'\"{[-0123456789tfn"
