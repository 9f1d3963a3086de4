"""The GGUF writer: round trips through our reader and the gguf package's, atomic output."""

from __future__ import annotations

import hashlib

import gguf
import numpy as np
import pytest

from ollamakit.testing.gguf_factory import byte_level_vocab, make_gguf, tiny_llama
from ollamakit.lib.gguf.constants import ValueType
from ollamakit.lib.gguf.reader import GGUFFile
from ollamakit.lib.gguf.writer import GGUFWriter, float32_to_bf16, infer_value_type

EVERY_TYPE = {
    "u8": (255, ValueType.UINT8),
    "i8": (-128, ValueType.INT8),
    "u16": (65535, ValueType.UINT16),
    "i16": (-32768, ValueType.INT16),
    "u32": (2**32 - 1, ValueType.UINT32),
    "i32": (-(2**31), ValueType.INT32),
    "u64": (2**64 - 1, ValueType.UINT64),
    "i64": (-(2**63), ValueType.INT64),
    "f32": (0.25, ValueType.FLOAT32),
    "f64": (0.1, ValueType.FLOAT64),
    "bool": (True, ValueType.BOOL),
    "str": ("héllo", ValueType.STRING),
    "strs": (["a", "", "ü"], ValueType.STRING),
    "floats": ([1.5, -2.0], ValueType.FLOAT32),
    "i32s": ([-1, 2, 3], ValueType.INT32),
    "bools": ([True, False], ValueType.BOOL),
    "empty": ([], ValueType.UINT32),
    "nested": ([[1, 2], [], [3]], ValueType.UINT16),
    "nested_strings": ([["x"], ["y", "z"]], ValueType.STRING),
}


def test_metadata_round_trip_every_type(tmp_path):
    path = tmp_path / "m.gguf"
    with GGUFWriter(path) as w:
        for key, (value, value_type) in EVERY_TYPE.items():
            w.add(key, value, value_type)
    with GGUFFile.open(path) as g:
        assert g.metadata == {key: value for key, (value, _) in EVERY_TYPE.items()}
        assert g.metadata_types == {key: int(t) for key, (_, t) in EVERY_TYPE.items()}
        # Writing what the reader returned gives the same bytes again.
        again = tmp_path / "again.gguf"
        with GGUFWriter(again) as w:
            w.add_metadata(g.metadata, g.metadata_types)
    assert again.read_bytes() == path.read_bytes()


def test_independent_reader_agrees(tmp_path):
    """The gguf package's own reader parses our output to the same values."""
    path = tiny_llama(tmp_path / "tiny.gguf")
    reference = gguf.GGUFReader(path)
    with GGUFFile.open(path) as g:
        assert [t.name for t in reference.tensors] == [t.name for t in g.tensors]
        for ref_tensor in reference.tensors:
            ours = g.tensor_info(ref_tensor.name)
            assert tuple(int(d) for d in ref_tensor.shape) == ours.shape
            assert int(ref_tensor.tensor_type) == ours.ggml_type
            assert int(ref_tensor.data_offset) == ours.offset
            np.testing.assert_array_equal(
                np.asarray(ref_tensor.data).reshape(-1), g.tensor(ours.name).reshape(-1)
            )
        assert reference.fields["llama.block_count"].contents() == g.metadata["llama.block_count"]
        assert (
            reference.fields["tokenizer.ggml.tokens"].contents()
            == g.metadata["tokenizer.ggml.tokens"]
        )
        assert reference.fields["tokenizer.ggml.merges"].contents() == []


def test_lazy_sources_and_alignment(tmp_path):
    f32 = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    calls = []

    def lazy():
        calls.append(1)
        return f32 * 2

    path = tmp_path / "t.gguf"
    w = GGUFWriter(path, alignment=64)
    w.add_tensor("odd", np.zeros(3, np.float32))
    w.add_tensor("lazy", lazy, "F32", (64, 3))
    assert not calls  # nothing is produced before writing
    w.write()
    assert calls == [1]
    with GGUFFile.open(path) as g:
        assert g.metadata["general.alignment"] == 64 and g.alignment == 64
        assert g.data_offset % 64 == 0 and all(t.offset % 64 == 0 for t in g.tensors)
        np.testing.assert_array_equal(g.tensor("lazy"), f32 * 2)
    with pytest.raises(RuntimeError, match="already written"):
        w.write()


def test_tensor_values_and_types(tmp_path):
    rng = np.random.default_rng(0)
    f32 = rng.standard_normal((3, 64)).astype(np.float32)
    q8 = np.zeros(34, np.uint8)
    q8[0:2] = np.array([0.5], np.float16).view(np.uint8)
    q8[2:34] = np.arange(32, dtype=np.int8).view(np.uint8)
    path = make_gguf(
        tmp_path / "v.gguf",
        {},
        {
            "f32": f32,
            "q8": (q8, "Q8_0", (32,)),
            "as_f16": (f32, "F16", (64, 3)),
            "as_bf16": (f32, "BF16", (64, 3)),
        },
    )
    with GGUFFile.open(path) as g:
        assert [t.type_name for t in g.tensors] == ["F32", "Q8_0", "F16", "BF16"]
        np.testing.assert_array_equal(g.tensor("f32"), f32)
        np.testing.assert_array_equal(g.tensor("q8"), np.arange(32, dtype=np.float32) * 0.5)
        np.testing.assert_array_equal(g.tensor("as_f16"), f32.astype(np.float16).astype(np.float32))
        np.testing.assert_allclose(g.tensor("as_bf16"), f32, rtol=2**-8)
        assert all(t.offset % 32 == 0 for t in g.tensors)


def test_bf16_rounding():
    values = np.array([1.0, 1.00390625, 1.005859375, -3.0, np.inf, np.nan], dtype=np.float32)
    bits = float32_to_bf16(values)
    back = (bits.astype(np.uint32) << 16).view(np.float32)
    assert back[0] == 1.0 and back[1] == 1.0  # a tie rounds to even
    assert back[2] == 1.0078125 and back[3] == -3.0 and back[4] == np.inf and np.isnan(back[5])


def test_atomic_on_failure(tmp_path):
    path = tmp_path / "out.gguf"
    path.write_bytes(b"old")

    def broken():
        raise RuntimeError("source failed")

    w = GGUFWriter(path)
    w.add_tensor("ok", np.zeros(32, np.float32))
    w.add_tensor("bad", broken, "F32", (32,))
    with pytest.raises(RuntimeError):
        w.write()
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.gguf"]  # no temporary left behind


def test_context_manager_discards_on_error(tmp_path):
    path = tmp_path / "out.gguf"
    with pytest.raises(KeyError):
        with GGUFWriter(path) as w:
            w.add("a", 1)
            raise KeyError("boom")
    assert not path.exists()


def test_invalid_input_is_refused(tmp_path):
    w = GGUFWriter(tmp_path / "x.gguf")
    with pytest.raises(ValueError, match="does not fit UINT8"):
        w.add("k", 256, ValueType.UINT8)
    with pytest.raises(ValueError, match="expected a string"):
        w.add("k", 1, ValueType.STRING)
    with pytest.raises(ValueError, match="values do not fit INT8"):
        w.add("k", [1, 200], ValueType.INT8)
    with pytest.raises(ValueError, match="empty array"):
        w.add("k", [])
    with pytest.raises(ValueError, match="power of two"):
        w.add("general.alignment", 48, ValueType.UINT32)
    with pytest.raises(ValueError, match="block size"):
        w.add_tensor("t", b"\x00" * 18, "Q4_0", (16,))
    with pytest.raises(ValueError, match="unknown ggml type"):
        w.add_tensor("t", b"\x00" * 4, 99, (1,))
    with pytest.raises(ValueError, match="without quantizing"):
        w.add_tensor("t", np.zeros(32, np.float32), "Q4_0", (32,))
        w.write()
    w = GGUFWriter(tmp_path / "y.gguf")
    w.add_tensor("t", b"\x00" * 10, "F32", (4,))
    with pytest.raises(ValueError, match="needs 16 bytes, got 10"):
        w.write()
    with pytest.raises(ValueError, match="duplicate tensor name"):
        w2 = GGUFWriter(tmp_path / "z.gguf")
        w2.add_tensor("t", np.zeros(4, np.float32))
        w2.add_tensor("t", np.zeros(4, np.float32))


def test_value_type_inference():
    assert infer_value_type(5) == ValueType.UINT32
    assert infer_value_type(-5) == ValueType.INT32
    assert infer_value_type(2**40) == ValueType.UINT64
    assert infer_value_type(-(2**40)) == ValueType.INT64
    assert infer_value_type(1.0) == ValueType.FLOAT32
    assert infer_value_type(True) == ValueType.BOOL
    assert infer_value_type("s") == ValueType.STRING
    assert infer_value_type([1, 2]) == ValueType.INT32
    assert infer_value_type([[0.5]]) == ValueType.FLOAT32


def test_tiny_llama_is_a_consistent_model(tmp_path):
    with GGUFFile.open(tiny_llama(tmp_path / "t.gguf", n_layers=3)) as g:
        assert g.architecture == "llama" and g.file_type_name == "F32"
        n_vocab = len(g.metadata["tokenizer.ggml.tokens"])
        assert n_vocab == 259 == g.metadata["llama.vocab_size"]
        assert g.tensor_info("token_embd.weight").shape == (64, n_vocab)
        assert g.tensor_info("blk.2.attn_k.weight").shape == (64, 32)
        assert g.tensor_info("blk.2.ffn_down.weight").shape == (128, 64)
        assert len(g.tensors) == 3 * 9 + 3
        assert g.metadata_types["llama.block_count"] == ValueType.UINT32
    assert len(set(byte_level_vocab())) == 256
    with GGUFFile.open(tiny_llama(tmp_path / "h.gguf", dtype=np.float16)) as g:
        assert g.file_type_name == "F16" and g.tensor_info("output.weight").type_name == "F16"


@pytest.mark.real_model
def test_real_model_round_trip_is_byte_identical(tmp_path):
    from ollamakit.testing import models

    source = models.smollm2_q4_1()
    target = tmp_path / "copy.gguf"
    with GGUFFile.open(source) as src, GGUFWriter(target, alignment=src.alignment) as w:
        w.add_metadata(src.metadata, src.metadata_types)
        for t in src.tensors:
            w.add_tensor(t.name, src.raw(t.name), t.ggml_type, t.shape)
    with GGUFFile.open(source) as a, GGUFFile.open(target) as b:
        assert a.metadata == b.metadata and a.metadata_types == b.metadata_types
        assert [(t.name, t.shape, t.ggml_type) for t in a.tensors] == [
            (t.name, t.shape, t.ggml_type) for t in b.tensors
        ]
        for t in a.tensors:
            assert np.array_equal(a.raw(t.name), b.raw(t.name))
    assert _sha256(source) == _sha256(target)


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()
