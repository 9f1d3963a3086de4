"""``GGUFFile.read_header``: a GGUF's header read from the start of a file object, no further
than the header reaches (a blob in a remote store is read by ranges), with the same checks and
the same answers as the memory-mapped reader."""

from __future__ import annotations

import io

import numpy as np
import pytest
from gguf_crafting import valid_craft

from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf import GGUFFile
from ollamakit.lib.gguf import reader as gguf_reader
from ollamakit.testing.gguf_factory import make_gguf


class CountingReader(io.BytesIO):
    """A file object that counts the bytes read from it."""

    bytes_read = 0

    def read(self, n=-1):
        data = super().read(n)
        self.bytes_read += len(data)
        return data


def header_of(data: bytes, limit: int = gguf_reader.MAX_HEADER_READ):
    source = CountingReader(data)
    return GGUFFile.read_header(source, len(data), limit), source.bytes_read


@pytest.fixture
def big_model(tmp_path):
    """A model whose header (an 80,000-token vocabulary) is over the first read, with more
    tensor data after it."""
    tokens = [f"token-{i:05d}" for i in range(80_000)]
    weights = np.zeros((2048, 1024), dtype=np.float32)  # 8 MiB of data
    return make_gguf(
        tmp_path / "big.gguf",
        {"general.architecture": "llama", "tokenizer.ggml.tokens": tokens},
        {"token_embd.weight": weights, "output.weight": weights[:16]},
    ).read_bytes()


def test_the_header_matches_the_mapped_reader_and_reads_no_tensor_data(tmp_path, big_model):
    header, read = header_of(big_model)
    path = tmp_path / "m.gguf"
    path.write_bytes(big_model)
    with GGUFFile.open(path) as mapped:
        assert header.metadata == mapped.metadata
        assert header.metadata_types == mapped.metadata_types
        assert header.tensors == mapped.tensors
        assert header.parameter_count == mapped.parameter_count
        assert read < mapped.data_offset + gguf_reader.FIRST_HEADER_READ * 4
        assert read > gguf_reader.FIRST_HEADER_READ  # it had to read on past the first read
        assert read < len(big_model) // 2
    with pytest.raises(ValueError):
        header.raw("output.weight")  # no tensor data is held


def test_a_small_file_is_read_whole_once(tmp_path):
    data = valid_craft().build()
    header, read = header_of(data)
    assert read == len(data)
    assert header.architecture == "llama" and [t.name for t in header.tensors] == [
        "a.weight",
        "b.weight",
    ]


def test_a_header_over_the_limit_is_not_read(big_model):
    header, read = header_of(big_model, limit=gguf_reader.FIRST_HEADER_READ)
    assert header is None and read == gguf_reader.FIRST_HEADER_READ


@pytest.mark.parametrize("cut", [10, 100, 1000])
def test_damage_is_found_as_the_mapped_reader_finds_it(cut):
    data = valid_craft().build()
    with pytest.raises(InvalidModelFile):
        GGUFFile.read_header(io.BytesIO(data[:-cut]), len(data) - cut)
    with pytest.raises(InvalidModelFile, match="ends at byte"):  # shorter than it says
        GGUFFile.read_header(io.BytesIO(data[:-cut]), len(data))


def test_a_string_claiming_more_than_the_file_is_refused_without_reading_on(big_model):
    # the vocabulary's first string says it is longer than the whole file
    at = big_model.index(b"token-00000") - 8
    damaged = big_model[:at] + (len(big_model) * 2).to_bytes(8, "little") + big_model[at + 8 :]
    source = CountingReader(damaged)
    with pytest.raises(InvalidModelFile, match="runs past the end of the file"):
        GGUFFile.read_header(source, len(damaged))
    assert source.bytes_read == gguf_reader.FIRST_HEADER_READ
