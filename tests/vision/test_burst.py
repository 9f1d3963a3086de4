"""A burst through real HTTP (waitress and the official ``ollama`` client): more requests than
the model has slots, images and text, on both routes, sent at the same moment. Each answers
what it answers alone, and the work stays bounded: each distinct image goes through the tower
once, stage by stage (counted through the vision's ``before_stage`` seam), while the other
requests wait for a slot or decode. The requests are released together by a barrier."""

from __future__ import annotations

import threading

import ollama
import pytest

from ollamakit.testing import vision as fixtures

pytest.importorskip("ollamakit_engine")
from seer_server import WAIT, serve_seer  # noqa: E402

OPTIONS = {"temperature": 0, "num_predict": 6, "num_ctx": 512}
SLOTS = 2
# the tower's stages per image: the embedding, the 2 blocks a 3-block LLaVA tower runs, the head
STAGES_PER_IMAGE = 4

IMAGES = [fixtures.pattern_png((150, 100), seed) for seed in range(3)]
# (route, what is sent): three images on both routes and three texts, more than the slots
REQUESTS = [
    ("chat", {"messages": [{"role": "user", "content": "What is this?", "images": [IMAGES[0]]}]}),
    ("generate", {"prompt": "Describe the picture.", "images": [IMAGES[1]]}),
    ("chat", {"messages": [{"role": "user", "content": "Tell me about the lighthouse."}]}),
    ("chat", {"messages": [{"role": "user", "content": "And this one?", "images": [IMAGES[2]]}]}),
    ("generate", {"prompt": "Count to five."}),
    ("chat", {"messages": [{"role": "user", "content": "Name a colour."}]}),
]


@pytest.fixture
def served(settings, tmp_path):
    with serve_seer(settings, tmp_path, SLOTS) as kernel_and_server:
        yield kernel_and_server


def ask(url: str, route: str, body: dict) -> str:
    """The whole streamed answer of one request, through its own client (its own connection)."""
    client = ollama.Client(host=url, timeout=WAIT)
    if route == "chat":
        chunks = client.chat(model="seer", options=OPTIONS, stream=True, **body)
        return "".join(chunk.message.content or "" for chunk in chunks)
    chunks = client.generate(model="seer", options=OPTIONS, stream=True, **body)
    return "".join(chunk.response for chunk in chunks)


def fresh_vision(kernel, url: str):
    """The vision of a freshly loaded runner: no image kept from before."""
    client = ollama.Client(host=url, timeout=WAIT)
    client.generate(model="seer", keep_alive=0)
    client.generate(model="seer")  # an empty prompt loads it
    [entry] = kernel.scheduler._loaded.values()
    return entry.runner.vision


def test_a_burst_of_image_and_text_requests_all_answer_as_alone(served):
    kernel, server = served
    alone = [ask(server.url, route, body) for route, body in REQUESTS]
    assert all(alone)

    vision = fresh_vision(kernel, server.url)
    stages: list[int] = []
    vision.before_stage = lambda: stages.append(1)  # before each of the tower's stages
    start = threading.Barrier(len(REQUESTS))
    answers: list[str | None] = [None] * len(REQUESTS)
    errors: list[BaseException] = []

    def request(index: int) -> None:
        try:
            start.wait(WAIT)
            answers[index] = ask(server.url, *REQUESTS[index])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=request, args=(i,)) for i in range(len(REQUESTS))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(WAIT)
    assert not any(worker.is_alive() for worker in workers), "a request never finished"
    assert not errors, errors
    assert answers == alone
    # bounded work: each image through the tower once, and no stage run twice
    assert vision.encoded == len(IMAGES)
    assert len(stages) == len(IMAGES) * STAGES_PER_IMAGE
    # the model stays loaded once, with its slots, and answers afterwards
    assert len(kernel.scheduler._loaded) == 1
    assert ask(server.url, *REQUESTS[0]) == alone[0]
    assert vision.encoded == len(IMAGES)  # the repeat took the kept image
