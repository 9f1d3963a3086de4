"""The quantizer drivers: one per file type, each writing a quantized copy of a float GGUF.

    kernel.quantizer("q4_K_M").quantize(source, destination, progress)

Tensors are visited in llama.cpp's order (so per-layer choices land on the same layers), each
one's type is chosen by the recipe, and it is encoded and written before the next is read: memory
holds one tensor's output at a time. The file is written atomically by ``GGUFWriter``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ollamakit.errors import BadRequest
from ollamakit.interfaces import Quantizer

from ollamakit.lib.gguf import GGUFFile, GGUFWriter
from ollamakit.lib.gguf.constants import ValueType

from .encode import NonFiniteValues, encode
from .recipe import FILE_TYPES, ModelFacts, Recipe, weight_order

QUANTIZATION_VERSION = 2  # ggml's GGML_QNT_VERSION, recorded in every quantized file
# Tensors a float model ships already quantized (gpt-oss's MXFP4 experts, as converted from
# its folder) are copied as they are: at 4.25 bits a weight they are as small as the mixtures'
# types, and requantizing their blocks would only add error to them.
KEPT_TYPES = ("MXFP4",)


def file_type_name(name: str) -> str:
    """'q4_k_m' -> 'Q4_K_M'; raises BadRequest for types we do not offer."""
    for known in FILE_TYPES:
        if known.lower() == name.lower():
            return known
    raise BadRequest(
        f"unsupported quantization type {name.upper()} - supported types are "
        + ", ".join(FILE_TYPES)
    )


def plan(gguf: GGUFFile, file_type: str) -> list[tuple[str, str]]:
    """(tensor name, ggml type to store it as), in the order the tensors will be written."""
    recipe = Recipe(
        file_type, ModelFacts.from_metadata(gguf.metadata), [t.name for t in gguf.tensors]
    )
    chosen = []
    for name in weight_order([t.name for t in gguf.tensors]):
        info = gguf.tensor_info(name)
        target = recipe.choose(name, info.shape) or info.type_name  # counts every tensor
        if info.type_name in KEPT_TYPES:
            target = info.type_name
        if target != info.type_name:  # a tensor to encode must be of a type quantizing reads
            Quantizer.check_source(info.type_name)
        chosen.append((name, target))
    return chosen


def quantize_file(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    file_type: str,
    progress=None,
    threads: int | None = None,
) -> Path:
    """Write ``source`` quantized to ``file_type`` at ``destination``.

    ``progress(done, total)`` is called after each tensor, in bytes of the source file (as
    Ollama reports it), ending with done == total.
    """
    file_type = file_type_name(file_type)
    threads = max(1, threads or os.cpu_count() or 1)
    with GGUFFile.open(source) as src, ThreadPoolExecutor(threads) as pool:
        tensors = plan(src, file_type)
        writer = GGUFWriter(destination)
        writer.add_metadata(src.metadata, src.metadata_types)
        writer.add("general.quantization_version", QUANTIZATION_VERSION, ValueType.UINT32)
        writer.add("general.file_type", FILE_TYPES[file_type][0], ValueType.UINT32)
        total = max(1, src.file_size)
        tensor_bytes = max(1, sum(t.nbytes for t in src.tensors))
        done = 0

        def produce(name: str, target: str):
            nonlocal done
            info = src.tensor_info(name)
            raw = src.raw(name)
            if target != info.type_name:
                try:
                    raw = encode(raw, info.type_name, target, pool if threads > 1 else None)
                except NonFiniteValues:
                    raise BadRequest(
                        f"tensor '{name}' holds NaN or infinite values and cannot be quantized"
                    ) from None
            done += info.nbytes
            if progress is not None:
                progress(total * done // tensor_bytes, total)
            return raw

        for name, target in tensors:
            writer.add_tensor(
                name,
                lambda name=name, target=target: produce(name, target),
                target,
                src.tensor_info(name).shape,
            )
        return writer.write()


class FileTypeQuantizer(Quantizer):
    """Quantizes to the file type named by the class (``name``)."""

    threads: int | None = None  # None: one worker per CPU

    def quantize(self, source: Path, destination: Path, progress=None) -> None:
        quantize_file(source, destination, self.name, progress=progress, threads=self.threads)


def _driver(file_type: str) -> type[FileTypeQuantizer]:
    return type(
        file_type,
        (FileTypeQuantizer,),
        {"name": file_type, "__doc__": f"Quantizes to {file_type}."},
    )


Q2_K = _driver("Q2_K")
Q3_K_S = _driver("Q3_K_S")
Q3_K_M = _driver("Q3_K_M")
Q3_K_L = _driver("Q3_K_L")
Q4_0 = _driver("Q4_0")
Q4_1 = _driver("Q4_1")
Q4_K_S = _driver("Q4_K_S")
Q4_K_M = _driver("Q4_K_M")
Q5_0 = _driver("Q5_0")
Q5_1 = _driver("Q5_1")
Q5_K_S = _driver("Q5_K_S")
Q5_K_M = _driver("Q5_K_M")
Q6_K = _driver("Q6_K")
Q8_0 = _driver("Q8_0")
