"""FP8 source weights with block scales (DeepSeek-V3's release, compressed-tensors exports), read
as Ollama's converter reads them.

A tensor stored as ``F8_E4M3`` is a 2-D matrix cut into blocks of ``weight_block_size`` (rows,
columns) from ``config.json``'s ``quantization_config`` (``quant_method: fp8``), or from a
compressed-tensors ``float-quantized`` group of 8-bit floats. One float per block, in a companion
tensor (``<name>_scale_inv`` in DeepSeek's files, or ``_scale``, ``.scale``, ``.scale_inv``), is
what the block's values are multiplied by. The companions are consumed; each matrix is written
as BF16 (float32 where the architecture keeps the tensor in float32), its values the decoded
bytes times their block's scale, then cut to BF16 by dropping the low 16 bits, as Ollama's
converter does (it truncates; it does not round). The file records which tensors came from FP8
(``source_quantization``, ``source_fp8_tensors``), as Ollama's does.

Every check is made when the conversion is planned: a matrix without its block size or its
companion, a companion of the wrong shape or type, or a companion claimed twice, is a 400.
"""

from __future__ import annotations

import math

import numpy as np

from ollamakit.errors import InvalidModelFile

from .reader import to_float32

FP8 = "F8_E4M3"
SCALE_DTYPES = ("F32", "F16", "BF16")
MAX_BLOCK = 1 << 16


def _e4m3_values() -> np.ndarray:
    """The float32 value of every E4M3 (``fn``: no infinities, one NaN pattern) byte."""
    codes = np.arange(256)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    exponent, mantissa = (codes >> 3) & 0x0F, codes & 0x07
    normal = (1 + mantissa / 8) * np.exp2(exponent - 7.0)
    subnormal = mantissa / 8 * 2.0**-6
    values = sign * np.where(exponent == 0, subnormal, normal)
    values[(exponent == 0x0F) & (mantissa == 0x07)] = np.nan
    return values.astype(np.float32)


E4M3 = _e4m3_values()


def block_size(config: dict) -> tuple[int, int] | None:
    """The FP8 block size ``config.json`` declares (where Ollama looks for it), or None."""
    places = [config]
    if isinstance(config.get("text_config"), dict):
        places.append(config["text_config"])
    found = []
    for place in places:
        for key in ("quantization", "quantization_config", "compression_config"):
            q = place.get(key)
            if isinstance(q, dict):
                found += _declared_blocks(q)
    if not found:
        return None
    if any(other != found[0] for other in found[1:]):
        sizes = " and ".join(f"{r}x{c}" for r, c in dict.fromkeys(found))
        raise InvalidModelFile(f"config.json: multiple fp8 block sizes: {sizes}")
    return found[0]


def _declared_blocks(q: dict) -> list[tuple[int, int]]:
    blocks = []
    method, fmt = str(q.get("quant_method", "")).lower(), str(q.get("format", "")).lower()
    if method == "fp8" and _pair(q.get("weight_block_size")):
        blocks.append(_checked_block(q["weight_block_size"]))
    if method != "compressed-tensors" and fmt != "float-quantized":
        return blocks
    groups = q.get("config_groups")
    for group in groups.values() if isinstance(groups, dict) else ():
        weights = group.get("weights") if isinstance(group, dict) else None
        if (
            str(group.get("format", "")).lower() == "float-quantized"
            and isinstance(weights, dict)
            and weights.get("num_bits") == 8
            and str(weights.get("type", "")).lower() == "float"
            and _pair(weights.get("block_structure"))
        ):
            blocks.append(_checked_block(weights["block_structure"]))
    return blocks


def _pair(value) -> bool:
    return isinstance(value, list) and len(value) == 2


def _checked_block(pair: list) -> tuple[int, int]:
    rows, cols = pair
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in pair) or not (
        0 < rows <= MAX_BLOCK and 0 < cols <= MAX_BLOCK
    ):
        raise InvalidModelFile(f"config.json: invalid fp8 block size {pair!r}")
    return rows, cols


class Fp8Weights:
    """The folder's FP8 matrices: each one's scale companion, checked; the values on demand."""

    def __init__(self, folder, config: dict):
        self.folder = folder
        self.block = block_size(config)
        self.scales: dict[str, str] = {}  # FP8 matrix -> its companion
        for name, (_, info) in folder.tensors.items():
            if info.dtype == FP8:
                self._add(name, info)
            elif info.dtype == "F8_E5M2":  # before its scale is taken for a tensor of its own
                raise InvalidModelFile(
                    f"tensor {name!r} has dtype F8_E5M2; of FP8 weights only F8_E4M3 converts"
                )
        self.consumed = frozenset(self.scales.values())

    def _add(self, name: str, info) -> None:
        found = [c for c in _candidates(name) if c in self.folder.tensors]
        if len(found) > 1:
            raise InvalidModelFile(
                f"multiple fp8 scale companions for tensor {name!r}: {found[0]!r} and {found[1]!r}"
            )
        if self.block is None:
            raise InvalidModelFile(f"missing fp8 block size metadata for tensor {name!r}")
        if not found:
            raise InvalidModelFile(f"missing fp8 scale companion for tensor {name!r}")
        scale = self.folder.info(found[0])
        if scale.name in self.scales.values():
            raise InvalidModelFile(
                f"fp8 scale companion {scale.name!r} is used by multiple tensors"
            )
        if len(info.shape) != 2:
            raise InvalidModelFile(f"expected 2D fp8 tensor {name!r}, got shape {list(info.shape)}")
        if scale.dtype not in SCALE_DTYPES:
            raise InvalidModelFile(
                f"unsupported fp8 scale dtype {scale.dtype} for tensor {scale.name!r}"
            )
        want = tuple(math.ceil(n / b) for n, b in zip(info.shape, self.block))
        if tuple(scale.shape) != want:
            raise InvalidModelFile(
                f"unexpected fp8 scale shape {list(scale.shape)} for tensor {name!r} shape "
                f"{list(info.shape)}; want {list(want)}"
            )
        self.scales[name] = scale.name

    def float32(self, name: str) -> np.ndarray:
        """Matrix ``name``'s values: each byte decoded, times its block's scale (in float32)."""
        rows, cols = self.folder.info(name).shape
        block_rows, block_cols = self.block or (1, 1)
        scale_name = self.scales[name]
        scale = to_float32(
            self.folder.raw(scale_name), self.folder.info(scale_name).dtype, scale_name
        )
        # each value's block, indexed rather than repeated: repeating a scale grid spans whole
        # blocks, and a block of 65,536 columns over a matrix of one column would be that many
        # floats a row
        spread = scale[(np.arange(rows) // block_rows)[:, None], np.arange(cols) // block_cols]
        return E4M3[self.folder.raw(name)] * spread

    def bf16_bits(self, name: str) -> np.ndarray:
        """``float32(name)`` as BF16 bit patterns: the low half of each float dropped."""
        return (self.float32(name).view(np.uint32) >> 16).astype(np.uint16)


def _candidates(name: str) -> list[str]:
    """Where a matrix's scale may be stored, in Ollama's order."""
    out = [name + suffix for suffix in ("_scale", "_scale_inv", ".scale", ".scale_inv")]
    if name.endswith(".weight"):
        base = name.removesuffix(".weight")
        out += [base + ".weight_scale", base + ".weight_scale_inv"]
    return list(dict.fromkeys(out))
