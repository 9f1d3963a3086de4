"""Whole files: each of the fourteen types on small models, tensor for tensor against llama.cpp."""

from __future__ import annotations

import numpy as np
import pytest

from ollamakit.errors import BadRequest
from ollamakit.testing.gguf_factory import make_gguf, tiny_llama
from ollamakit.lib.gguf import GGUFFile, GGUFWriter
from ollamakit_quant.convert import to_float
from ollamakit_quant.quantizer import plan, quantize_file

ALL = [
    "Q2_K",
    "Q3_K_S",
    "Q3_K_M",
    "Q3_K_L",
    "Q4_0",
    "Q4_1",
    "Q4_K_S",
    "Q4_K_M",
    "Q5_0",
    "Q5_1",
    "Q5_K_S",
    "Q5_K_M",
    "Q6_K",
    "Q8_0",
]


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory):
    """8 layers of 256-wide rows (K-quants apply), one kv head per four query heads."""
    return tiny_llama(
        tmp_path_factory.mktemp("m") / "wide.gguf",
        n_layers=8,
        n_embd=256,
        n_heads=4,
        n_kv_heads=1,
        n_ff=256,
        dtype=np.float16,
    )


@pytest.fixture(scope="module")
def narrow_tied_model(tmp_path_factory):
    """160-wide rows (every K-quant falls back) and no output matrix (tied embeddings)."""
    folder = tmp_path_factory.mktemp("m")
    untied = tiny_llama(
        folder / "untied.gguf",
        n_layers=3,
        n_embd=160,
        n_heads=5,
        n_kv_heads=5,
        n_ff=288,
        dtype=np.float16,
    )
    with GGUFFile.open(untied) as src:
        writer = GGUFWriter(folder / "tied.gguf")
        writer.add_metadata(src.metadata, src.metadata_types)
        for t in src.tensors:
            if t.name != "output.weight":
                writer.add_tensor(t.name, src.raw(t.name), t.ggml_type, t.shape)
        return writer.write()


def assert_same_as_llama_cpp(ours, theirs):
    with GGUFFile.open(ours) as a, GGUFFile.open(theirs) as b:
        assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
        for t in b.tensors:
            assert a.tensor_info(t.name).type_name == t.type_name, t.name
            assert np.array_equal(a.raw(t.name), b.raw(t.name)), f"{t.name} ({t.type_name}) differs"
        assert a.metadata["general.file_type"] == b.metadata["general.file_type"]
        assert (
            a.metadata["general.quantization_version"] == b.metadata["general.quantization_version"]
        )


@pytest.mark.parametrize("file_type", ALL)
def test_wide_model_equals_llama_cpp(reference, wide_model, tmp_path, file_type):
    ours = quantize_file(wide_model, tmp_path / "ours.gguf", file_type)
    assert_same_as_llama_cpp(
        ours, reference.reference_file(wide_model, tmp_path / "theirs.gguf", file_type)
    )


@pytest.mark.parametrize("file_type", ["Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_S", "Q6_K", "Q4_1"])
def test_fallbacks_and_tied_embeddings_equal_llama_cpp(
    reference, narrow_tied_model, tmp_path, file_type
):
    ours = quantize_file(narrow_tied_model, tmp_path / "ours.gguf", file_type)
    assert_same_as_llama_cpp(
        ours, reference.reference_file(narrow_tied_model, tmp_path / "theirs.gguf", file_type)
    )


@pytest.mark.parametrize("source_type", ["F32", "BF16"])
def test_f32_and_bf16_sources(reference, wide_model, tmp_path, source_type):
    source = to_float(wide_model, tmp_path / f"{source_type}.gguf", source_type)
    ours = quantize_file(source, tmp_path / "ours.gguf", "Q4_K_M")
    assert_same_as_llama_cpp(
        ours, reference.reference_file(source, tmp_path / "theirs.gguf", "Q4_K_M")
    )


def test_output_decodes_close_to_the_source_and_keeps_metadata(wide_model, tmp_path):
    out = quantize_file(wide_model, tmp_path / "q.gguf", "q4_k_m")
    with GGUFFile.open(wide_model) as src, GGUFFile.open(out) as q:
        assert q.metadata["general.file_type"] == 15 and q.file_type_name == "Q4_K_M"
        assert {k: v for k, v in q.metadata.items() if k != "general.file_type"} == {
            k: v for k, v in src.metadata.items() if k != "general.file_type"
        }
        for t in src.tensors:
            original, decoded = src.tensor(t.name), q.tensor(t.name)
            assert decoded.shape == original.shape
            if len(t.shape) == 1:
                assert q.tensor_info(t.name).type_name == "F32" and np.array_equal(
                    decoded, original
                )
            else:
                error = np.sqrt(np.mean((decoded - original) ** 2) / np.mean(original**2))
                assert error < 0.12, t.name


def test_progress_counts_source_bytes_up_to_the_file_size(wide_model, tmp_path):
    calls = []
    quantize_file(
        wide_model,
        tmp_path / "q.gguf",
        "Q8_0",
        progress=lambda done, total: calls.append((done, total)),
    )
    with GGUFFile.open(wide_model) as src:
        assert len(calls) == len(src.tensors)
    totals = {total for _, total in calls}
    assert totals == {wide_model.stat().st_size}
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[0] > 0 and done[-1] == calls[-1][1]


def test_plan_matches_what_is_written(wide_model, tmp_path):
    out = quantize_file(wide_model, tmp_path / "q.gguf", "Q3_K_M")
    with GGUFFile.open(wide_model) as src, GGUFFile.open(out) as q:
        assert [(t.name, t.type_name) for t in q.tensors] == plan(src, "Q3_K_M")


def test_quantized_sources_are_refused(wide_model, tmp_path):
    q8 = quantize_file(wide_model, tmp_path / "q8.gguf", "Q8_0")
    with pytest.raises(
        BadRequest, match="quantization is only supported for F16, BF16 and F32 models"
    ):
        quantize_file(q8, tmp_path / "again.gguf", "Q4_0")
    assert not (tmp_path / "again.gguf").exists()


def test_non_finite_values_are_a_clear_error(tmp_path):
    weights = np.ones((4, 64), dtype=np.float16)
    weights[2, 7] = np.inf
    source = make_gguf(
        tmp_path / "bad.gguf",
        {"general.architecture": "llama", "general.file_type": 1},
        {"blk.0.attn_q.weight": weights},
    )
    with pytest.raises(
        BadRequest, match="tensor 'blk.0.attn_q.weight' holds NaN or infinite values"
    ):
        quantize_file(source, tmp_path / "out.gguf", "Q8_0")
    assert not list(tmp_path.glob("*out*")) and not list(tmp_path.glob(".tmp-*"))


def test_unknown_type(wide_model, tmp_path):
    with pytest.raises(
        BadRequest, match="unsupported quantization type Q7_K - supported types are Q2_K, "
    ):
        quantize_file(wide_model, tmp_path / "q.gguf", "q7_K")


def test_drivers_are_registered_for_all_fourteen(kernel):
    from ollamakit import drivers

    assert sorted(drivers.driver_names("quantizer")) == sorted(t[:2].lower() + t[2:] for t in ALL)
    for name in ALL:
        quantizer = kernel.quantizer(name.lower())
        assert quantizer is not None and quantizer.name == name


@pytest.mark.real_model
@pytest.mark.slow
def test_smollm2_q4_k_m_equals_llama_cpp(reference, smollm2_f16_path, tmp_path):
    """The real model: 576-wide rows (fallbacks), tied embeddings, 30 layers of per-layer choices."""
    ours = quantize_file(smollm2_f16_path, tmp_path / "ours.gguf", "Q4_K_M")
    assert_same_as_llama_cpp(
        ours,
        reference.reference_file(smollm2_f16_path, tmp_path / "theirs.gguf", "Q4_K_M", threads=2),
    )
