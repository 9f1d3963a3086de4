"""The strict safetensors reader: agrees with the reference library on valid files and refuses
every kind of malformed header with a 400 (``InvalidModelFile``)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file

from ollamakit.errors import InvalidModelFile
from ollamakit_safetensors.reader import SafetensorsFile

from safetensors_crafting import raw_file, write_tensors


def test_reads_what_the_reference_library_writes(tmp_path):
    rng = np.random.default_rng(1)
    tensors = {
        "a": rng.standard_normal((3, 5)).astype(np.float32),
        "b": rng.standard_normal((7,)).astype(np.float16),
        "c": np.arange(6, dtype=np.int64).reshape(2, 3),
    }
    path = tmp_path / "m.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt"})
    with SafetensorsFile.open(path) as st:
        assert set(st.tensors) == {"a", "b", "c"}
        assert st.metadata == {"format": "pt"}
        np.testing.assert_array_equal(st.raw("a"), tensors["a"])
        np.testing.assert_array_equal(st.raw("b"), tensors["b"])
        np.testing.assert_array_equal(st.raw("c"), tensors["c"])
        assert st.array("b").dtype == np.float32


def test_bfloat16_widens_exactly(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 1e-3, 65504.0], dtype=np.float32)
    path = write_tensors(tmp_path / "m.safetensors", {"w": values}, bf16=("w",))
    with SafetensorsFile.open(path) as st:
        assert st.tensors["w"].dtype == "BF16"
        widened = st.array("w")
    bits = values.view(np.uint32)
    expected = (
        (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)
    )
    np.testing.assert_array_equal(widened, expected)


def _entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


HOSTILE = {
    "not json": (b"{not json}", bytes(8)),
    "not an object": (b"[1, 2, 3]", b""),
    "duplicate key": (
        b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
        b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}',
        bytes(4),
    ),
    "unknown dtype": ({"a": _entry(dtype="Q4")}, bytes(8)),
    "shape and size disagree": ({"a": _entry(shape=(3,))}, bytes(8)),
    "negative offset": ({"a": _entry(offsets=(-8, 0))}, bytes(8)),
    "offsets reversed": ({"a": _entry(shape=(0,), offsets=(8, 0))}, bytes(8)),
    "beyond the data": ({"a": _entry(offsets=(8, 16))}, bytes(8)),
    "overlap": ({"a": _entry(), "b": _entry(offsets=(4, 12))}, bytes(12)),
    "gap": ({"a": _entry(), "b": _entry(offsets=(12, 20))}, bytes(20)),
    "trailing bytes": ({"a": _entry()}, bytes(9)),
    "float shape": ({"a": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}, bytes(8)),
    "extra field": ({"a": {**_entry(), "extra": 1}}, bytes(8)),
    "bad metadata": ({"__metadata__": {"k": 1}, "a": _entry()}, bytes(8)),
    "too many dims": ({"a": _entry(shape=(1,) * 9 + (2,))}, bytes(8)),
    "list dtype": ({"a": {**_entry(), "dtype": ["F32"]}}, bytes(8)),
    "object dtype": ({"a": {**_entry(), "dtype": {"F32": 1}}}, bytes(8)),
    "null dtype": ({"a": {**_entry(), "dtype": None}}, bytes(8)),
    "string shape": ({"a": {**_entry(), "shape": "2"}}, bytes(8)),
    "object shape": ({"a": {**_entry(), "shape": {"0": 2}}}, bytes(8)),
    "nested shape": ({"a": {**_entry(), "shape": [[2]]}}, bytes(8)),
    "object offsets": ({"a": {**_entry(), "data_offsets": {"0": 0, "1": 8}}}, bytes(8)),
    "string offsets": ({"a": {**_entry(), "data_offsets": ["0", "8"]}}, bytes(8)),
    "entry is a list": ({"a": [_entry()]}, bytes(8)),
    "metadata is a list": ({"__metadata__": [["k", "v"]], "a": _entry()}, bytes(8)),
    "metadata value is an object": ({"__metadata__": {"k": {"v": 1}}, "a": _entry()}, bytes(8)),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_headers_are_refused(tmp_path, case):
    header, data = HOSTILE[case]
    path = raw_file(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(InvalidModelFile) as info:
        SafetensorsFile.open(path)
    assert info.value.status == 400


def test_a_huge_field_is_not_echoed_whole(tmp_path):
    path = raw_file(
        tmp_path / "bad.safetensors", {"a": {**_entry(), "dtype": ["F32"] * 100_000}}, bytes(8)
    )
    with pytest.raises(InvalidModelFile) as info:
        SafetensorsFile.open(path)
    assert "unknown dtype" in info.value.message and len(info.value.message) < 200


@pytest.mark.parametrize("length", [0, 1, 1 << 40, (1 << 64) - 1])
def test_header_length_is_bounded_by_the_file(tmp_path, length):
    path = raw_file(tmp_path / "bad.safetensors", {"a": _entry()}, bytes(8), length=length)
    with pytest.raises(InvalidModelFile):
        SafetensorsFile.open(path)


def test_short_and_empty_files(tmp_path):
    for content in (b"", b"\x01\x02", struct.pack("<Q", 2)):
        path = tmp_path / "short.safetensors"
        path.write_bytes(content)
        with pytest.raises(InvalidModelFile):
            SafetensorsFile.open(path)


def test_a_pickle_is_not_read(tmp_path):
    import pickle

    path = tmp_path / "pytorch_model.safetensors"
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    with pytest.raises(InvalidModelFile):
        SafetensorsFile.open(path)


def test_empty_tensor_and_empty_file_of_tensors(tmp_path):
    path = raw_file(tmp_path / "e.safetensors", {"z": _entry(shape=(0, 4), offsets=(0, 0))})
    with SafetensorsFile.open(path) as st:
        assert st.raw("z").shape == (0, 4)
    header = json.dumps({}).encode()
    (tmp_path / "n.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    with SafetensorsFile.open(tmp_path / "n.safetensors") as st:
        assert st.tensors == {}
