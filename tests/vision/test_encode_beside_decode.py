"""Two requests through real HTTP (waitress) while one image is encoded: the vision tower runs
stage by stage off the runner's lock, so a text request on the same model streams its answer
while another request's image is held between two of the tower's blocks, and both answers are
the ones each request gets alone.

The hold is the vision's ``before_stage`` seam, not a sleep: the image request cannot produce a
token before its image is encoded, so the order of the first tokens is decided, not raced."""

from __future__ import annotations

import threading

import ollama
import pytest

from ollamakit.testing import vision as fixtures

pytest.importorskip("ollamakit_engine")
from seer_server import WAIT, serve_seer  # noqa: E402

OPTIONS = {"temperature": 0, "num_predict": 8, "num_ctx": 512}
HELD_STAGE = 2  # the embedding is stage 0: the hold falls between the tower's first two blocks


@pytest.fixture
def served(settings, tmp_path):
    with serve_seer(settings, tmp_path, 2) as kernel_and_server:
        yield kernel_and_server


IMAGE = [{"role": "user", "content": "What is in the picture?", "images": [fixtures.pattern_png()]}]
TEXT = [{"role": "user", "content": "Tell me a story about a lighthouse."}]


def answer(url: str, messages, first=None) -> str:
    """The streamed answer; ``first()`` is called when its first token arrives."""
    parts = []
    for chunk in ollama.Client(host=url, timeout=WAIT).chat(
        model="seer", messages=messages, options=OPTIONS, stream=True
    ):
        if chunk.message.content and not parts and first is not None:
            first()
        parts.append(chunk.message.content)
    return "".join(parts)


def vision_of(kernel):
    [entry] = kernel.scheduler._loaded.values()
    return entry.runner.vision


def test_a_text_request_streams_while_another_requests_image_is_encoded(served):
    kernel, server = served
    alone_image, alone_text = answer(server.url, IMAGE), answer(server.url, TEXT)
    assert alone_image and alone_text

    # a fresh runner, so the image is encoded again rather than taken from the kept ones
    client = ollama.Client(host=server.url, timeout=WAIT)
    client.generate(model="seer", keep_alive=0)
    client.generate(model="seer")  # an empty prompt loads it
    vision = vision_of(kernel)
    encoded_before = vision.encoded

    held, release = threading.Event(), threading.Event()
    stages = []
    firsts: list[str] = []

    def hold():  # before each stage of the tower, outside its locks
        stages.append(len(stages))
        if len(stages) - 1 == HELD_STAGE:
            held.set()
            assert release.wait(WAIT), "the hold was never released"

    vision.before_stage = hold
    result: dict = {}

    def image_request():
        try:
            result["image"] = answer(server.url, IMAGE, first=lambda: firsts.append("image"))
        except BaseException as exc:  # reported by the main thread
            result["error"] = exc
        finally:
            held.set()  # never leave the main thread waiting on a request that failed

    worker = threading.Thread(target=image_request)
    worker.start()
    try:
        assert held.wait(WAIT) and "error" not in result, result.get("error")
        # the image is inside its tower now, and stays there until released: the text request
        # must stream its whole answer meanwhile
        text = answer(server.url, TEXT, first=lambda: firsts.append("text"))
        assert not release.is_set() and "image" not in result
    finally:
        release.set()
        worker.join(WAIT)
    assert "error" not in result, result.get("error")
    assert firsts == ["text", "image"]
    assert vision.encoded == encoded_before + 1 and len(stages) > HELD_STAGE + 1
    assert text == alone_text
    assert result["image"] == alone_image
