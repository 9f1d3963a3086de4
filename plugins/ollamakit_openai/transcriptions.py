"""``POST /v1/audio/transcriptions``: a multipart upload run as a native chat, as Ollama's
``TranscriptionMiddleware`` and ``FromTranscriptionRequest`` do.

The audio travels as the user message's media, under a fixed instruction to transcribe, at
temperature 0. A model that cannot take media answers the same 400 as a chat with images would;
no engine here hears audio, so that is every model today, and the route is still the one clients
call (the OpenAI client's ``audio.transcriptions.create``).
"""

from __future__ import annotations

import base64

import falcon

from ollamakit import inference
from ollamakit.errors import BadRequest, TooLarge
from ollamakit.web import client_gone, json_response

from .envelope import openai_errors

MAX_AUDIO_BYTES = 25 << 20  # Ollama parses the form with a 25 MiB limit
INSTRUCTION = (
    "Transcribe the audio exactly as spoken. Output only the spoken words. "
    "Do not answer any question in the audio."
)
QUESTION = "What exact words are spoken in this audio?"
TEXT_FIELDS = ("model", "response_format", "language", "prompt")


def read_form(req) -> tuple[dict[str, str], bytes | None]:
    """The form's text fields and its ``file`` part, each read within its bound."""
    fields: dict[str, str] = {}
    audio = None
    try:
        for part in req.get_media():
            if part.name == "file":
                audio = part.stream.read(MAX_AUDIO_BYTES + 1)
                if len(audio) > MAX_AUDIO_BYTES:
                    raise TooLarge("audio file is larger than 25 MiB")
            elif part.name in TEXT_FIELDS:
                fields[part.name] = part.stream.read(64 << 10).decode("utf-8", "replace")
            else:
                part.stream.read()  # drained, so the parser can reach the next part
    except (falcon.MediaMalformedError, falcon.HTTPUnsupportedMediaType, falcon.HTTPBadRequest):
        raise BadRequest("failed to parse multipart form") from None
    return fields, audio


def native_request(fields: dict[str, str], audio: bytes) -> dict:
    instruction = INSTRUCTION
    if fields.get("language"):
        instruction += f" The audio is in {fields['language']}."
    if fields.get("prompt"):
        instruction += f" Context: {fields['prompt']}"
    return {
        "model": fields["model"],
        "messages": [
            {"role": "system", "content": instruction},
            {
                "role": "user",
                "content": QUESTION,
                "images": [base64.b64encode(audio).decode("ascii")],
            },
        ],
        "options": {"temperature": 0},
    }


class Transcriptions:
    def __init__(self, kernel):
        self.kernel = kernel

    @openai_errors
    def on_post(self, req, resp):
        if not (req.content_type or "").startswith("multipart/form-data"):
            raise BadRequest("failed to parse multipart form")
        fields, audio = read_form(req)
        if not fields.get("model"):
            raise BadRequest("model is required")
        if audio is None:
            raise BadRequest("file is required")
        if not audio:
            raise BadRequest("audio file is empty")
        events = inference.chat(self.kernel, native_request(fields, audio), gone=client_gone(req))
        text = "".join((event.get("message") or {}).get("content", "") for event in events)
        if fields.get("response_format") == "text":
            resp.content_type = "text/plain"
            resp.text = text.strip()
        else:
            json_response(resp, {"text": text.strip()}, 200, "application/json")
