"""Images and audio named in a prompt, for a model that can see or hear: as in ``ollama run``, a
path to a .jpg, .jpeg, .png, .webp or .wav file is read, sent along base64-encoded, and taken out
of the text. A path to no file stays text."""

from __future__ import annotations

import base64
import os
import re

import click

from .formatting import go_quote

# A path starting with /, ./ or \ (or a drive letter), spaces escaped or not, ending in a media
# extension; what is not a file is left alone.
FILE_NAME = re.compile(r"(?:[a-zA-Z]:)?(?:\./|/|\\)[\S\\ ]+?\.(?i:jpg|jpeg|png|webp|wav)\b")
ESCAPES = {"\\" + c: c for c in " ()[]{}$&;'*?~"} | {"\\\\": "\\"}
_ESCAPE = re.compile("|".join(re.escape(e) for e in sorted(ESCAPES, key=len, reverse=True)))
MAX_FILE_BYTES = 100 * 1024 * 1024


def file_names(text: str) -> list[str]:
    return FILE_NAME.findall(text)


def normalize(path: str) -> str:
    """A path as a shell would have it, without the backslashes that escaped its characters."""
    return _ESCAPE.sub(lambda match: ESCAPES[match.group(0)], path)


def media_type(head: bytes) -> str:
    """The file's kind from its first bytes, as Go's ``http.DetectContentType`` names the ones
    allowed."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wave"
    return "application/octet-stream"


def read_media(path: str) -> bytes:
    """The file's bytes; FileNotFoundError if there is none, ValueError if it is not media."""
    with open(path, "rb") as fh:
        kind = media_type(fh.read(512))
        if kind == "application/octet-stream":
            raise ValueError(f"invalid file type: {kind}")
        if os.fstat(fh.fileno()).st_size > MAX_FILE_BYTES:
            raise ValueError("file size exceeds maximum limit (100MB)")
        fh.seek(0)
        return fh.read(MAX_FILE_BYTES + 1)


def extract(text: str) -> tuple[str, list[str]]:
    """The prompt without its media paths, and the media as base64 (what the API takes)."""
    media = []
    for found in file_names(text):
        path = normalize(found)
        try:
            data = read_media(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            continue
        except (OSError, ValueError) as exc:
            click.echo(f"Couldn't process file: {go_quote(str(exc))}", err=True)
            raise click.ClickException(str(exc)) from None
        kind = "audio" if path.lower().endswith(".wav") else "image"
        click.echo(f"Added {kind} '{path}'", err=True)
        for form in (f"'{path}'", f"'{found}'", found):
            text = text.replace(form, "")
        media.append(base64.b64encode(data).decode("ascii"))
    return text.strip(), media


def multimodal(info: dict) -> bool:
    """Whether the model takes images or audio (its capabilities, or, from older servers, a
    projector or vision metadata)."""
    capabilities = info.get("capabilities") if isinstance(info.get("capabilities"), list) else []
    if "vision" in capabilities or "audio" in capabilities or info.get("projector_info"):
        return True
    model_info = info.get("model_info") if isinstance(info.get("model_info"), dict) else {}
    return any(".vision." in key for key in model_info)
