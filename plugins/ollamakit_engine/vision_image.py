"""Image bytes to a vision tower's input, as llama.cpp's mtmd prepares them: decoded to RGB
(alpha dropped, not composited, as stb_image does), letterboxed at the tower's size with the
aspect ratio kept (gemma3: onto black with Pillow's bilinear filter; LLaVA: onto grey-brown
with the bicubic one; mtmd's resampler reproduces Pillow's), then scaled to [0, 1] and
normalised by the projector's mean and std.

LLaVA 1.6 (a projector with grid pinpoints) sees an image as several tiles of the tower's
size, as mtmd's llava-uhd preprocessor cuts them (``anyres_pixels``).

The header is read first, and an image that claims more pixels than ``MAX_PIXELS`` is refused
before a byte of it is decoded.
"""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np

from ollamakit.errors import BadRequest

log = logging.getLogger("ollamakit.vision")

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
MAX_PIXELS = 50_000_000  # about 7000 x 7000; decoded RGB takes three bytes each
MAX_SIDE = 32_768


def decode(data: bytes):
    """The image as a Pillow RGB image; a clear 400 for anything that is not a whole image of
    a known format and a bounded size."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a bomb warning: our own bound below decides
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:
        raise BadRequest(f"image is too large (at most {MAX_PIXELS} pixels)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        log.info("image not decoded: %s", exc)
        raise BadRequest("invalid image input: not a PNG, JPEG, WebP, BMP or GIF image") from None
    width, height = image.size
    if (
        width <= 0
        or height <= 0
        or width > MAX_SIDE
        or height > MAX_SIDE
        or width * height > MAX_PIXELS
    ):
        raise BadRequest(
            f"image is too large: {width}x{height} pixels (at most {MAX_PIXELS} pixels)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
            if image.mode in ("P", "PA", "LA", "RGBA", "La"):  # the colours, the alpha dropped
                image = image.convert("RGBA")
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        log.info("image data not decoded: %s", exc)
        raise BadRequest("invalid image input: the image data is truncated or corrupt") from None


def letterbox(image, size, pad=(0, 0, 0), resample: str = "bilinear"):
    """``image`` scaled to fit ``size`` (a side, or width and height) with its aspect ratio
    kept (each side rounded up, as mtmd's ``PAD_CEIL``), centred on ``pad``."""
    from PIL import Image

    target_w, target_h = (size, size) if isinstance(size, int) else size
    width, height = image.size
    if (width, height) == (target_w, target_h):
        return image
    # float32 arithmetic, as mtmd computes the scale
    scale = min(np.float32(target_w) / np.float32(width), np.float32(target_h) / np.float32(height))
    new_w = min(int(np.ceil(np.float32(width) * scale)), target_w)
    new_h = min(int(np.ceil(np.float32(height) * scale)), target_h)
    resized = (
        image
        if (new_w, new_h) == (width, height)
        else image.resize((new_w, new_h), _filter(resample))
    )
    canvas = Image.new("RGB", (target_w, target_h), tuple(pad))
    canvas.paste(resized, ((target_w - new_w) // 2, (target_h - new_h) // 2))
    return canvas


def _filter(resample: str):
    from PIL import Image

    return Image.BICUBIC if resample == "bicubic" else Image.BILINEAR


def pixels(
    data: bytes, size: int, mean, std, pad=(0, 0, 0), resample: str = "bilinear"
) -> np.ndarray:
    """The tower's input: float32 (3, size, size), channel planes, normalised."""
    return _planes(letterbox(decode(data), size, pad, resample), mean, std)


def best_resolution(width: int, height: int, candidates) -> tuple[int, int]:
    """The pinpoint that keeps most of the image's pixels once it is scaled to fit, the one
    that wastes the least area among equals (mtmd's ``select_best_resolution``, in its float32
    and truncating arithmetic). Where every candidate would keep nothing (a sliver of an
    image), the first one."""
    best, most, least_wasted = tuple(candidates[0]), -1, 0
    for cand_w, cand_h in candidates:
        scale = min(np.float32(cand_w) / np.float32(width), np.float32(cand_h) / np.float32(height))
        kept = min(int(np.float32(width) * scale) * int(np.float32(height) * scale), width * height)
        wasted = cand_w * cand_h - kept
        if kept > most or (kept == most and wasted < least_wasted):
            best, most, least_wasted = (cand_w, cand_h), kept, wasted
    return best


def anyres_tiles(image, size: int, pinpoints, resample: str = "bicubic") -> list:
    """LLaVA 1.6's view of ``image``, as mtmd's llava-uhd preprocessor makes it from grid
    pinpoints: an image larger than the tower's ``size`` on either side is letterboxed onto
    black at the best pinpoint and cut into ``size`` squares, row by row; then comes the whole
    image stretched to ``size`` x ``size`` (the overview, which mtmd puts after the tiles
    for this projector). An image no larger than the tower gives the overview alone."""
    width, height = image.size
    overview = (
        image if (width, height) == (size, size) else image.resize((size, size), _filter(resample))
    )
    if width <= size and height <= size:
        return [overview]
    grid_w, grid_h = best_resolution(width, height, pinpoints)
    refined = letterbox(image, (grid_w, grid_h), (0, 0, 0), resample)
    tiles = [
        refined.crop((x, y, x + size, y + size))
        for y in range(0, grid_h, size)
        for x in range(0, grid_w, size)
    ]
    return tiles + [overview]


def anyres_pixels(data: bytes, size: int, pinpoints, mean, std) -> list[np.ndarray]:
    """The tower's inputs for each of LLaVA 1.6's tiles of the image (``anyres_tiles``)."""
    return [_planes(tile, mean, std) for tile in anyres_tiles(decode(data), size, pinpoints)]


def _planes(image, mean, std) -> np.ndarray:
    values = np.asarray(image, dtype=np.uint8).astype(np.float32) / np.float32(255.0)
    values = (values - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(values.transpose(2, 0, 1), dtype=np.float32)
