"""LoRA adapters on the graph engine: a low-rank path beside each adapted matrix.

The base weights stay as they are (quantized, memory-mapped, maybe repacked); each adapted
product becomes ``W x + scale * B (A x)``, as llama.cpp builds it (``build_lora_mm``), so the
base is never merged or requantized and one mapped base serves models with and without the
adapter. A and B are copied into a buffer of their own, in the file's types.
"""

from __future__ import annotations

from ollamakit.lib.gguf.adapter import lora_pairs
from ollamakit.lib.gguf.reader import GGUFFile

from ollamakit.errors import InvalidModelFile


class LoraWeights:
    """One adapter's A and B tensors, by the base tensor (a ggml pointer) they adapt."""

    def __init__(self, path, base: GGUFFile, weights, lib):
        from ollamakit.lib.ggml.graph import Tensors

        with GGUFFile.open(path) as adapter:
            try:
                pairs = lora_pairs(adapter, base)
            except InvalidModelFile as exc:
                raise InvalidModelFile(
                    f"the adapter does not fit the model: {exc.message}"
                ) from None
            self.tensors = Tensors(lib, 2 * len(pairs))
            made = [
                (
                    pair,
                    self.tensors.new(pair.a.ggml_type, *pair.a.shape),
                    self.tensors.new(pair.b.ggml_type, *pair.b.shape),
                )
                for pair in pairs
            ]
            self.nbytes = self.tensors.allocate()
            for pair, a, b in made:
                for info, tensor in ((pair.a, a), (pair.b, b)):
                    data = adapter.raw(info.name)
                    lib.ggml_backend_tensor_set(tensor, data.ctypes.data, 0, info.nbytes)
        # keyed by the base tensor as the model's graph sees it (repacked or mapped)
        self.by_weight = {weights.by_name[pair.target]: (a, b, pair.scale) for pair, a, b in made}

    def close(self) -> None:
        self.tensors.close()
