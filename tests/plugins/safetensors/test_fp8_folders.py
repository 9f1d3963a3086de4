"""Create from FP8 source weights with block scales, as DeepSeek-V3 is released: each layer
matrix (not the router, the norms, the embedding or the output) stored as ``F8_E4M3`` with one
float32 ``weight_scale_inv`` per block of ``weight_block_size``.

The seeded deepseek2 folder of ``arch_folders`` is quantized to FP8 here (per block its largest
value maps to E4M3's 448, each value to its nearest code); its equivalent BF16 folder holds the
values those codes decode to, times their scale, cut to BF16 as Ollama's converter cuts them.
The two convert to the same tensors, and the FP8 file also records its FP8 tensors as Ollama's
does; its matrices are the float16 folder's within E4M3's precision. Every malformed FP8 folder
is a 400 that names the tensor.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from ollamakit_safetensors.convert import plan_conversion
from ollamakit_safetensors.folder import ModelFolder
from safetensors.numpy import load_file, save_file

import arch_folders
from hf_export import folder_files
from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf import GGUFFile
from test_create_from_folder import upload

BLOCK = (24, 16)  # smaller than DeepSeek's 128x128, so that the tiny matrices hold several
BF16 = 30  # ggml type


def e4m3_table() -> np.ndarray:
    """Every finite E4M3 value by its byte, from the format's definition (NaN where none)."""
    table = np.full(256, np.nan)
    for code in range(256):
        sign = -1.0 if code & 0x80 else 1.0
        exponent, mantissa = (code >> 3) & 0xF, code & 0x7
        if exponent == 0xF and mantissa == 0x7:
            continue
        if exponent == 0:
            table[code] = sign * mantissa / 8 * 2.0**-6
        else:
            table[code] = sign * (1 + mantissa / 8) * 2.0 ** (exponent - 7)
    return table


def to_e4m3(values: np.ndarray) -> np.ndarray:
    """The byte of the E4M3 value nearest each of ``values`` (all within +-448)."""
    table = e4m3_table()
    codes = np.flatnonzero(np.isfinite(table))
    order = np.argsort(table[codes], kind="stable")
    sorted_values, sorted_codes = table[codes][order], codes[order]
    at = np.clip(np.searchsorted(sorted_values, values), 1, len(sorted_values) - 1)
    below, above = sorted_values[at - 1], sorted_values[at]
    nearest = np.where(values - below <= above - values, at - 1, at)
    return sorted_codes[nearest].astype(np.uint8)


def is_fp8(name: str, shape: tuple) -> bool:
    """The matrices DeepSeek-V3 ships in FP8: every layer matrix but the router."""
    return name.startswith("model.layers.") and len(shape) == 2 and ".mlp.gate." not in name


def quantized(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values`` as E4M3 codes and one float32 scale per block (its largest value / 448)."""
    rows, cols = values.shape
    grid = (math.ceil(rows / BLOCK[0]), math.ceil(cols / BLOCK[1]))
    scales = np.empty(grid, np.float32)
    codes = np.empty(values.shape, np.uint8)
    for i in range(grid[0]):
        for j in range(grid[1]):
            part = np.s_[i * BLOCK[0] : (i + 1) * BLOCK[0], j * BLOCK[1] : (j + 1) * BLOCK[1]]
            block = values[part].astype(np.float32)
            scales[i, j] = np.float32(np.abs(block).max() / 448)
            codes[part] = to_e4m3(block / scales[i, j])
    return codes, scales


def dequantized_bf16(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """What the codes hold, as BF16 bits: each decoded value times its block's scale in float32,
    its low 16 bits dropped (Ollama's converter truncates)."""
    spread = np.kron(scales, np.ones(BLOCK, np.float32))[: codes.shape[0], : codes.shape[1]]
    values = e4m3_table().astype(np.float32)[codes] * spread
    return (values.view(np.uint32) >> 16).astype(np.uint16)


def bf16(values: np.ndarray) -> np.ndarray:
    return (values.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)


def write_pair(root: Path) -> tuple[Path, Path, Path]:
    """The float16 deepseek2 folder, its FP8 form, and the BF16 folder equivalent to that."""
    source = arch_folders.write("deepseek2", root / "f16")
    weights = load_file(source / "model.safetensors")
    fp8, equivalent = {}, {}
    for name, values in weights.items():
        if is_fp8(name, values.shape):
            codes, scales = quantized(values)
            fp8[name], fp8[name.removesuffix("weight") + "weight_scale_inv"] = codes, scales
            equivalent[name] = dequantized_bf16(codes, scales)
        else:
            fp8[name] = equivalent[name] = bf16(values)
    config = json.loads((source / "config.json").read_text())
    config["dtype"] = "bfloat16"
    folders = []
    for kind, tensors in (("fp8", fp8), ("bf16", equivalent)):
        folder = root / kind
        shutil.copytree(source, folder)
        _save(folder / "model.safetensors", tensors)
        if kind == "fp8":
            config = {**config, "quantization_config": _fp8_config()}
        (folder / "config.json").write_text(json.dumps(config))
        folders.append(folder)
    return source, folders[0], folders[1]


def _fp8_config() -> dict:
    return {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "quant_method": "fp8",
        "weight_block_size": list(BLOCK),
    }


def _save(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """safetensors with BF16 (uint16 bits) and F8_E4M3 (uint8 codes) dtypes, which numpy lacks."""
    save_file(tensors, str(path))
    header_size = int.from_bytes(path.read_bytes()[:8], "little")
    raw = path.read_bytes()
    header = json.loads(raw[8 : 8 + header_size])
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] == "U16":
            entry["dtype"] = "BF16"
        elif entry["dtype"] == "U8":
            entry["dtype"] = "F8_E4M3"
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + raw[8 + header_size :])


def convert(folder: Path, out: Path) -> Path:
    with ModelFolder(folder_files(folder)) as files:
        return plan_conversion(files, "ds").write(out)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("fp8")
    source, fp8, equivalent = write_pair(root)
    return {
        "source": convert(source, root / "f16.gguf"),
        "fp8": convert(fp8, root / "fp8.gguf"),
        "bf16": convert(equivalent, root / "bf16.gguf"),
    }


def test_fp8_converts_to_the_equivalent_bf16_folders_tensors(pair):
    with GGUFFile.open(pair["fp8"]) as fp8, GGUFFile.open(pair["bf16"]) as equivalent:
        assert [t.name for t in fp8.tensors] == [t.name for t in equivalent.tensors]
        for t in fp8.tensors:
            other = equivalent.tensor_info(t.name)
            assert (t.ggml_type, tuple(t.shape)) == (other.ggml_type, tuple(other.shape)), t.name
            assert fp8.raw(t.name).tobytes() == equivalent.raw(t.name).tobytes(), t.name
        assert fp8.metadata["source_quantization"] == "hf_fp8"
        assert "source_quantization" not in equivalent.metadata
        written = fp8.metadata["source_fp8_tensors"]
        assert written == sorted(written)
        # every FP8 matrix, under the names it is written as: split, stacked or as it is
        for name in ("attn_q_a", "attn_k_b", "attn_v_b", "attn_output", "ffn_gate_exps"):
            assert f"blk.1.{name}.weight" in written
        assert "blk.1.ffn_gate_inp.weight" not in written and "output.weight" not in written
        assert {k: v for k, v in fp8.metadata.items() if not k.startswith("source_")} == dict(
            equivalent.metadata
        )
        assert fp8.tensor_info("blk.1.ffn_down_exps.weight").ggml_type == BF16


def test_fp8_matrices_hold_the_float16_folders_values(pair):
    """Within E4M3's precision (3 bits of mantissa: half a step is 1/16 of a value) and what
    dropping to BF16 takes, relative to each matrix's largest value for the smallest values."""
    with GGUFFile.open(pair["fp8"]) as fp8, GGUFFile.open(pair["source"]) as source:
        for name in fp8.metadata["source_fp8_tensors"]:
            got, want = fp8.tensor(name), source.tensor(name)
            bound = np.abs(want) / 16 * 1.02 + np.abs(want).max() * 2.0**-9
            assert np.all(np.abs(got - want) <= bound), name


def test_a_created_fp8_folder_generates(client, tmp_path):
    _, fp8, _ = write_pair(tmp_path)
    reply = client.simulate_post(
        "/api/create",
        json={
            "model": "ds-fp8",
            "files": upload(client, folder_files(fp8)),
            "quantize": "q4_K_M",
            "stream": False,
        },
    )
    assert reply.status_code == 200 and reply.json == {"status": "success"}, reply.text
    generated = client.simulate_post(
        "/api/generate",
        json={
            "model": "ds-fp8",
            "prompt": "Once upon a time",
            "raw": True,
            "stream": False,
            "options": {"num_predict": 4, "temperature": 0},
        },
    )
    assert generated.status_code == 200 and generated.json["eval_count"] >= 1


def _broken(tmp_path: Path, change) -> Path:
    _, fp8, _ = write_pair(tmp_path)
    config = json.loads((fp8 / "config.json").read_text())
    tensors = _load_raw(fp8 / "model.safetensors")
    change(config, tensors)
    (fp8 / "config.json").write_text(json.dumps(config))
    _save_raw(fp8 / "model.safetensors", tensors)
    return fp8


def _load_raw(path: Path) -> dict:
    """name -> (dtype, shape, bytes), for any dtype."""
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    header.pop("__metadata__", None)
    data = raw[8 + size :]
    return {
        name: (e["dtype"], e["shape"], data[e["data_offsets"][0] : e["data_offsets"][1]])
        for name, e in header.items()
    }


def _save_raw(path: Path, tensors: dict) -> None:
    header, chunks, at = {}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(data)]}
        chunks.append(data)
        at += len(data)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + b"".join(chunks))


Q_A = "model.layers.1.self_attn.q_a_proj.weight"


def _drop_block_size(config, tensors):
    del config["quantization_config"]


def _drop_scale(config, tensors):
    del tensors[Q_A + "_scale_inv"]


def _second_scale(config, tensors):
    tensors[Q_A + "_scale"] = tensors[Q_A + "_scale_inv"]


def _wrong_scale_shape(config, tensors):
    dtype, shape, data = tensors[Q_A + "_scale_inv"]
    tensors[Q_A + "_scale_inv"] = (dtype, [shape[1], shape[0]], data)


def _int_scale(config, tensors):
    _, shape, data = tensors[Q_A + "_scale_inv"]
    tensors[Q_A + "_scale_inv"] = ("I32", shape, data)


def _two_block_sizes(config, tensors):
    config["compression_config"] = {
        "quant_method": "compressed-tensors",
        "config_groups": {
            "g": {
                "format": "float-quantized",
                "weights": {"num_bits": 8, "type": "float", "block_structure": [128, 128]},
            }
        },
    }


def _e5m2(config, tensors):
    _, shape, data = tensors[Q_A]
    tensors[Q_A] = ("F8_E5M2", shape, data)


@pytest.mark.parametrize(
    "change,message",
    [
        (_drop_block_size, "missing fp8 block size metadata for tensor 'model.layers.0.mlp"),
        (_drop_scale, f"missing fp8 scale companion for tensor '{Q_A}'"),
        (_second_scale, f"multiple fp8 scale companions for tensor '{Q_A}'"),
        (_wrong_scale_shape, r"unexpected fp8 scale shape \[4, 2\] .* want \[2, 4\]"),
        (_int_scale, "unsupported fp8 scale dtype I32"),
        (_two_block_sizes, "multiple fp8 block sizes: 24x16 and 128x128"),
        (_e5m2, f"tensor '{Q_A}' has dtype F8_E5M2; of FP8 weights only F8_E4M3 converts"),
    ],
)
def test_a_malformed_fp8_folder_is_refused(tmp_path, change, message):
    folder = _broken(tmp_path, change)
    with pytest.raises(InvalidModelFile, match=message):
        convert(folder, tmp_path / "out.gguf")


def test_the_refusal_is_a_400_through_create(client, tmp_path):
    folder = _broken(tmp_path, _drop_scale)
    reply = client.simulate_post(
        "/api/create", json={"model": "bad", "files": upload(client, folder_files(folder))}
    )
    assert reply.status_code == 400
    assert reply.json == {"error": f"missing fp8 scale companion for tensor '{Q_A}'"}


def test_a_block_wider_than_its_matrix_costs_the_matrixs_size(tmp_path):
    """One column of 64 rows in blocks of 65,536 columns: the scales are spread over the
    matrix's 64 values, not over the blocks' width (that was 16 MiB for 64 bytes of weights)."""
    import tracemalloc

    from ollamakit_safetensors.fp8 import Fp8Weights

    name = "model.layers.0.mlp.down_proj.weight"
    codes = np.arange(64, dtype=np.uint8).reshape(64, 1)
    scales = np.linspace(0.5, 2, 64, dtype=np.float32).reshape(64, 1)
    _save_raw(
        tmp_path / "model.safetensors",
        {
            name: ("F8_E4M3", [64, 1], codes.tobytes()),
            name + "_scale_inv": ("F32", [64, 1], scales.tobytes()),
        },
    )
    config = {"quantization_config": {"quant_method": "fp8", "weight_block_size": [1, 1 << 16]}}
    with ModelFolder(folder_files(tmp_path)) as folder:
        folder.open_tensors()
        weights = Fp8Weights(folder, config)
        tracemalloc.start()
        try:
            values = weights.float32(name)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert np.array_equal(values, e4m3_table().astype(np.float32)[codes] * scales)
    assert peak < 64 << 10, peak
