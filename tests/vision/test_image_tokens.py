"""Image rows in a token list: equal by content, never cut by a step, seeing each other both ways;
and the preprocessing mtmd does for gemma3."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from ollamakit.errors import BadRequest
from ollamakit.images import EncodedImage, ImageToken, image_tokens, whole_images

engine = pytest.importorskip("ollamakit_engine")
from ollamakit_engine.batching import plan_steps  # noqa: E402
from ollamakit_engine.graph_model import image_groups  # noqa: E402
from ollamakit_engine.vision_image import decode, letterbox, pixels  # noqa: E402
from ollamakit_scheduler.batch import common_prefix  # noqa: E402


def image(digest: str, rows: int = 4, bidirectional: bool = True) -> list[ImageToken]:
    return image_tokens(
        EncodedImage(digest, np.zeros((rows, 8), np.float32), bidirectional), placeholder=0
    )


def test_image_rows_compare_by_content_and_row():
    a, again, b = image("sha256:aa"), image("sha256:aa"), image("sha256:bb")
    assert a == again and hash(a[1]) == hash(again[1])
    assert a[0] != a[1] and a[0] != b[0] and a[0] != 0 and 0 != a[0]
    prompt = [5, 6] + a + [7]
    assert common_prefix(prompt, [5, 6] + again + [7, 8]) == 7  # the same picture: reused whole
    assert common_prefix(prompt, [5, 6] + b + [7]) == 2  # another picture: reused up to it
    assert json.loads(json.dumps(prompt)) == [5, 6, 0, 0, 0, 0, 7]


def test_steps_never_cut_an_image():
    tokens = [1, 2, 3] + image("sha256:aa") + [4]
    assert whole_images(tokens, 5) == 3  # the image waits for the next step
    assert (
        whole_images(tokens, 7) == 7
        and whole_images(tokens, 3) == 3
        and whole_images(tokens, 99) == 8
    )
    assert whole_images(image("sha256:aa", 10), 4) == 0  # longer than a step: the caller splits it

    class Cache:
        n_past = 0

    steps = [[len(part[1]) for part in parts] for parts in plan_steps([(Cache(), tokens)], 5)]
    assert steps == [[3], [5]]


def test_image_rows_are_grouped_per_image():
    tokens = [1] + image("sha256:aa", 2) + image("sha256:aa", 2) + [2]
    assert image_groups(tokens).tolist() == [-1, 0, 0, 1, 1, -1]
    assert image_groups([1, 2]) is None
    assert (
        image_groups([1] + image("sha256:aa", 2, bidirectional=False)) is None
    )  # LLaVA's rows are causal


def test_the_mask_lets_an_image_see_itself_both_ways():
    from types import SimpleNamespace

    from ollamakit_engine.graph_model import GraphSegment, GraphTransformer

    hp = SimpleNamespace(sliding_window=0)
    model = GraphTransformer.__new__(GraphTransformer)
    model.hp = hp
    cache = SimpleNamespace(cell_positions=lambda local, stop: np.arange(16))  # cell = position
    segment = GraphSegment(cache, [1] + image("sha256:aa", 3) + [2], start=2, row=0)
    visible = model._mask(segment, False)[:, :8] == 0
    expected = np.tril(np.ones((5, 8), bool), 2)
    expected[1:4, 3:6] = True  # rows of the image see all three
    np.testing.assert_array_equal(visible, expected)


def png(img) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def test_letterbox_keeps_the_aspect_on_black():
    boxed = letterbox(Image.new("RGB", (150, 100), (255, 255, 255)), 112)
    values = np.asarray(boxed)
    # 150x100 scaled by 112/150: 112x75 (rounded up), centred at y = 18
    assert values[18:93, :, 0].min() == 255 and values[:18].max() == 0 and values[93:].max() == 0


def test_alpha_is_dropped_not_composited():
    transparent_red = Image.new("RGBA", (20, 20), (250, 0, 0, 0))
    assert np.asarray(decode(png(transparent_red)))[0, 0].tolist() == [250, 0, 0]
    grey = decode(png(Image.new("L", (4, 4), 77)))
    assert grey.mode == "RGB" and np.asarray(grey)[0, 0].tolist() == [77, 77, 77]


def test_pixels_are_normalised_planes():
    values = pixels(
        png(Image.new("RGB", (14, 14), (255, 0, 51))), 14, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    )
    assert values.shape == (3, 14, 14) and values.dtype == np.float32
    np.testing.assert_allclose(values[:, 0, 0], [1.0, -1.0, -0.6], atol=1e-6)


@pytest.mark.parametrize(
    "data", [b"", b"GIF89a", b"\x89PNG\r\n\x1a\n" + b"\0" * 20, b"BM" + b"\xff" * 60]
)
def test_garbage_is_a_bad_request(data):
    with pytest.raises(BadRequest):
        decode(data)
