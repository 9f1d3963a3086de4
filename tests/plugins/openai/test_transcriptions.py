"""``POST /v1/audio/transcriptions``: the multipart form read as Ollama reads it, run as a chat
with the audio as the user message's media, answered as JSON or plain text."""

from __future__ import annotations

import openai
import pytest

from ollamakit_openai import transcriptions


@pytest.fixture
def server(engine):
    with engine.server() as running:
        yield running


@pytest.fixture
def oai(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="ollama", max_retries=0)


AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64)


def test_a_model_that_cannot_take_media_is_a_400_through_the_official_client(oai):
    with pytest.raises(openai.BadRequestError) as caught:
        oai.audio.transcriptions.create(model="tiny", file=("hello.wav", AUDIO))
    assert "missing data required for image input" in str(caught.value)


def test_an_unknown_model_is_a_404(oai):
    with pytest.raises(openai.NotFoundError):
        oai.audio.transcriptions.create(model="nope", file=("hello.wav", AUDIO))


def form(client, files=None, data=None):
    import requests

    return requests.post(client + "/v1/audio/transcriptions", files=files, data=data, timeout=30)


@pytest.mark.parametrize(
    ("files", "data", "message"),
    [
        ({"file": ("a.wav", AUDIO)}, {}, "model is required"),
        (None, {"model": "tiny"}, "file is required"),
        ({"file": ("a.wav", b"")}, {"model": "tiny"}, "audio file is empty"),
    ],
)
def test_form_mistakes_are_400s_in_the_openai_envelope(server, files, data, message):
    reply = form(server.url, files=files or {"unused": ("x", b"x")}, data=data)
    assert reply.status_code == 400
    assert reply.json()["error"]["message"] == message


def test_a_body_that_is_not_a_form_is_a_400(server):
    import requests

    reply = requests.post(server.url + "/v1/audio/transcriptions", json={"model": "tiny"})
    assert reply.status_code == 400
    assert reply.json()["error"]["message"] == "failed to parse multipart form"


def test_audio_past_25_mib_is_a_413(server, monkeypatch):
    monkeypatch.setattr(transcriptions, "MAX_AUDIO_BYTES", 1000)
    reply = form(server.url, files={"file": ("a.wav", bytes(1001))}, data={"model": "tiny"})
    assert reply.status_code == 413


def test_the_request_is_a_chat_with_the_audio_as_media():
    native = transcriptions.native_request(
        {"model": "m", "language": "French", "prompt": "a lecture"}, b"\x00\x01"
    )
    system, user = native["messages"]
    assert system["content"].endswith(" The audio is in French. Context: a lecture")
    assert user["images"] == ["AAE="] and native["options"] == {"temperature": 0}


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("json", "application/json"), ("text", "text/plain")]
)
def test_the_answer_is_json_or_plain_text(server, monkeypatch, fmt, content_type):
    """The translation of the chat's replies; the model side is the chat route's own tests."""

    def chat(kernel, native, gone):
        assert native["messages"][1]["images"]
        yield {"message": {"content": " hello"}, "done": False}
        yield {"message": {"content": " there\n"}, "done": True}

    monkeypatch.setattr(transcriptions.inference, "chat", chat)
    reply = form(
        server.url, files={"file": ("a.wav", AUDIO)}, data={"model": "m", "response_format": fmt}
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith(content_type)
    text = reply.json()["text"] if fmt == "json" else reply.text
    assert text == "hello there"
