"""gpt-oss in OpenAI's original checkpoint layout → ``gpt-oss``, as Ollama's converter writes it.

The original release (``original/`` beside the Hugging Face files) names its tensors
``block.N.attn.qkv``, ``block.N.mlp.mlp1_weight.blocks`` and so on, and sizes the model with
its own keys (``num_experts``, ``experts_per_token``, ``initial_context_length``,
``rope_scaling_factor``, ``rope_ntk_alpha``/``beta``). Ollama converts it when ``config.json``
names ``GptOssForCausalLM`` and has no ``max_position_embeddings``; its own config names no
architecture, which Ollama (and ollamakit) refuse. What differs from the Hugging Face layout:

* queries, keys and values stay one matrix and one bias, ``attn_qkv`` (Ollama's names; the
  engine takes its three parts as views);
* the context is ``rope_scaling_factor`` times ``initial_context_length``, which is YaRN's
  original context; ``rms_norm_eps`` is 1e-5 unless the config says otherwise;
* the experts are MXFP4 as released (float ones Ollama would write unsplit, as a gate-and-up
  tensor no engine reads, so they are refused).
"""

from __future__ import annotations

import re

from ollamakit.errors import InvalidModelFile

from .base import MAX_CONTEXT, Config, Tensor
from .gptoss import GptOss

_TOP = {
    "embedding.weight": "token_embd.weight",
    "norm.scale": "output_norm.weight",
    "unembedding.weight": "output.weight",
}
_LAYER = re.compile(r"^block\.(\d+)\.(.+)$")
_LAYER_NAMES = {
    "attn.norm.scale": "attn_norm.weight",
    "attn.qkv.weight": "attn_qkv.weight",
    "attn.qkv.bias": "attn_qkv.bias",
    "attn.out.weight": "attn_output.weight",
    "attn.out.bias": "attn_output.bias",
    "mlp.norm.scale": "post_attention_norm.weight",
    "mlp.gate.weight": "ffn_gate_inp.weight",
    "mlp.gate.bias": "ffn_gate_inp.bias",
}
# an expert tensor: which matrix (mlp1 the interleaved gate and up, mlp2 down) and which part
_EXPERTS = re.compile(r"^mlp\.(mlp1|mlp2)_(weight\.blocks|weight\.scales|bias|weight)$")
_MATRICES = {"mlp1": "gate_up_proj", "mlp2": "down_proj"}
_SUFFIXES = {"weight.blocks": "_blocks", "weight.scales": "_scales", "bias": "_bias"}
# the original rope's YaRN ramp (its NTK alpha and beta), which the converters do not write:
# ggml's defaults for beta_slow and beta_fast
NTK_DEFAULTS = {"rope_ntk_alpha": 1.0, "rope_ntk_beta": 32.0}


def hugging_face_config(c: Config) -> dict:
    """The original config's values under the Hugging Face names the conversion reads."""
    values = dict(c.values)
    for key, default in NTK_DEFAULTS.items():
        if c.float(key, default) != default:
            raise InvalidModelFile(f"config.json: {key} other than {default:g} is not supported")
    factor = c.float("rope_scaling_factor")
    if factor < 1:
        raise InvalidModelFile("config.json: rope_scaling_factor must be at least 1")
    initial = c.int("initial_context_length", high=MAX_CONTEXT)
    values["max_position_embeddings"] = min(int(factor * initial), MAX_CONTEXT)
    values["rope_scaling"] = {
        "rope_type": "yarn",
        "factor": factor,
        "original_max_position_embeddings": initial,
    }
    values.setdefault("rms_norm_eps", 1e-5)
    values.setdefault("num_local_experts", values.get("num_experts"))
    values.setdefault("num_experts_per_tok", values.get("experts_per_token"))
    return values


class GptOssOriginal(GptOss):
    def __init__(self, config: Config, folder):
        super().__init__(Config(hugging_face_config(config)), folder)
        self.tied = "unembedding.weight" not in folder.tensors
        embedding = "embedding.weight"
        self.vocab = folder.info(embedding).shape[0] if embedding in folder.tensors else 0

    def tensors(self, hf_name: str) -> list[Tensor]:
        if hf_name in _TOP:
            return [self.make(_TOP[hf_name], hf_name)]
        layer = _LAYER.match(hf_name)
        if layer and int(layer.group(1)) < self.n_layer:
            index, part = int(layer.group(1)), layer.group(2)
            if part == "attn.sinks":
                return [Tensor(f"blk.{index}.attn_sinks.weight", hf_name, force_f32=True)]
            if part in _LAYER_NAMES:
                return [self.make(f"blk.{index}.{_LAYER_NAMES[part]}", hf_name)]
            experts = _EXPERTS.match(part)
            if experts and experts.group(2) == "weight":
                raise InvalidModelFile(
                    f"tensor {hf_name!r}: the original gpt-oss layout converts with MXFP4 "
                    "experts (weight.blocks and weight.scales) only"
                )
            if experts:
                matrix, suffix = _MATRICES[experts.group(1)], _SUFFIXES[experts.group(2)]
                scales = hf_name.replace(".blocks", ".scales")
                return self.expert_tensors(index, matrix, suffix, hf_name, scales)
        raise InvalidModelFile(f"tensor {hf_name!r} has no place in a gpt-oss model")

    def expected_shape(self, name: str) -> tuple[int, ...] | None:
        base = name.split(".", 2)[-1] if name.startswith("blk.") else name
        rows = (self.n_head + 2 * self.n_head_kv) * self.head_dim
        shapes = {"attn_qkv.weight": (rows, self.n_embd), "attn_qkv.bias": (rows,)}
        return shapes.get(base) or super().expected_shape(name)

    def required(self) -> list[str]:
        separate = {f"attn_{x}.{kind}" for x in "qkv" for kind in ("weight", "bias")}
        names = [n for n in super().required() if n.split(".", 2)[-1] not in separate]
        for i in range(self.n_layer):
            names += [f"blk.{i}.attn_qkv.weight", f"blk.{i}.attn_qkv.bias"]
        return names
