"""``GptOssForCausalLM`` → ``gpt-oss``, as llama.cpp's converter writes it.

Attention has biases and a learned sink per head (``self_attn.sinks`` → ``attn_sinks``); the
FFN norm is ``post_attention_norm``; the router (``mlp.router``) has a bias. The experts are
stored as one tensor per matrix for all experts of a layer, the gate and up rows interleaved in
``gate_up_proj``, either as MXFP4 (``*_blocks`` with ``*_scales``, as the released models
ship) or as floats. MXFP4 experts stay MXFP4, repacked into ggml's blocks; float experts are
transposed into the ``(experts, rows, row)`` layout. Even layers attend through a sliding
window, odd ones fully; rope is YaRN.
"""

from __future__ import annotations

import re

import numpy as np

from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf.constants import ValueType

from .base import MAX_CONTEXT, Config, Tensor, arch_keys
from .decoders import _DECODER_LAYER, Decoder
from .experts import expert_counts

_EXPERTS = re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(gate_up_proj|down_proj)(\w*)$")
_SINKS = re.compile(r"^model\.layers\.(\d+)\.self_attn\.sinks$")
MXFP4_BLOCK = 32  # values per block: 16 bytes of 4-bit codes after a one-byte exponent


def repack_mxfp4(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Hugging Face's MXFP4 (each byte two consecutive values, the even one in the low nibble;
    the exponents apart) as ggml's blocks: per 32 values the exponent byte, then 16 bytes whose
    low nibbles hold the first 16 values and high nibbles the last 16."""
    codes = np.stack([blocks & 0x0F, blocks >> 4], axis=-1).reshape(*blocks.shape[:-1], 32)
    packed = codes[..., :16] | (codes[..., 16:] << 4)
    return np.concatenate([scales[..., None], packed], axis=-1)


class GptOss(Decoder):
    gguf_name = "gpt-oss"
    hf_names = ("GptOssForCausalLM",)
    layer_names = {
        **_DECODER_LAYER,
        "post_attention_layernorm": "post_attention_norm",
        "mlp.router": "ffn_gate_inp",
    }

    def __init__(self, config: Config, folder):
        super().__init__(config, folder)
        self.n_expert, self.n_expert_used = expert_counts(config, "num_local_experts")
        # llama.cpp's graph fixes these: every other layer windowed from the first, the clamped
        # SwiGLU's alpha and limit
        types = config.get("layer_types")
        alternating = ["sliding_attention", "full_attention"] * self.n_layer
        if types is not None and types != alternating[: self.n_layer]:
            raise InvalidModelFile(
                "config.json: layer_types other than sliding and full attention alternating "
                "from the first layer are not supported"
            )
        for key, value in (("swiglu_limit", 7.0), ("swiglu_alpha", 1.702)):
            if config.float(key, value) != value:
                raise InvalidModelFile(f"config.json: {key} other than {value} is not supported")
        quantization = config.get("quantization_config")
        if quantization is not None and (
            not isinstance(quantization, dict) or quantization.get("quant_method") != "mxfp4"
        ):
            raise InvalidModelFile("config.json: only MXFP4 quantized experts are supported")

    def metadata(self):
        values = self.common_metadata()
        values.update(
            {
                "attention.key_length": (self.head_dim, ValueType.UINT32),
                "attention.value_length": (self.head_dim, ValueType.UINT32),
                "expert_count": (self.n_expert, ValueType.UINT32),
                "expert_used_count": (self.n_expert_used, ValueType.UINT32),
                "expert_feed_forward_length": (self.n_ff, ValueType.UINT32),
                "attention.sliding_window": (
                    self.config.int("sliding_window", high=MAX_CONTEXT),
                    ValueType.UINT32,
                ),
            }
        )
        return arch_keys(self.gguf_name, values)

    @classmethod
    def build(cls, config: Config, folder) -> GptOss:
        """The Hugging Face layout, or OpenAI's original one (Ollama tells them apart by
        ``max_position_embeddings``, which only the former's config has)."""
        if config.get("max_position_embeddings") is None:
            from .gptoss_original import GptOssOriginal

            return GptOssOriginal(config, folder)
        return cls(config, folder)

    def tensors(self, hf_name: str) -> list[Tensor]:
        sinks = _SINKS.match(hf_name)
        if sinks and int(sinks.group(1)) < self.n_layer:
            return [Tensor(f"blk.{sinks.group(1)}.attn_sinks.weight", hf_name, force_f32=True)]
        experts = _EXPERTS.match(hf_name)
        if not experts or int(experts.group(1)) >= self.n_layer:
            return super().tensors(hf_name)
        index, matrix, suffix = experts.groups()
        return self.expert_tensors(
            int(index), matrix, suffix, hf_name, hf_name.replace("_blocks", "_scales")
        )

    def expert_tensors(
        self, index: int, matrix: str, suffix: str, hf_name: str, scales: str
    ) -> list[Tensor]:
        """Layer ``index``'s ``matrix`` of every expert (``gate_up_proj`` or ``down_proj``),
        from ``hf_name``: its MXFP4 ``_blocks`` (with ``scales``), its ``_scales`` (read with
        the blocks), its ``_bias``, or (no ``suffix``) its floats."""
        prefix = f"blk.{index}.ffn_"
        n, d, ff = self.n_expert, self.n_embd, self.n_ff
        if suffix == "_scales":  # read with its blocks
            return []
        if suffix == "_bias":
            if matrix == "down_proj":
                return [Tensor(prefix + "down_exps.bias", hf_name, force_f32=True)]
            return [
                Tensor(
                    f"{prefix}{name}_exps.bias",
                    hf_name,
                    _rows(first),
                    force_f32=True,
                    shape=(n, ff),
                    source_shape=(n, 2 * ff),
                )
                for name, first in (("gate", 0), ("up", 1))
            ]
        if suffix == "_blocks":
            if scales not in self.folder.tensors:
                raise InvalidModelFile(f"the model folder has {hf_name!r} without {scales!r}")
            if matrix == "down_proj":
                return [self._mxfp4(prefix + "down_exps.weight", hf_name, scales, (n, d, ff))]
            return [
                self._mxfp4(f"{prefix}{name}_exps.weight", hf_name, scales, (n, 2 * ff, d), first)
                for name, first in (("gate", 0), ("up", 1))
            ]
        if suffix:
            raise InvalidModelFile(f"tensor {hf_name!r} has no place in a gpt-oss model")
        # floats, stored (experts, row, rows): transposed into ggml's (experts, rows, row)
        if matrix == "down_proj":
            transpose = _transposed(None)
            return [
                Tensor(
                    prefix + "down_exps.weight",
                    hf_name,
                    transpose,
                    shape=(n, d, ff),
                    source_shape=(n, ff, d),
                )
            ]
        return [
            Tensor(
                f"{prefix}{name}_exps.weight",
                hf_name,
                _transposed(first),
                shape=(n, ff, d),
                source_shape=(n, d, 2 * ff),
            )
            for name, first in (("gate", 0), ("up", 1))
        ]

    def _mxfp4(
        self, name: str, blocks: str, scales: str, rows: tuple[int, int, int], first=None
    ) -> Tensor:
        """An MXFP4 matrix of ``rows`` (experts, rows, row) values, or its even or odd rows."""
        n, height, width = rows
        if width % MXFP4_BLOCK:
            raise InvalidModelFile(f"{name}: rows of {width} are not whole MXFP4 blocks")

        def repack(b: np.ndarray, s: np.ndarray) -> np.ndarray:
            if first is not None:
                b, s = b[:, first::2], s[:, first::2]
            out = np.empty((*b.shape[:-1], 17), np.uint8)
            for expert in range(len(b)):  # one expert at a time: a few of its sizes in memory
                out[expert] = repack_mxfp4(b[expert], s[expert])
            return out

        height = height if first is None else height // 2
        return Tensor(
            name,
            blocks,
            repack,
            shape=(n, height, width),
            source_shape=(n, rows[1], width // MXFP4_BLOCK, 16),
            ggml_type="MXFP4",
            companion=scales,
        )

    def expected_shape(self, name: str) -> tuple[int, ...] | None:
        base = name.split(".", 2)[-1] if name.startswith("blk.") else name
        n, d, ff, q = self.n_expert, self.n_embd, self.n_ff, self.n_head * self.head_dim
        shapes = {
            "attn_output.bias": (d,),
            "attn_sinks.weight": (self.n_head,),
            "ffn_gate_inp.weight": (n, d),
            "ffn_gate_inp.bias": (n,),
            "ffn_gate_exps.weight": (n, ff, d),
            "ffn_up_exps.weight": (n, ff, d),
            "ffn_down_exps.weight": (n, d, ff),
            "ffn_gate_exps.bias": (n, ff),
            "ffn_up_exps.bias": (n, ff),
            "ffn_down_exps.bias": (n, d),
            "attn_output.weight": (d, q),
        }
        return shapes.get(base) or super().expected_shape(name)

    def required(self) -> list[str]:
        names = ["token_embd.weight", "output_norm.weight"]
        weights = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "attn_sinks"]
        weights += ["post_attention_norm", "ffn_gate_inp"]
        weights += ["ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"]
        biases = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate_inp"]
        biases += ["ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"]
        for i in range(self.n_layer):
            names += [f"blk.{i}.{part}.weight" for part in weights]
            names += [f"blk.{i}.{part}.bias" for part in biases]
        return names


def _rows(first: int):
    """The gate (``first`` 0) or up (1) half of gate and up values interleaved on the last axis."""
    return lambda values: values[..., first::2]


def _transposed(first: int | None):
    """Experts stored (experts, row, rows) as ggml's (experts, rows, row); of interleaved gate
    and up rows, every other one from ``first``."""

    def transpose(values: np.ndarray) -> np.ndarray:
        values = np.swapaxes(values, -1, -2)
        return values if first is None else values[:, first::2]

    return transpose
