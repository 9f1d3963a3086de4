"""Byte-level GGUF builder for crafting malformed files: every field can be set to any value."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

U32, U64 = struct.Struct("<I"), struct.Struct("<Q")


def string(text: str | bytes, length: int | None = None) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return U64.pack(len(data) if length is None else length) + data


def kv(key: str | bytes, value_type: int, payload: bytes) -> bytes:
    return string(key) + U32.pack(value_type) + payload


def kv_u32(key: str, value: int) -> bytes:
    return kv(key, 4, U32.pack(value))


def kv_str(key: str, value: str) -> bytes:
    return kv(key, 8, string(value))


def tensor_info(
    name: str, shape, ggml_type: int = 0, offset: int = 0, n_dims: int | None = None
) -> bytes:
    dims = b"".join(U64.pack(d) for d in shape)
    return (
        string(name)
        + U32.pack(len(shape) if n_dims is None else n_dims)
        + dims
        + U32.pack(ggml_type)
        + U64.pack(offset)
    )


@dataclass
class Craft:
    kvs: list[bytes] = field(default_factory=list)
    infos: list[bytes] = field(default_factory=list)
    data: bytes = b""
    version: int = 3
    magic: bytes = b"GGUF"
    tensor_count: int | None = None
    kv_count: int | None = None
    alignment: int = 32

    def header(self) -> bytes:
        n_tensors = len(self.infos) if self.tensor_count is None else self.tensor_count
        n_kv = len(self.kvs) if self.kv_count is None else self.kv_count
        return (
            self.magic
            + U32.pack(self.version)
            + U64.pack(n_tensors)
            + U64.pack(n_kv)
            + b"".join(self.kvs)
            + b"".join(self.infos)
        )

    def build(self) -> bytes:
        head = self.header()
        padding = -len(head) % self.alignment
        return head + bytes(padding) + self.data

    def write(self, path) -> str:
        path.write_bytes(self.build())
        return str(path)


def valid_craft() -> Craft:
    """A small valid file: a few kinds of metadata and two F32 tensors."""
    return Craft(
        kvs=[
            kv_str("general.architecture", "llama"),
            kv_u32("llama.block_count", 2),
            kv(
                "tokenizer.ggml.tokens",
                9,
                U32.pack(8) + U64.pack(3) + string("a") + string("bé") + string("<s>"),
            ),
            kv(
                "tokenizer.ggml.scores",
                9,
                U32.pack(6) + U64.pack(2) + struct.pack("<2f", 0.5, -1.0),
            ),
        ],
        infos=[tensor_info("a.weight", (4, 2), 0, 0), tensor_info("b.weight", (8,), 0, 32)],
        data=struct.pack("<8f", *range(8)) + struct.pack("<8f", *range(8, 16)),
    )
