"""Conversion of a Hugging Face model folder to one GGUF file, keeping the source precision.

    plan = plan_conversion(folder, name="smollm2")   # every check; raises InvalidModelFile
    plan.write(path)                                  # streams one tensor at a time

Planning reads only headers and small JSON files, so a bad folder is refused before any work
(and before create's first status line). Writing memory-maps the safetensors files and hands
the GGUF writer one tensor at a time, so memory stays near the size of the largest tensor.
Norms, biases, and BERT's position and token-type embeddings are F32, as llama.cpp writes them;
every other tensor keeps its stored type (F32, F16 or BF16). FP8 matrices with block scales
(``fp8``) become BF16, as Ollama's converter writes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf.constants import ValueType
from ollamakit.lib.gguf.writer import GGUFWriter

from .architectures import Architecture, Tensor, architecture_for
from .folder import ModelFolder
from .fp8 import FP8, Fp8Weights
from .reader import FLOAT_DTYPES, to_float32
from .tokenizer_json import tokenizer_metadata

FILE_TYPES = {"F32": 0, "F16": 1, "BF16": 32}  # general.file_type: all F32, mostly F16, mostly BF16
_BLOCK = re.compile(r"^blk\.(\d+)\.")


@dataclass
class Conversion:
    folder: ModelFolder
    arch: Architecture
    metadata: dict[str, tuple[object, int]]
    tensors: list[tuple[Tensor, str]]  # with the GGML type each is written as
    fp8: Fp8Weights
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def write(self, path: Path) -> Path:
        writer = GGUFWriter(path)
        for key, (value, kind) in self.metadata.items():
            writer.add(key, value, kind)
        for tensor, ggml_type in self.tensors:
            info = self.folder.info(tensor.source)
            stacked = (len(tensor.parts),) if tensor.parts else ()
            shape = tuple(reversed(stacked + (tensor.shape or tuple(info.shape)))) or (1,)
            writer.add_tensor(
                tensor.name,
                _loader(self.folder, self.fp8, tensor, info.dtype, ggml_type),
                ggml_type,
                shape,
            )
        for name, array in self.extra.items():
            writer.add_tensor(name, array)
        return writer.write()


def _loader(folder: ModelFolder, fp8: Fp8Weights, tensor: Tensor, dtype: str, ggml_type: str):
    """The tensor's data, produced only when the writer reaches it."""

    def load():
        if tensor.parts:  # the experts' matrices, one after another
            parts = _each(tensor)
            return np.stack([_loader(folder, fp8, one, dtype, ggml_type)() for one in parts])
        if dtype == FP8:  # as F32, or BF16 bits that the transforms move like any other
            raw = fp8.float32(tensor.source) if ggml_type == "F32" else fp8.bf16_bits(tensor.source)
            dtype_read = "F32" if ggml_type == "F32" else "BF16"
        else:
            raw, dtype_read = folder.raw(tensor.source), dtype
        if tensor.companion is not None:  # blocks built from two sources (MXFP4)
            return np.ascontiguousarray(tensor.transform(raw, folder.raw(tensor.companion)))
        if ggml_type == "F32":
            data = to_float32(raw, dtype_read, tensor.source)
            data = tensor.transform(data) if tensor.transform else data
            return np.ascontiguousarray(data, dtype=np.float32)
        data = tensor.transform(raw) if tensor.transform else raw
        return np.ascontiguousarray(data)  # F16 as float16, BF16 as its uint16 bits

    return load


def _each(tensor: Tensor) -> list[Tensor]:
    """A stacked tensor's parts as tensors of their own."""
    return [
        Tensor(tensor.name, part, tensor.transform, tensor.force_f32, shape=tensor.shape)
        for part in tensor.parts
    ]


def plan_conversion(folder: ModelFolder, name: str = "") -> Conversion:
    config = folder.json("config.json")
    if config is None:
        raise InvalidModelFile("the model folder has no config.json")
    folder.open_tensors()
    fp8 = Fp8Weights(folder, config)
    arch = architecture_for(config, folder)
    tokenizer = tokenizer_metadata(folder, config, wordpiece_only=arch.tokenizer == "wordpiece")
    tensors = _plan_tensors(folder, arch, fp8.consumed)
    arch.check_vocab(len(tokenizer["tokenizer.ggml.tokens"][0]))

    embedding = next(t for t, _ in tensors if t.name == "token_embd.weight")
    file_type = FILE_TYPES.get(folder.info(embedding.source).dtype, 0)
    metadata = {
        "general.architecture": (arch.gguf_name, ValueType.STRING),
        "general.type": ("model", ValueType.STRING),
        "general.name": (_model_name(config, name), ValueType.STRING),
        **arch.metadata(),
        "general.file_type": (file_type, ValueType.UINT32),
        "general.quantization_version": (2, ValueType.UINT32),
        **tokenizer,
        **_source_keys(folder, tensors),
    }
    return Conversion(folder, arch, metadata, tensors, fp8, arch.extra_tensors())


def _source_keys(folder: ModelFolder, tensors: list[tuple[Tensor, str]]) -> dict:
    """What Ollama records of FP8 sources: that there were some, and which tensors they made."""
    names = sorted(t.name for t, _ in tensors if folder.info(t.source).dtype == FP8)
    if not names:
        return {}
    return {
        "source_quantization": ("hf_fp8", ValueType.STRING),
        "source_fp8_tensors": (names, ValueType.STRING),
    }


def _model_name(config: dict, fallback: str) -> str:
    path = config.get("_name_or_path")
    if isinstance(path, str) and path.strip("/"):
        return path.strip("/").rsplit("/", 1)[-1]
    return fallback or "model"


def _plan_tensors(
    folder: ModelFolder, arch: Architecture, scales: frozenset[str] = frozenset()
) -> list[tuple[Tensor, str]]:
    planned: dict[str, tuple[Tensor, str]] = {}
    experts: dict[str, dict[int, Tensor]] = {}
    for source in folder.tensors:
        if source in scales:  # an FP8 matrix's block scales, read with it
            continue
        for tensor in arch.tensors(source):
            _plan_one(folder, arch, tensor, planned, experts)
    for name, by_expert in experts.items():
        tensor = _stacked(folder, name, by_expert, arch.n_expert)
        planned[name] = (tensor, _checked_type(folder, arch, tensor, (len(tensor.parts),)))
    missing = [name for name in arch.required() if name not in planned]
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise InvalidModelFile(f"the model folder lacks tensors {', '.join(missing[:3])}{more}")
    return sorted(planned.values(), key=lambda item: _order(item[0].name))


def _plan_one(
    folder: ModelFolder, arch: Architecture, tensor: Tensor, planned: dict, experts: dict
) -> None:
    """Add ``tensor`` to the plan, or to its layer's experts to be stacked."""
    source = tensor.source
    if tensor.expert is not None:
        one = experts.setdefault(tensor.name, {})
        if tensor.expert in one:
            raise InvalidModelFile(
                f"tensors {one[tensor.expert].source!r} and {source!r} are the same expert"
            )
        one[tensor.expert] = tensor
        return
    if tensor.name in planned:
        raise InvalidModelFile(
            f"tensors {planned[tensor.name][0].source!r} and {source!r} both become {tensor.name}"
        )
    planned[tensor.name] = (tensor, _checked_type(folder, arch, tensor, tuple()))


def _checked_type(folder: ModelFolder, arch: Architecture, tensor: Tensor, stacked: tuple) -> str:
    """The GGML type ``tensor`` is written as, once its dtype and shape are checked."""
    source = tensor.source
    info = folder.info(source)
    if tensor.ggml_type is not None:  # blocks and their scales, both bytes
        return _checked_blocks(folder, arch, tensor)
    if info.dtype not in FLOAT_DTYPES and info.dtype not in ("F64", FP8):
        raise InvalidModelFile(
            f"tensor {source!r} has dtype {info.dtype}; only F32, F16 and BF16 models, "
            "and F8_E4M3 with block scales, convert"
        )
    if tensor.source_shape is not None and tuple(info.shape) != tensor.source_shape:
        raise InvalidModelFile(
            f"tensor {source!r} has shape {list(info.shape)}, "
            f"config.json implies {list(tensor.source_shape)}"
        )
    expected = arch.expected_shape(tensor.name)
    shape = stacked + (tensor.shape or tuple(info.shape))
    if expected is not None and shape != expected:
        what = f"{tensor.name} (its experts stacked)" if stacked else repr(source)
        raise InvalidModelFile(
            f"tensor {what} has shape {list(shape)}, config.json implies {list(expected)}"
        )
    if info.size == 0:
        raise InvalidModelFile(f"tensor {source!r} is empty")
    if tensor.force_f32 or info.dtype in ("F32", "F64"):
        return "F32"
    return "BF16" if info.dtype == FP8 else info.dtype


def _checked_blocks(folder: ModelFolder, arch: Architecture, tensor: Tensor) -> str:
    """A quantized matrix made from stored blocks: both sources bytes of the shapes the
    transform takes (``source_shape`` for the blocks, all but their last axis for the scales),
    the matrix of the shape config.json implies."""
    blocks, scales = folder.info(tensor.source), folder.info(tensor.companion or "")
    expected_blocks = tensor.source_shape or ()
    for info, shape in ((blocks, expected_blocks), (scales, expected_blocks[:-1])):
        if info.dtype != "U8":
            raise InvalidModelFile(f"tensor {info.name!r} has dtype {info.dtype}, not U8")
        if tuple(info.shape) != shape:
            raise InvalidModelFile(
                f"tensor {info.name!r} has shape {list(info.shape)}, config.json implies {list(shape)}"
            )
    expected = arch.expected_shape(tensor.name)
    if expected is not None and tensor.shape != expected:
        raise InvalidModelFile(
            f"{tensor.name} would have shape {list(tensor.shape or ())}, config.json implies {list(expected)}"
        )
    return tensor.ggml_type or ""


def _stacked(folder: ModelFolder, name: str, by_expert: dict[int, Tensor], count: int) -> Tensor:
    """One layer's matrices of every expert as one tensor: each expert once, all alike."""
    extra = sorted(e for e in by_expert if not 0 <= e < count)
    if extra:
        raise InvalidModelFile(f"{name}: expert {extra[0]} is beyond the {count} of config.json")
    missing = [e for e in range(count) if e not in by_expert]
    if missing:
        raise InvalidModelFile(f"the model folder lacks expert {missing[0]} of {name}")
    parts = [by_expert[e] for e in range(count)]
    first = folder.info(parts[0].source)
    for part in parts[1:]:
        info = folder.info(part.source)
        if (info.dtype, info.shape) != (first.dtype, first.shape):
            raise InvalidModelFile(
                f"tensors {parts[0].source!r} and {part.source!r} differ in dtype or shape"
            )
    head = parts[0]
    return Tensor(
        name, head.source, head.transform, head.force_f32, parts=tuple(p.source for p in parts)
    )


def _order(name: str) -> tuple:
    match = _BLOCK.match(name)
    if match:
        return (1, int(match.group(1)), name)
    return (0 if name.startswith(("token_", "position_")) else 2, 0, name)
