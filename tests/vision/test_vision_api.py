"""Images through the real HTTP server and the official clients: a Gemma 3 270M with the fixture
projector created from two GGUFs, shown, asked about a picture over /api/generate, /api/chat,
the OpenAI chat and Responses routes and the Anthropic Messages route (the same answer each
way), and refused clearly when the input is bad."""

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
        client.create(model="plain", files={"gemma.gguf": files["gemma.gguf"]})  # cannot see
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


COLOUR_PROMPT = "Repeat after me: the apple is[img]"


def _native_colour(client, png: bytes) -> str:
    reply = client.chat(
        model="colours",
        options={"temperature": 0, "num_predict": 8},
        messages=[{"role": "user", "content": COLOUR_PROMPT, "images": [png]}],
    )
    return reply.message.content


@pytest.mark.parametrize("rgb, word", sorted(fixtures.COLOURS.items()))
def test_anthropic_image_blocks_reach_the_model(seer, rgb, word):
    """An ``image`` block with a base64 source is the picture the model sees: the colour it
    names, and the answer /api/chat gives for the same image."""
    import anthropic

    server, client = seer
    png = fixtures.solid_png(rgb, (64, 64))
    claude = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
    reply = claude.messages.create(
        model="colours",
        max_tokens=8,
        extra_body={"temperature": 0},
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": COLOUR_PROMPT},
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": base64.b64encode(png).decode(),
                        },
                    },
                ],
            }
        ],
    )
    answer = reply.content[0].text
    assert word.strip() in answer.lower()
    assert answer == _native_colour(client, png)


@pytest.mark.parametrize("rgb, word", sorted(fixtures.COLOURS.items()))
def test_responses_input_images_reach_the_model(seer, rgb, word):
    import openai

    server, client = seer
    png = fixtures.solid_png(rgb, (64, 64))
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    reply = oa.responses.create(
        model="colours",
        temperature=0,
        max_output_tokens=8,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": COLOUR_PROMPT},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64," + base64.b64encode(png).decode(),
                    },
                ],
            }
        ],
    )
    assert word.strip() in reply.output_text.lower()
    assert reply.output_text == _native_colour(client, png)


def test_images_on_a_model_that_cannot_see_are_the_same_400_everywhere(seer):
    import anthropic
    import openai

    server, client = seer
    png = fixtures.solid_png((255, 0, 0), (64, 64))
    data = base64.b64encode(png).decode()
    refusal = "this model is missing data required for image input"
    with pytest.raises(ollama.ResponseError) as native:
        client.chat(model="plain", messages=[{"role": "user", "content": "hi", "images": [png]}])
    assert native.value.status_code == 400 and native.value.error == refusal

    claude = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
    image_block = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": data},
    }
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(
            model="plain", max_tokens=4, messages=[{"role": "user", "content": [image_block]}]
        )
    assert refused.value.body["error"] == {"type": "invalid_request_error", "message": refusal}

    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    url = "data:image/png;base64," + data
    with pytest.raises(openai.BadRequestError) as refused:
        oa.responses.create(
            model="plain",
            input=[{"role": "user", "content": [{"type": "input_image", "image_url": url}]}],
        )
    assert refused.value.status_code == 400 and refusal in str(refused.value)
    with pytest.raises(openai.BadRequestError) as refused:
        oa.chat.completions.create(
            model="plain",
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
            ],
        )
    assert refused.value.status_code == 400 and refusal in str(refused.value)


def test_anthropic_url_sources_are_refused_as_ollama_refuses_them(seer):
    """Ollama fetches no image URL (anthropic.go resolveImageSource): a url source is a 400."""
    import anthropic

    server, _ = seer
    claude = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
    block = {"type": "image", "source": {"type": "url", "url": "http://127.0.0.1:9/x.png"}}
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(
            model="colours", max_tokens=4, messages=[{"role": "user", "content": [block]}]
        )
    assert refused.value.body["error"]["message"] == (
        "invalid image source type: url. Only base64 images are supported."
    )


def test_a_context_after_an_image_names_it_and_is_not_read_without_it(seer):
    """Ollama's context is the prompt's text tokenized, the image as its [img-0] tag. Sent back,
    the tag would be read as the new request's image or as text: the model would not see the
    picture it answered about, so the follow-up is a clear 400; text contexts still work."""
    from ollamakit.lib.gguf import GGUFFile
    from ollamakit.lib.tokenizers import load_tokenizer

    server, client = seer
    first = client.generate(
        model="seer",
        prompt="Describe this picture.",
        images=[fixtures.pattern_png()],
        options=GREEDY,
    )
    with GGUFFile.open(models.gemma3_270m()) as gguf:
        tokenizer = load_tokenizer(gguf.metadata)
    text = tokenizer.decode(first.context)
    assert "[img-0]" in text and "Describe this picture." in text
    assert first.response in text
    assert "<pad>" not in text  # no placeholder ids where the image's rows were

    for images in ([], [fixtures.pattern_png()]):
        with pytest.raises(ollama.ResponseError) as refused:
            client.generate(
                model="seer",
                prompt="And now?",
                context=first.context,
                images=images,
                options=GREEDY,
            )
        assert refused.value.status_code == 400
        assert refused.value.error.startswith("the context holds an image ([img-0])")

    plain = client.generate(model="seer", prompt="Hello.", options=GREEDY)
    again = client.generate(model="seer", prompt="Again.", context=plain.context, options=GREEDY)
    assert again.done and len(again.context) > len(plain.context)


def test_debug_render_counts_the_images(seer):
    """``_debug_render_only`` says how many images went with the prompt, as Ollama's
    ``_debug_info.image_count`` does (left out when there are none)."""
    server, _ = seer
    image = base64.b64encode(fixtures.pattern_png()).decode()
    generated = httpx.post(
        server.url + "/api/generate",
        json={"model": "seer", "prompt": "Describe.", "images": [image, image],
              "_debug_render_only": True, "stream": False},
        timeout=60,
    ).json()  # fmt: skip
    assert generated["_debug_info"]["image_count"] == 2
    chatted = httpx.post(
        server.url + "/api/chat",
        json={"model": "seer", "_debug_render_only": True, "stream": False,
              "messages": [{"role": "user", "content": "a", "images": [image]},
                           {"role": "user", "content": "b"}]},
        timeout=60,
    ).json()  # fmt: skip
    assert chatted["_debug_info"]["image_count"] == 1
    plain = httpx.post(
        server.url + "/api/generate",
        json={"model": "seer", "prompt": "hi", "_debug_render_only": True, "stream": False},
        timeout=60,
    ).json()
    assert "image_count" not in plain["_debug_info"]
