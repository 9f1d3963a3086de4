"""The GGUF reader on valid and crafted (malformed) files: every problem is a clear 400."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from gguf_crafting import U32, U64, Craft, kv, kv_str, kv_u32, string, tensor_info, valid_craft

from ollamakit.errors import InvalidModelFile
from ollamakit.headers import format_parameter_size
from ollamakit.lib.gguf.reader import MAX_ARRAY_LENGTH, GGUFFile, looks_like_gguf


def open_bytes(tmp_path, data: bytes) -> GGUFFile:
    path = tmp_path / "m.gguf"
    path.write_bytes(data)
    return GGUFFile.open(path)


def rejects(tmp_path, craft_or_bytes, *fragments: str) -> str:
    data = craft_or_bytes if isinstance(craft_or_bytes, bytes) else craft_or_bytes.build()
    with pytest.raises(InvalidModelFile) as info:
        open_bytes(tmp_path, data).close()
    message = str(info.value)
    assert info.value.status == 400
    assert message.startswith("invalid GGUF: ")
    for fragment in fragments:
        assert fragment in message, message
    return message


# -- valid files -----------------------------------------------------------------------------------


def test_valid_file_parses(tmp_path):
    with open_bytes(tmp_path, valid_craft().build()) as g:
        assert g.version == 3 and g.alignment == 32
        assert g.architecture == "llama"
        assert g.metadata["llama.block_count"] == 2
        assert g.metadata["tokenizer.ggml.tokens"] == ["a", "bé", "<s>"]
        assert g.metadata["tokenizer.ggml.scores"] == [0.5, -1.0]
        assert g.metadata_types == {
            "general.architecture": 8,
            "llama.block_count": 4,
            "tokenizer.ggml.tokens": 8,
            "tokenizer.ggml.scores": 6,
        }
        assert [t.name for t in g.tensors] == ["a.weight", "b.weight"]
        a = g.tensor_info("a.weight")
        assert (a.shape, a.type_name, a.nbytes, a.n_elements) == ((4, 2), "F32", 32, 8)
        assert a.offset == g.data_offset and g.data_offset % 32 == 0
        assert g.tensor_info("b.weight").offset == g.data_offset + 32
        np.testing.assert_array_equal(
            g.tensor("a.weight"), np.arange(8, dtype=np.float32).reshape(2, 4)
        )
        np.testing.assert_array_equal(
            g.raw("b.weight").view(np.float32), np.arange(8, 16, dtype=np.float32)
        )
        assert g.parameter_count == 16
        assert g.file_type_name == "unknown"  # no general.file_type
        with pytest.raises(KeyError):
            g.tensor_info("missing")


def test_version_2_and_every_value_type(tmp_path):
    craft = Craft(
        version=2,
        kvs=[
            kv("u8", 0, b"\xff"),
            kv("i8", 1, b"\xff"),
            kv("u16", 2, struct.pack("<H", 65535)),
            kv("i16", 3, struct.pack("<h", -2)),
            kv("u32", 4, U32.pack(7)),
            kv("i32", 5, struct.pack("<i", -7)),
            kv("f32", 6, struct.pack("<f", 1.5)),
            kv("bool", 7, b"\x01"),
            kv("str", 8, string("x")),
            kv("u64", 10, U64.pack(2**64 - 1)),
            kv("i64", 11, struct.pack("<q", -(2**63))),
            kv("f64", 12, struct.pack("<d", 0.1)),
            kv("bools", 9, U32.pack(7) + U64.pack(2) + b"\x00\x01"),
            kv(
                "nested",
                9,
                U32.pack(9)
                + U64.pack(2)
                + U32.pack(5)
                + U64.pack(1)
                + struct.pack("<i", -1)
                + U32.pack(5)
                + U64.pack(0),
            ),
            kv("empty", 9, U32.pack(8) + U64.pack(0)),
        ],
    )
    with open_bytes(tmp_path, craft.build()) as g:
        assert g.version == 2
        assert g.metadata == {
            "u8": 255,
            "i8": -1,
            "u16": 65535,
            "i16": -2,
            "u32": 7,
            "i32": -7,
            "f32": 1.5,
            "bool": True,
            "str": "x",
            "u64": 2**64 - 1,
            "i64": -(2**63),
            "f64": 0.1,
            "bools": [False, True],
            "nested": [[-1], []],
            "empty": [],
        }
        assert g.metadata_types["nested"] == 5 and g.metadata_types["empty"] == 8
        assert g.tensors == [] and g.parameter_count == 0


def test_custom_alignment_and_file_type(tmp_path):
    craft = valid_craft()
    craft.kvs += [kv_u32("general.alignment", 64), kv_u32("general.file_type", 15)]
    craft.alignment = 64
    craft.infos = [tensor_info("a.weight", (4, 2), 0, 0), tensor_info("b.weight", (8,), 0, 64)]
    craft.data = bytes(64) + bytes(32)
    with open_bytes(tmp_path, craft.build()) as g:
        assert g.alignment == 64 and g.data_offset % 64 == 0
        assert g.file_type_name == "Q4_K_M"


def test_raw_views_survive_close(tmp_path):
    g = open_bytes(tmp_path, valid_craft().build())
    view = g.raw("a.weight")
    g.close()
    assert view.view(np.float32)[3] == 3.0
    with pytest.raises(ValueError):
        g.raw("a.weight")


def test_format_parameter_size_matches_ollama():
    cases = {
        0: "0",
        999: "999",
        1500: "2K",
        1_000_000: "1M",
        125_000_000: "125M",
        134_515_008: "134.52M",
        500_500_000: "500.50M",
        1_000_000_000: "1B",
        2_850_000_000: "2.9B",
        3_212_749_888: "3.2B",
        7_000_000_000: "7B",
    }
    for n, text in cases.items():
        assert format_parameter_size(n) == text


def test_looks_like_gguf(tmp_path):
    (tmp_path / "a").write_bytes(b"GGUF\x03\x00\x00\x00")
    (tmp_path / "b").write_bytes(b"PK\x03\x04")
    assert looks_like_gguf(tmp_path / "a") and not looks_like_gguf(tmp_path / "b")
    assert not looks_like_gguf(tmp_path / "missing")


# -- malformed files -------------------------------------------------------------------------------


def test_truncated_at_every_byte(tmp_path):
    """Cut anywhere before the last tensor's end: always InvalidModelFile, never another error."""
    data = valid_craft().build()
    for length in range(len(data)):
        path = tmp_path / f"t{length}.gguf"
        path.write_bytes(data[:length])
        with pytest.raises(InvalidModelFile):
            GGUFFile.open(path).close()


def test_random_corruption_never_escapes(tmp_path):
    """Flipped header bytes either still parse or fail cleanly."""
    data = valid_craft().build()
    header_size = len(valid_craft().header())
    rng = np.random.default_rng(1)
    path = tmp_path / "c.gguf"
    for _ in range(400):
        corrupt = bytearray(data)
        for at in rng.integers(0, header_size, size=rng.integers(1, 4)):
            corrupt[at] = int(rng.integers(0, 256))
        path.write_bytes(bytes(corrupt))
        try:
            GGUFFile.open(path).close()
        except InvalidModelFile:
            pass


def test_too_short_and_empty(tmp_path):
    rejects(tmp_path, b"", "too short")
    rejects(tmp_path, b"GGUF\x03\x00\x00\x00", "too short")


def test_bad_magic(tmp_path):
    rejects(tmp_path, Craft(magic=b"GGML"), "bad magic")


@pytest.mark.parametrize(
    "version, fragment",
    [(1, "unsupported version 1"), (4, "unsupported version 4"), (0x03000000, "big-endian")],
)
def test_unsupported_versions(tmp_path, version, fragment):
    rejects(tmp_path, Craft(version=version), fragment)


def test_absurd_tensor_count(tmp_path):
    rejects(tmp_path, Craft(tensor_count=2**63), "tensor count", "more than the file can hold")


def test_absurd_kv_count(tmp_path):
    rejects(tmp_path, Craft(kv_count=2**64 - 1), "metadata count", "more than the file can hold")


def test_kv_count_larger_than_present(tmp_path):
    craft = valid_craft()
    craft.kv_count = 5  # one more than the file has: the tensor info is read as a kv and fails
    rejects(tmp_path, craft)


def test_string_length_past_eof(tmp_path):
    rejects(
        tmp_path,
        Craft(kvs=[string("general.name") + U32.pack(8) + string("x", length=2**40)]),
        "metadata 'general.name' length 1099511627776 runs past the end of the file",
    )


def test_key_length_past_eof(tmp_path):
    rejects(
        tmp_path,
        Craft(kvs=[U64.pack(2**64 - 1) + b"abc" + bytes(20)]),
        "metadata key 0",
        "past the end",
    )


def test_unknown_value_type(tmp_path):
    rejects(
        tmp_path, Craft(kvs=[kv("x", 13, b"\x00" * 8)]), "metadata 'x' has unknown value type 13"
    )


def test_unknown_array_element_type(tmp_path):
    rejects(
        tmp_path,
        Craft(kvs=[kv("x", 9, U32.pack(42) + U64.pack(1) + bytes(8))]),
        "unknown element type 42",
    )


def test_array_length_past_eof(tmp_path):
    for element_type in (6, 8, 9):  # numbers, strings, arrays
        payload = U32.pack(element_type) + U64.pack(1 << 20) + bytes(64)
        rejects(
            tmp_path,
            Craft(kvs=[kv("x", 9, payload)]),
            "metadata 'x' has 1048576",
            "more than the file holds",
        )
    rejects(
        tmp_path,
        Craft(kvs=[kv("x", 9, U32.pack(6) + U64.pack(2**61) + bytes(8))]),
        "more than the limit",
    )


def test_array_longer_than_the_cap(tmp_path):
    payload = U32.pack(0) + U64.pack(MAX_ARRAY_LENGTH + 1) + bytes(MAX_ARRAY_LENGTH + 1)
    rejects(tmp_path, Craft(kvs=[kv("x", 9, payload)]), "more than the limit")


def test_string_in_array_past_eof(tmp_path):
    payload = U32.pack(8) + U64.pack(2) + string("ok") + string("bad", length=1000)
    rejects(
        tmp_path,
        Craft(kvs=[kv("tokens", 9, payload)]),
        "a string in metadata 'tokens'",
        "past the end",
    )


def test_deeply_nested_arrays(tmp_path):
    payload = (U32.pack(9) + U64.pack(1)) * 50 + U32.pack(4) + U64.pack(0)
    rejects(tmp_path, Craft(kvs=[kv("deep", 9, payload)]), "nests arrays deeper")


def test_invalid_utf8(tmp_path):
    rejects(
        tmp_path, Craft(kvs=[kv(b"\xff\xfe", 4, U32.pack(1))]), "metadata key 0 is not valid UTF-8"
    )
    rejects(
        tmp_path, Craft(kvs=[kv("x", 8, string(b"\xc3\x28"))]), "metadata 'x' is not valid UTF-8"
    )
    payload = U32.pack(8) + U64.pack(2) + string("ok") + string(b"\xed\xa0\x80")  # a lone surrogate
    rejects(
        tmp_path,
        Craft(kvs=[kv("tokens", 9, payload)]),
        "string 1 of metadata 'tokens' is not valid UTF-8",
    )


def test_bad_bool(tmp_path):
    rejects(tmp_path, Craft(kvs=[kv("b", 7, b"\x02")]), "bool value 2")
    rejects(
        tmp_path,
        Craft(kvs=[kv("b", 9, U32.pack(7) + U64.pack(2) + b"\x01\x05")]),
        "bool value other than 0 or 1",
    )


def test_duplicate_key(tmp_path):
    rejects(
        tmp_path, Craft(kvs=[kv_u32("a.b", 1), kv_u32("a.b", 2)]), "duplicate metadata key 'a.b'"
    )


def test_empty_key(tmp_path):
    rejects(tmp_path, Craft(kvs=[kv_u32("", 1)]), "metadata key 0 is empty")


@pytest.mark.parametrize(
    "alignment, fragment", [(0, "not a power of two"), (24, "not a power of two")]
)
def test_bad_alignment(tmp_path, alignment, fragment):
    rejects(tmp_path, Craft(kvs=[kv_u32("general.alignment", alignment)]), fragment)


def test_alignment_of_wrong_type(tmp_path):
    rejects(
        tmp_path,
        Craft(kvs=[kv_str("general.alignment", "32")]),
        "general.alignment must be a uint32",
    )


def test_unknown_tensor_type(tmp_path):
    craft = valid_craft()
    craft.infos[0] = tensor_info("a.weight", (4, 2), 99, 0)
    rejects(tmp_path, craft, "tensor 'a.weight' has unknown type 99")
    craft.infos[0] = tensor_info("a.weight", (4, 2), 4, 0)  # Q4_2: removed from ggml long ago
    rejects(tmp_path, craft, "unknown type 4")


def test_tensor_offset_out_of_bounds(tmp_path):
    craft = valid_craft()
    craft.infos[1] = tensor_info("b.weight", (8,), 0, 2**40)
    rejects(tmp_path, craft, "tensor 'b.weight' data runs past the end of the file")


def test_tensor_offset_overflowing(tmp_path):
    craft = valid_craft()
    craft.infos[1] = tensor_info("b.weight", (8,), 0, 2**64 - 32)
    rejects(tmp_path, craft, "data runs past the end of the file")


def test_tensor_data_past_end(tmp_path):
    craft = valid_craft()
    craft.data = craft.data[:-1]
    rejects(tmp_path, craft, "tensor 'b.weight' data runs past the end of the file")


def test_misaligned_offset(tmp_path):
    craft = valid_craft()
    craft.infos[1] = tensor_info("b.weight", (8,), 0, 16)
    rejects(tmp_path, craft, "tensor 'b.weight' offset 16 is not a multiple of the alignment 32")


def test_overlapping_tensors(tmp_path):
    craft = valid_craft()
    craft.infos = [tensor_info("a.weight", (16,), 0, 0), tensor_info("b.weight", (8,), 0, 32)]
    rejects(tmp_path, craft, "tensors 'a.weight' and 'b.weight' overlap")
    craft.infos = [tensor_info("a.weight", (8,), 0, 32), tensor_info("b.weight", (8,), 0, 32)]
    rejects(tmp_path, craft, "overlap")


@pytest.mark.parametrize("shape", [(0, 2), (4, 0), (2**64 - 1,), (2**63,)])
def test_zero_or_negative_dims(tmp_path, shape):
    craft = valid_craft()
    craft.infos[0] = tensor_info("a.weight", shape, 0, 0)
    rejects(tmp_path, craft, "tensor 'a.weight' has invalid dimension")


def test_dimension_product_overflow(tmp_path):
    craft = valid_craft()
    craft.infos[0] = tensor_info("a.weight", (2**40, 2**40), 0, 0)
    rejects(tmp_path, craft, "overflows the element count")


@pytest.mark.parametrize("n_dims", [0, 5, 2**32 - 1])
def test_bad_dimension_count(tmp_path, n_dims):
    craft = valid_craft()
    craft.infos[0] = tensor_info("a.weight", (4, 2), 0, 0, n_dims=n_dims)
    rejects(tmp_path, craft, "tensor 'a.weight' has", "dimensions")


def test_row_not_multiple_of_block(tmp_path):
    craft = valid_craft()
    craft.infos[0] = tensor_info(
        "a.weight", (16, 1), 2, 0
    )  # Q4_0 rows hold whole 32-element blocks
    rejects(tmp_path, craft, "row length 16 is not a multiple of the Q4_0 block size 32")


def test_duplicate_tensor_name(tmp_path):
    craft = valid_craft()
    craft.infos[1] = tensor_info("a.weight", (8,), 0, 32)
    rejects(tmp_path, craft, "duplicate tensor name 'a.weight'")


def test_empty_tensor_name(tmp_path):
    craft = valid_craft()
    craft.infos[0] = tensor_info("", (4, 2), 0, 0)
    rejects(tmp_path, craft, "tensor 0 has an empty name")
