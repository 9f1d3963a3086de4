"""Images in a prompt: the contract between the API layer, which places them, and an engine,
which encodes them and runs them.

A runner that can see images has a ``vision`` attribute (absent or None otherwise) with:

- ``encode(data: bytes) -> EncodedImage``: decode, preprocess and encode one image; a bad image
  raises ``BadRequest``;
- ``begin`` and ``end``: the text around an image's rows in the prompt (gemma3's
  ``<start_of_image>``/``<end_of_image>``; empty when the model has none);
- ``tokens_per_image``: the most rows an image takes, known before it is encoded (LLaVA 1.6
  takes fewer for a small image: its rows depend on the image's size).

The API layer puts an image into the prompt as ``ImageToken``s, one per embedding row, among the
ordinary token ids. They pass through the scheduler as tokens do; the engine reads each one's
embedding row in place of a token embedding. Two image tokens are equal only when they are the
same row of images with the same content, so the prefix cache reuses an image's rows by what
the image is, and a follow-up turn does not evaluate it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(eq=False)
class EncodedImage:
    """One image's embeddings (rows, model width, float32) and its content digest;
    ``bidirectional``: its rows attend to each other both ways (gemma3), not causally (LLaVA)."""

    digest: str
    embeddings: Any
    bidirectional: bool = False


class ImageToken(int):
    """One embedding row of an image in a prompt's token list. Its integer value is a
    placeholder id within the vocabulary, so code that only counts or stores tokens needs no
    special case."""

    image: EncodedImage
    row: int

    def __new__(cls, placeholder: int, image: EncodedImage, row: int):
        token = super().__new__(cls, placeholder)
        token.image = image
        token.row = row
        return token

    @property
    def embedding(self):
        return self.image.embeddings[self.row]

    @property
    def first(self) -> bool:
        return self.row == 0

    def __eq__(self, other):
        return (
            isinstance(other, ImageToken)
            and other.row == self.row
            and other.image.digest == self.image.digest
        )

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash((self.image.digest, self.row))

    def __repr__(self):
        return f"ImageToken({self.image.digest[:19]}, {self.row})"

    def __reduce__(self):  # a plain id once it leaves the process (JSON, pickling)
        return int, (int(self),)


def image_tokens(image: EncodedImage, placeholder: int = 0) -> list[ImageToken]:
    return [ImageToken(placeholder, image, row) for row in range(len(image.embeddings))]


def whole_images(tokens, limit: int) -> int:
    """How many of ``tokens`` to take when at most ``limit`` fit, without ending inside an
    image (its rows attend to each other, so they are evaluated together). 0 when the first
    image does not fit whole; the caller then takes ``limit`` if nothing else can go first."""
    if limit >= len(tokens):
        return len(tokens)
    cut = max(limit, 0)
    while cut > 0 and isinstance(tokens[cut], ImageToken) and not tokens[cut].first:
        cut -= 1
    return cut
