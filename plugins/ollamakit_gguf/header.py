"""A GGUF file's ``ModelHeader`` (hook ``read_model_header``): the facts create, ``/api/show``
and the engines' checks read, from the strict reader's parsed header."""

from __future__ import annotations

from functools import cached_property

from ollamakit.lib.gguf import GGUFFile, ValueType, looks_like_gguf


class GGUFHeader:
    """The parsed header of a GGUF file, closed again: metadata and tensor list stay."""

    format = "gguf"

    def __init__(self, gguf: GGUFFile):
        self.gguf = gguf  # for this plugin's own checks (an adapter against its base)

    @property
    def architecture(self) -> str:
        return self.gguf.architecture or ""

    @property
    def parameter_count(self) -> int:
        return self.gguf.parameter_count

    @property
    def file_type(self) -> str:
        return self.gguf.file_type_name

    @property
    def metadata(self) -> dict:
        return self.gguf.metadata

    @cached_property
    def float32_keys(self) -> frozenset[str]:
        return frozenset(
            key for key, kind in self.gguf.metadata_types.items() if kind == ValueType.FLOAT32
        )

    @property
    def chat_template(self) -> str | None:
        text = self.gguf.metadata.get("tokenizer.chat_template")
        return text if isinstance(text, str) and text.strip() else None

    @property
    def tensors(self):
        return self.gguf.tensors

    def __repr__(self) -> str:
        return f"<GGUFHeader {self.architecture} {len(self.tensors)} tensors>"


def read_gguf_header(path) -> GGUFHeader | None:
    """The header of the file at ``path`` when it is a GGUF, else None; a damaged GGUF raises
    ``InvalidModelFile``."""
    if not looks_like_gguf(path):
        return None
    with GGUFFile.open(path) as gguf:
        return GGUFHeader(gguf)


def read_gguf_header_from(file, size: int) -> GGUFHeader | None:
    """The header of a GGUF of ``size`` bytes read from ``file`` (at its start), reading only
    the header; None when it is not a GGUF or its header is over the reader's bound."""
    if not looks_like_gguf(file):
        return None
    gguf = GGUFFile.read_header(file, size)
    return GGUFHeader(gguf) if gguf is not None else None
