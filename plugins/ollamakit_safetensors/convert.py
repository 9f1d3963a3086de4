"""Conversion of a Hugging Face model folder to one GGUF file, keeping the source precision.

    plan = plan_conversion(folder, name="smollm2")   # every check; raises InvalidModelFile
    plan.write(path)                                  # streams one tensor at a time

Planning reads only headers and small JSON files, so a bad folder is refused before any work
(and before create's first status line). Writing memory-maps the safetensors files and hands
the GGUF writer one tensor at a time, so memory stays near the size of the largest tensor.
Norms, biases, and BERT's position and token-type embeddings are F32, as llama.cpp writes them;
every other tensor keeps its stored type (F32, F16 or BF16).
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
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def write(self, path: Path) -> Path:
        writer = GGUFWriter(path)
        for key, (value, kind) in self.metadata.items():
            writer.add(key, value, kind)
        for tensor, ggml_type in self.tensors:
            info = self.folder.info(tensor.source)
            shape = tuple(reversed(info.shape)) or (1,)
            writer.add_tensor(
                tensor.name, _loader(self.folder, tensor, info.dtype, ggml_type), ggml_type, shape
            )
        for name, array in self.extra.items():
            writer.add_tensor(name, array)
        return writer.write()


def _loader(folder: ModelFolder, tensor: Tensor, dtype: str, ggml_type: str):
    """The tensor's data, produced only when the writer reaches it."""

    def load():
        raw = folder.raw(tensor.source)
        if ggml_type == "F32":
            data = to_float32(raw, dtype, tensor.source)
            data = tensor.transform(data) if tensor.transform else data
            return np.ascontiguousarray(data, dtype=np.float32)
        data = tensor.transform(raw) if tensor.transform else raw
        return np.ascontiguousarray(data)  # F16 as float16, BF16 as its uint16 bits

    return load


def plan_conversion(folder: ModelFolder, name: str = "") -> Conversion:
    config = folder.json("config.json")
    if config is None:
        raise InvalidModelFile("the model folder has no config.json")
    folder.open_tensors()
    arch = architecture_for(config, folder)
    tokenizer = tokenizer_metadata(folder, config, wordpiece_only=arch.tokenizer == "wordpiece")
    tensors = _plan_tensors(folder, arch)
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
    }
    return Conversion(folder, arch, metadata, tensors, arch.extra_tensors())


def _model_name(config: dict, fallback: str) -> str:
    path = config.get("_name_or_path")
    if isinstance(path, str) and path.strip("/"):
        return path.strip("/").rsplit("/", 1)[-1]
    return fallback or "model"


def _plan_tensors(folder: ModelFolder, arch: Architecture) -> list[tuple[Tensor, str]]:
    planned: dict[str, tuple[Tensor, str]] = {}
    for source in folder.tensors:
        tensor = arch.tensor(source)
        if tensor is None:
            continue
        if tensor.name in planned:
            raise InvalidModelFile(
                f"tensors {planned[tensor.name][0].source!r} and {source!r} both become {tensor.name}"
            )
        info = folder.info(source)
        if info.dtype not in FLOAT_DTYPES and info.dtype != "F64":
            raise InvalidModelFile(
                f"tensor {source!r} has dtype {info.dtype}; only F32, F16 and BF16 models convert"
            )
        expected = arch.expected_shape(tensor.name)
        if expected is not None and info.shape != expected:
            raise InvalidModelFile(
                f"tensor {source!r} has shape {list(info.shape)}, config.json implies {list(expected)}"
            )
        if info.size == 0:
            raise InvalidModelFile(f"tensor {source!r} is empty")
        ggml_type = "F32" if tensor.force_f32 or info.dtype in ("F32", "F64") else info.dtype
        planned[tensor.name] = (tensor, ggml_type)
    missing = [name for name in arch.required() if name not in planned]
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise InvalidModelFile(f"the model folder lacks tensors {', '.join(missing[:3])}{more}")
    return sorted(planned.values(), key=lambda item: _order(item[0].name))


def _order(name: str) -> tuple:
    match = _BLOCK.match(name)
    if match:
        return (1, int(match.group(1)), name)
    return (0 if name.startswith(("token_", "position_")) else 2, 0, name)
