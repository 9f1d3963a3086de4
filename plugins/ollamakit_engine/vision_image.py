"""Image bytes to a vision tower's input, as llama.cpp's mtmd prepares them: decoded to RGB
(alpha dropped, not composited, as stb_image does), letterboxed at the tower's size with the
aspect ratio kept (gemma3: onto black with Pillow's bilinear filter; LLaVA: onto grey-brown
with the bicubic one; mtmd's resampler reproduces Pillow's), then scaled to [0, 1] and
normalised by the projector's mean and std.

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


def letterbox(image, size: int, pad=(0, 0, 0), resample: str = "bilinear"):
    """``image`` scaled to fit ``size`` x ``size`` with its aspect ratio kept (each side rounded
    up, as mtmd's ``PAD_CEIL``), centred on ``pad``."""
    from PIL import Image

    width, height = image.size
    if (width, height) == (size, size):
        return image
    # float32 arithmetic, as mtmd computes the scale
    scale = min(np.float32(size) / np.float32(width), np.float32(size) / np.float32(height))
    new_w = min(int(np.ceil(np.float32(width) * scale)), size)
    new_h = min(int(np.ceil(np.float32(height) * scale)), size)
    filter_ = Image.BICUBIC if resample == "bicubic" else Image.BILINEAR
    resized = image if (new_w, new_h) == (width, height) else image.resize((new_w, new_h), filter_)
    canvas = Image.new("RGB", (size, size), tuple(pad))
    canvas.paste(resized, ((size - new_w) // 2, (size - new_h) // 2))
    return canvas


def pixels(
    data: bytes, size: int, mean, std, pad=(0, 0, 0), resample: str = "bilinear"
) -> np.ndarray:
    """The tower's input: float32 (3, size, size), channel planes, normalised."""
    image = letterbox(decode(data), size, pad, resample)
    values = np.asarray(image, dtype=np.uint8).astype(np.float32) / np.float32(255.0)
    values = (values - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(values.transpose(2, 0, 1), dtype=np.float32)
