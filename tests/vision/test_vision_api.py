"""Images through the real HTTP server and the official clients: a Gemma 3 270M with the fixture
projector created from two GGUFs, shown, asked about a picture over /api/generate, /api/chat and
the OpenAI route (the same answer each way), and refused clearly when the input is bad."""

from __future__ import annotations

import base64
import struct
import zlib

import httpx
import ollama
import pytest

from ollamakit.testing import models
from ollamakit.testing import vision as fixtures
from ollamakit.testing import vision_agreement as va

pytestmark = [pytest.mark.real_model, pytest.mark.slow]
GREEDY = {"temperature": 0, "num_predict": 6}


@pytest.fixture(scope="module")
def seer(tmp_path_factory):
    from ollamakit.testing.fixtures import ServerProcess

    folder = tmp_path_factory.mktemp("seer")
    (folder / "models").mkdir()
    server = ServerProcess(folder / "models").start()
    try:
        client = ollama.Client(host=server.url, timeout=600)
        files = {
            "gemma.gguf": client.create_blob(models.gemma3_270m()),
            "mmproj.gguf": client.create_blob(va.fixture_projector(folder)),
        }
        client.create(model="seer", files=files)
        colours = fixtures.colour_projector(folder / "colours.gguf", models.gemma3_270m())
        client.create(
            model="colours",
            files={"gemma.gguf": files["gemma.gguf"], "mmproj.gguf": client.create_blob(colours)},
        )
        yield server, client
    finally:
        server.stop()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with almost no data after it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_show_has_the_projector(seer):
    server, _ = seer  # the official client's ShowResponse has no projector_info field
    shown = httpx.post(server.url + "/api/show", json={"model": "seer"}, timeout=60).json()
    assert "vision" in shown["capabilities"]
    assert shown["projector_info"]["general.architecture"] == "clip"
    assert shown["projector_info"]["clip.projector_type"] == "gemma3"
    assert shown["modelfile"].count("\nFROM ") == 2


def test_the_same_answer_every_way(seer):
    server, client = seer
    image = fixtures.pattern_png()
    generated = client.generate(
        model="seer", prompt="Describe this picture.", images=[image], options=GREEDY
    )
    chatted = client.chat(
        model="seer",
        messages=[{"role": "user", "content": "Describe this picture.", "images": [image]}],
        options=GREEDY,
    )
    assert generated.response and generated.response == chatted.message.content
    assert generated.prompt_eval_count > 4  # the image's rows are in the prompt

    # OpenAI content parts become one message each, as in Ollama: the native request the same
    # way round gets the same answer
    parted = client.chat(
        model="seer",
        options=GREEDY,
        messages=[
            {"role": "user", "content": "", "images": [image]},
            {"role": "user", "content": "Describe this picture."},
        ],
    )
    import openai

    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    url = "data:image/png;base64," + base64.b64encode(image).decode()
    reply = oa.chat.completions.create(
        model="seer",
        temperature=0,
        max_tokens=6,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": "Describe this picture."},
                ],
            }
        ],
    )
    assert reply.choices[0].message.content == parted.message.content


@pytest.mark.parametrize(
    "image, error",
    [
        (
            base64.b64encode(b"just some text").decode(),
            "invalid image input: not a PNG, JPEG, WebP, BMP or GIF image",
        ),
        (
            base64.b64encode(fixtures.pattern_png()[:300]).decode(),
            "invalid image input: the image data is truncated or corrupt",
        ),
        (base64.b64encode(png_header(60000, 60000)).decode(), "image is too large"),
        ("not*base64", "illegal base64 data at input byte 3"),
    ],
)
def test_bad_images_are_clear_400s(seer, image, error):
    server, client = seer
    body = {
        "model": "seer",
        "prompt": "What is it?",
        "images": [image],
        "stream": False,
        "options": GREEDY,
    }
    reply = httpx.post(server.url + "/api/generate", json=body, timeout=120)
    assert reply.status_code == 400
    assert reply.json()["error"].startswith(error)
    assert client.generate(model="seer", prompt="Hi", options=GREEDY).done  # still answering


def test_more_images_than_the_context_holds(seer):
    server, _ = seer
    image = base64.b64encode(fixtures.solid_png((0, 200, 0))).decode()
    body = {
        "model": "seer",
        "prompt": "Count them.",
        "images": [image] * 12,
        "stream": False,
        "options": {**GREEDY, "num_ctx": 64},
    }
    reply = httpx.post(server.url + "/api/generate", json=body, timeout=120)
    assert reply.status_code == 400
    assert "more than the context window of 64" in reply.json()["error"]


@pytest.mark.parametrize("rgb, word", sorted(fixtures.COLOURS.items()))
def test_the_model_names_the_colour_it_sees(seer, rgb, word):
    """The colour tower turns a solid image into the model's own embedding of its colour's
    word: Gemma 3 270M then says the colour, which it can only have from the picture."""
    _, client = seer
    reply = client.chat(
        model="colours",
        options={"temperature": 0, "num_predict": 8},
        messages=[
            {
                "role": "user",
                "content": "Repeat after me: the apple is[img]",
                "images": [fixtures.solid_png(rgb, (64, 64))],
            }
        ],
    )
    answer = reply.message.content.lower()
    assert word.strip() in answer
    assert all(other.strip() not in answer for other in fixtures.COLOURS.values() if other != word)
