"""LLaVA 1.6 (a projector with grid pinpoints) as mtmd's llava-uhd preprocessor sees an image:
the pinpoint chosen, the letterboxed grid cut into tiles row by row, the stretched overview
last; and the projector keys that describe it, checked when the model loads. The tower's
answers against llama.cpp's are in tests/plugins/engine/test_vision.py."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ollamakit.errors import InvalidModelFile

pytest.importorskip("ollamakit_engine")
from ollamakit_engine.vision_image import anyres_tiles, best_resolution  # noqa: E402
from ollamakit_engine.vision_tower import vision_config  # noqa: E402

PINPOINTS = [(56, 112), (112, 56), (112, 112), (168, 56), (56, 168)]


@pytest.mark.parametrize(
    "size, candidates, best",
    [
        # the most pixels kept comes first: 200x200 keeps all of 111x200 (the example in
        # mtmd-image.h names 100x200; select_best_resolution's code, followed here, does not)
        ((111, 200), [(100, 100), (200, 100), (100, 200), (200, 200)], (200, 200)),
        ((150, 100), PINPOINTS, (112, 112)),
        ((300, 90), PINPOINTS, (168, 56)),
        ((90, 300), PINPOINTS, (56, 168)),
        # all keep the whole image: the one that wastes least
        ((50, 50), [(112, 112), (56, 112), (112, 56)], (56, 112)),
        # a sliver keeps nothing anywhere: the first
        ((1, 30000), [(112, 56), (56, 112)], (112, 56)),
    ],
)
def test_the_best_pinpoint(size, candidates, best):
    assert best_resolution(*size, candidates) == best


def quadrants(width: int, height: int) -> Image.Image:
    """An image whose four quadrants are red, green, blue and white."""
    values = np.zeros((height, width, 3), np.uint8)
    values[: height // 2, : width // 2] = (255, 0, 0)
    values[: height // 2, width // 2 :] = (0, 255, 0)
    values[height // 2 :, : width // 2] = (0, 0, 255)
    values[height // 2 :, width // 2 :] = (255, 255, 255)
    return Image.fromarray(values)


def test_tiles_go_row_by_row_and_the_overview_comes_last():
    tiles = [np.asarray(t) for t in anyres_tiles(quadrants(224, 224), 56, PINPOINTS)]
    assert len(tiles) == 5 and all(t.shape == (56, 56, 3) for t in tiles)
    # the grid is 112x112: each tile is one quadrant, read row by row
    corners = [tuple(int(v) for v in t[28, 28]) for t in tiles[:4]]
    assert corners == [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    # the overview is the whole picture, its quadrants at their places
    overview = tiles[4]
    assert tuple(overview[10, 10]) == (255, 0, 0) and tuple(overview[45, 45]) == (255, 255, 255)


def test_the_grid_is_letterboxed_on_black_and_the_overview_stretched():
    white = Image.new("RGB", (300, 90), (255, 255, 255))
    tiles = [np.asarray(t) for t in anyres_tiles(white, 56, PINPOINTS)]
    assert len(tiles) == 4  # a 3x1 grid, then the overview
    # 300x90 scaled by 0.56 into 168x56: 168x51 (rounded up), centred at y = 2
    for tile in tiles[:3]:
        assert tile[:2].max() == 0 and tile[53:].max() == 0 and tile[2:53].min() == 255
    assert tiles[3].min() == 255  # stretched to the square, no padding


def test_an_image_no_larger_than_a_tile_is_its_overview_alone():
    [overview] = anyres_tiles(quadrants(40, 30), 56, PINPOINTS)
    assert overview.size == (56, 56)
    assert tuple(np.asarray(overview)[5, 5]) == (255, 0, 0)  # stretched: no border
    [same] = anyres_tiles(quadrants(56, 56), 56, PINPOINTS)
    np.testing.assert_array_equal(np.asarray(same), np.asarray(quadrants(56, 56)))


def llava16(**extra) -> dict:
    return {
        "general.architecture": "clip",
        "clip.has_vision_encoder": True,
        "clip.projector_type": "mlp",
        "clip.vision.image_size": 56,
        "clip.vision.patch_size": 14,
        "clip.vision.embedding_length": 64,
        "clip.vision.feed_forward_length": 128,
        "clip.vision.block_count": 3,
        "clip.vision.attention.head_count": 4,
        "clip.vision.image_mean": [0.5, 0.5, 0.5],
        "clip.vision.image_std": [0.5, 0.5, 0.5],
        "clip.vision.image_grid_pinpoints": [56, 112, 112, 56, 112, 112],
        **extra,
    }


def test_pinpoints_and_feature_layers_are_read():
    config = vision_config(llava16(**{"clip.vision.feature_layer": [1, 3]}))
    assert config.pinpoints == ((56, 112), (112, 56), (112, 112))
    assert config.feature_layers == (1, 3)
    # the largest grid's four tiles and the overview, 16 rows each
    assert config.tokens_per_tile == 16 and config.tokens_per_image == 80


@pytest.mark.parametrize(
    "extra",
    [
        {"clip.vision.image_grid_pinpoints": [56, 112, 112]},  # not pairs
        {"clip.vision.image_grid_pinpoints": [60, 112]},  # not whole tiles
        {"clip.vision.image_grid_pinpoints": [0, 56]},
        {"clip.vision.image_grid_pinpoints": [56 * 100, 56]},  # too many tiles
        {"clip.vision.image_grid_pinpoints": "336x672"},
        {"clip.vision.feature_layer": [4]},  # deeper than the tower
        {"clip.vision.feature_layer": [-1]},
    ],
)
def test_bad_grid_or_feature_layers_refuse_the_projector(extra):
    with pytest.raises(InvalidModelFile):
        vision_config(llava16(**extra))
