"""nomic-embed-text's folders (``NomicBertModel``, nomic-ai's own layout: ``Wqkv``, ``fc11`` /
``fc12`` / ``fc2``, ``norm1`` / ``norm2``, ``emb_ln``) to llama.cpp's ``nomic-bert`` GGUF, with
the names, keys and checks of llama.cpp's converter: post-norm, SwiGLU, full non-interleaved
rotary positions, no biases."""

from __future__ import annotations

import re

from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf.constants import ValueType

from .base import MAX_CONTEXT, MAX_LAYERS, Architecture, Config, Tensor, arch_keys
from .bert import sentence_transformer_head, sentence_transformer_length

_TOP = {
    "embeddings.word_embeddings": "token_embd",
    "embeddings.token_type_embeddings": "token_types",
    "emb_ln": "token_embd_norm",
}
_LAYER_RE = re.compile(r"^encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$")
_LAYER = {
    "attn.Wqkv": "attn_qkv",
    "attn.out_proj": "attn_output",
    "norm1": "attn_output_norm",
    "mlp.fc11": "ffn_up",
    "mlp.fc12": "ffn_gate",
    "mlp.fc2": "ffn_down",
    "norm2": "layer_output_norm",
}
_SKIPPED = re.compile(r"^(pooler\.|embeddings\.position_ids$)")
# What the architecture must be for the graph llama.cpp (and ollamakit) runs: (key, value).
_FIXED = (
    ("activation_function", "swiglu"),
    ("causal", False),
    ("qkv_proj_bias", False),
    ("mlp_fc1_bias", False),
    ("mlp_fc2_bias", False),
    ("prenorm", False),
    ("rotary_emb_fraction", 1.0),
    ("rotary_emb_interleaved", False),
    ("rotary_emb_scale_base", None),
)


class NomicBert(Architecture):
    gguf_name = "nomic-bert"
    hf_names = ("NomicBertModel",)
    tokenizer = "wordpiece"

    def __init__(self, config: Config, folder):  # nomic's config names its sizes GPT-2's way
        self.config, self.folder = config, folder
        c = config
        self.n_layer = c.int("n_layer", high=MAX_LAYERS)
        self.n_embd = c.int("n_embd")
        self.n_head = c.int("n_head", high=4096)
        self.n_ff = c.int("n_inner")
        if self.n_embd % self.n_head:
            raise InvalidModelFile("config.json: n_embd is not a multiple of n_head")
        if c.get("moe_every_n_layers"):
            raise InvalidModelFile(
                "config.json: nomic-bert with experts (nomic-embed-text v2) is not supported"
            )
        for key, value in _FIXED:
            if key in c.values and c.get(key) != value:
                raise InvalidModelFile(
                    f"config.json: {key} = {c.get(key)!r} is not supported (only {value!r})"
                )
        # nomic-embed-text v1 and v1.5 declare 8192 positions but were trained on 2048.
        positions = c.int("n_positions", high=MAX_CONTEXT)
        self.context = min(positions, c.int("max_trained_positions", positions, high=MAX_CONTEXT))
        self.type_vocab = c.int("type_vocab_size", 2, high=1 << 16)
        self.vocab = c.int("vocab_size", high=1 << 22)
        self.pooling, self.normalize = sentence_transformer_head(folder)
        self.max_seq_length = sentence_transformer_length(folder, self.context)

    def metadata(self):
        values = {
            "context_length": (self.context, ValueType.UINT32),
            "embedding_length": (self.n_embd, ValueType.UINT32),
            "feed_forward_length": (self.n_ff, ValueType.UINT32),
            "block_count": (self.n_layer, ValueType.UINT32),
            "attention.head_count": (self.n_head, ValueType.UINT32),
            "attention.layer_norm_epsilon": (
                self.config.float("layer_norm_epsilon", 1e-12),
                ValueType.FLOAT32,
            ),
            "attention.causal": (False, ValueType.BOOL),
            "rope.freq_base": (self.config.float("rotary_emb_base", 10000.0), ValueType.FLOAT32),
            "pooling_type": (self.pooling, ValueType.UINT32),
            "normalize_embeddings": (self.normalize, ValueType.BOOL),
        }
        out = arch_keys(self.gguf_name, values)
        out["tokenizer.ggml.token_type_count"] = (self.type_vocab, ValueType.UINT32)
        return out

    def tensor(self, hf_name: str) -> Tensor | None:
        if _SKIPPED.match(hf_name):
            return None
        stem, _, suffix = hf_name.rpartition(".")
        if stem in _TOP and suffix in ("weight", "bias"):
            gguf = f"{_TOP[stem]}.{suffix}"
            return Tensor(
                gguf, hf_name, force_f32=gguf.startswith(("token_types", "token_embd_norm"))
            )
        match = _LAYER_RE.match(hf_name)
        if match and match.group(2) in _LAYER and int(match.group(1)) < self.n_layer:
            index, part, suffix = match.groups()
            gguf = f"blk.{index}.{_LAYER[part]}.{suffix}"
            return Tensor(gguf, hf_name, force_f32=suffix == "bias" or "norm" in gguf)
        raise InvalidModelFile(f"tensor {hf_name!r} has no place in a nomic-bert model")

    def expected_shape(self, name: str):
        d, ff = self.n_embd, self.n_ff
        base = name.split(".", 2)[-1] if name.startswith("blk.") else name
        shapes = {
            "token_embd.weight": (self.vocab, d),
            "token_types.weight": (self.type_vocab, d),
            "attn_qkv.weight": (3 * d, d),
            "attn_output.weight": (d, d),
            "ffn_up.weight": (ff, d),
            "ffn_gate.weight": (ff, d),
            "ffn_down.weight": (d, ff),
        }
        if base in shapes:
            return shapes[base]
        return (d,) if base.endswith("norm.weight") or base.endswith("norm.bias") else None

    def required(self) -> list[str]:
        names = ["token_embd.weight", "token_embd_norm.weight", "token_embd_norm.bias"]
        for i in range(self.n_layer):
            names += [f"blk.{i}.{part}.weight" for part in _LAYER.values()]
            names += [f"blk.{i}.{part}.bias" for part in ("attn_output_norm", "layer_output_norm")]
        return names

    def parameters(self) -> dict[str, object]:
        return {"num_ctx": self.max_seq_length} if self.max_seq_length else {}
