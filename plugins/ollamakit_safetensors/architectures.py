"""What each Hugging Face architecture becomes in GGUF: the ``<arch>.*`` metadata, the tensor
names and the few tensor transformations llama.cpp's converter applies.

* ``LlamaForCausalLM`` (Llama, Mistral, SmolLM2) → ``llama``. Q and K rows are permuted so that
  rope rotates adjacent pairs, as llama.cpp's llama graph expects.
* ``Qwen2ForCausalLM`` → ``qwen2`` (q/k/v biases, rope over halves, no permutation).
* ``Gemma3ForCausalLM`` → ``gemma3``: the RMS norms store ``1 + w`` (Gemma multiplies by it).
* ``BertModel`` and its sentence-transformers folders → ``bert``, with the pooling type.

Every architecture lists the shape each tensor must have, so a folder whose tensors disagree with
its ``config.json`` is refused at create time, not when the model first loads.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ollamakit.errors import InvalidModelFile
from ollamakit_gguf.constants import ValueType

MAX_WIDTH = 1 << 18
MAX_LAYERS = 1024
MAX_CONTEXT = 1 << 24

POOLING_MEAN, POOLING_CLS, POOLING_LAST = 1, 2, 3


class Config:
    """Typed, bounded access to ``config.json``."""

    def __init__(self, values: dict):
        self.values = values

    def int(self, key: str, default: int | None = None, *, high: int = MAX_WIDTH, low: int = 1) -> int:
        value = self.values.get(key, default)
        if value is None:
            raise InvalidModelFile(f"config.json lacks {key}")
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidModelFile(f"config.json: {key} = {value!r} is out of range [{low}, {high}]")
        return value

    def float(self, key: str, default: float | None = None) -> float:
        value = self.values.get(key, default)
        if value is None:
            raise InvalidModelFile(f"config.json lacks {key}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidModelFile(f"config.json: {key} = {value!r} is not a finite number")
        return float(value)

    def get(self, key: str, default=None):
        return self.values.get(key, default)


@dataclass
class Tensor:
    """One GGUF tensor to write: its source tensor, a transformation, and whether it is F32."""

    name: str
    source: str
    transform: object = None  # array -> array, applied to the stored elements
    force_f32: bool = False


class Architecture:
    gguf_name = ""
    hf_names: tuple[str, ...] = ()
    tokenizer = "any"  # "wordpiece" for BERT

    def __init__(self, config: Config, folder):
        self.config = config
        self.folder = folder

    def metadata(self) -> dict[str, tuple[object, int]]:
        raise NotImplementedError

    def tensor(self, hf_name: str) -> Tensor | None:
        """The GGUF tensor made from ``hf_name``; None for tensors the model does not use."""
        raise NotImplementedError

    def expected_shape(self, name: str) -> tuple[int, ...] | None:
        """The (numpy-order) shape GGUF tensor ``name`` must have, or None if it is unknown."""
        raise NotImplementedError

    def required(self) -> list[str]:
        raise NotImplementedError

    def check_vocab(self, n_tokens: int) -> None:
        rows = self.expected_shape("token_embd.weight")[0]
        if rows != n_tokens:
            raise InvalidModelFile(f"the tokenizer has {n_tokens} tokens but the embedding has {rows} rows")


def _key(arch: str, values: dict) -> dict[str, tuple[object, int]]:
    out = {}
    for key, (value, kind) in values.items():
        if value is not None:
            out[f"{arch}.{key}"] = (value, kind)
    return out


# -- decoder-only models -----------------------------------------------------------------------

_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)\.(weight|bias)$")
_TOP = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
_DECODER_LAYER = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "post_attention_layernorm": "ffn_norm",
}
_UNUSED = re.compile(r"(^|\.)rotary_emb\.inv_freq$")


class Decoder(Architecture):
    layer_names = _DECODER_LAYER
    biases = False  # q/k/v biases (qwen2)
    head_norms = False  # per-head q/k RMS norms (gemma3)

    def __init__(self, config: Config, folder):
        super().__init__(config, folder)
        c = config
        self.n_layer = c.int("num_hidden_layers", high=MAX_LAYERS)
        self.n_embd = c.int("hidden_size")
        self.n_ff = c.int("intermediate_size")
        self.n_head = c.int("num_attention_heads", high=4096)
        self.n_head_kv = c.int("num_key_value_heads", self.n_head, high=4096)
        if self.n_head % self.n_head_kv:
            raise InvalidModelFile("config.json: num_attention_heads is not a multiple of num_key_value_heads")
        self.head_dim = c.int("head_dim", self.n_embd // self.n_head)
        self.context = c.int("max_position_embeddings", high=MAX_CONTEXT)
        self.tied = "lm_head.weight" not in folder.tensors
        self.vocab = folder.info("model.embed_tokens.weight").shape[0] if "model.embed_tokens.weight" in folder.tensors else 0

    def common_metadata(self) -> dict:
        c = self.config
        values = {
            "context_length": (self.context, ValueType.UINT32),
            "embedding_length": (self.n_embd, ValueType.UINT32),
            "block_count": (self.n_layer, ValueType.UINT32),
            "feed_forward_length": (self.n_ff, ValueType.UINT32),
            "attention.head_count": (self.n_head, ValueType.UINT32),
            "attention.head_count_kv": (self.n_head_kv, ValueType.UINT32),
            "rope.freq_base": (c.float("rope_theta", 10000.0), ValueType.FLOAT32),
            "attention.layer_norm_rms_epsilon": (c.float("rms_norm_eps", 1e-6), ValueType.FLOAT32),
        }
        if self.head_dim != self.n_embd // self.n_head:
            values["attention.key_length"] = (self.head_dim, ValueType.UINT32)
            values["attention.value_length"] = (self.head_dim, ValueType.UINT32)
        values.update(self.rope_scaling())
        return values

    def rope_scaling(self) -> dict:
        scaling = self.config.get("rope_scaling")
        if not scaling:
            return {}
        if not isinstance(scaling, dict):
            raise InvalidModelFile("config.json: rope_scaling must be an object")
        kind = scaling.get("rope_type") or scaling.get("type")
        factor = Config(scaling).float("factor", 1.0)
        if kind == "linear":
            return {"rope.scaling.type": ("linear", ValueType.STRING), "rope.scaling.factor": (factor, ValueType.FLOAT32)}
        if kind == "llama3" and self.gguf_name == "llama":
            return {}  # carried by the rope_freqs.weight tensor instead
        raise InvalidModelFile(f"config.json: rope scaling {kind!r} is not supported")

    def tensor(self, hf_name: str) -> Tensor | None:
        if _UNUSED.search(hf_name):
            return None
        for prefix, name in _TOP.items():
            if hf_name.startswith(prefix + ".") and hf_name.rsplit(".", 1)[-1] in ("weight", "bias"):
                return self.make(f"{name}.{hf_name.rsplit('.', 1)[-1]}", hf_name)
        match = _LAYER.match(hf_name)
        if match and match.group(2) in self.layer_names:
            index, part, kind = match.groups()
            if int(index) < self.n_layer:
                return self.make(f"blk.{index}.{self.layer_names[part]}.{kind}", hf_name)
        raise InvalidModelFile(f"tensor {hf_name!r} has no place in a {self.gguf_name} model")

    def make(self, name: str, source: str) -> Tensor:
        return Tensor(name, source, force_f32=not name.endswith(".weight") or "norm" in name)

    def expected_shape(self, name: str) -> tuple[int, ...] | None:
        d, hd, ff = self.n_embd, self.head_dim, self.n_ff
        q, kv = self.n_head * hd, self.n_head_kv * hd
        base = name.split(".", 2)[-1] if name.startswith("blk.") else name
        shapes = {
            "token_embd.weight": (self.vocab, d),
            "output.weight": (self.vocab, d),
            "output_norm.weight": (d,),
            "attn_norm.weight": (d,),
            "attn_q.weight": (q, d), "attn_k.weight": (kv, d), "attn_v.weight": (kv, d),
            "attn_q.bias": (q,), "attn_k.bias": (kv,), "attn_v.bias": (kv,),
            "attn_output.weight": (d, q),
            "attn_q_norm.weight": (hd,), "attn_k_norm.weight": (hd,),
            "ffn_gate.weight": (ff, d), "ffn_up.weight": (ff, d), "ffn_down.weight": (d, ff),
            "ffn_norm.weight": (d,), "post_attention_norm.weight": (d,), "post_ffw_norm.weight": (d,),
        }
        return shapes.get(base)

    def required(self) -> list[str]:
        names = ["token_embd.weight", "output_norm.weight"]
        per_layer = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]
        per_layer += self.extra_layer_tensors()
        for i in range(self.n_layer):
            names += [f"blk.{i}.{part}.weight" for part in per_layer]
            if self.biases:
                names += [f"blk.{i}.attn_{x}.bias" for x in "qkv"]
        return names

    def extra_layer_tensors(self) -> list[str]:
        return []


def permute_for_llama(n_head: int):
    """llama.cpp's Q/K permutation: each head's two rope halves become interleaved pairs."""

    def permute(w: np.ndarray) -> np.ndarray:
        rest = w.shape[1:]
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *rest).swapaxes(1, 2).reshape(w.shape)

    return permute


def llama3_rope_factors(config: Config, head_dim: int) -> np.ndarray | None:
    """Per-frequency divisors for Llama 3.1-style rope scaling (``rope_freqs.weight``)."""
    scaling = config.get("rope_scaling")
    if not isinstance(scaling, dict) or (scaling.get("rope_type") or scaling.get("type")) != "llama3":
        return None
    s = Config(scaling)
    factor, low, high = s.float("factor", 8.0), s.float("low_freq_factor", 1.0), s.float("high_freq_factor", 4.0)
    old_context = s.float("original_max_position_embeddings", 8192)
    if high <= low or factor <= 0:
        raise InvalidModelFile("config.json: llama3 rope scaling needs high_freq_factor > low_freq_factor")
    base = config.float("rope_theta", 10000.0)
    freqs = 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelen = 2 * math.pi / freqs
    smooth = (old_context / wavelen - low) / (high - low)
    factors = np.where(wavelen < old_context / high, 1.0,
                       np.where(wavelen > old_context / low, factor, 1.0 / ((1 - smooth) / factor + smooth)))
    return factors.astype(np.float32)


class Llama(Decoder):
    gguf_name = "llama"
    hf_names = ("LlamaForCausalLM", "MistralForCausalLM")

    def metadata(self):
        values = self.common_metadata()
        values["vocab_size"] = (self.vocab, ValueType.UINT32)
        values["rope.dimension_count"] = (self.head_dim, ValueType.UINT32)
        return _key("llama", values)

    def make(self, name: str, source: str) -> Tensor:
        tensor = super().make(name, source)
        if ".attn_q." in name:
            tensor.transform = permute_for_llama(self.n_head)
        elif ".attn_k." in name:
            tensor.transform = permute_for_llama(self.n_head_kv)
        return tensor

    def extra_tensors(self) -> dict[str, np.ndarray]:
        factors = llama3_rope_factors(self.config, self.head_dim)
        return {} if factors is None else {"rope_freqs.weight": factors}


class Qwen2(Decoder):
    gguf_name = "qwen2"
    hf_names = ("Qwen2ForCausalLM",)
    biases = True

    def metadata(self):
        return _key("qwen2", self.common_metadata())


class Gemma3(Decoder):
    gguf_name = "gemma3"
    hf_names = ("Gemma3ForCausalLM",)
    layer_names = {
        **_DECODER_LAYER,
        "post_attention_layernorm": "post_attention_norm",
        "pre_feedforward_layernorm": "ffn_norm",
        "post_feedforward_layernorm": "post_ffw_norm",
    }

    def metadata(self):
        values = self.common_metadata()
        values["attention.key_length"] = (self.head_dim, ValueType.UINT32)
        values["attention.value_length"] = (self.head_dim, ValueType.UINT32)
        values["attention.sliding_window"] = (self.config.int("sliding_window", high=MAX_CONTEXT), ValueType.UINT32)
        softcap = self.config.get("final_logit_softcapping")
        if softcap:
            values["final_logit_softcapping"] = (self.config.float("final_logit_softcapping"), ValueType.FLOAT32)
        return _key("gemma3", values)

    def make(self, name: str, source: str) -> Tensor:
        tensor = super().make(name, source)
        if name.endswith("norm.weight"):  # Gemma scales by (1 + w); GGUF stores the sum
            tensor.transform = lambda w: w.astype(np.float32) + np.float32(1.0)
        return tensor

    def extra_layer_tensors(self) -> list[str]:
        return ["post_attention_norm", "post_ffw_norm", "attn_q_norm", "attn_k_norm"]


# -- BERT ------------------------------------------------------------------------------------------

_BERT_TOP = {
    "embeddings.word_embeddings": "token_embd",
    "embeddings.position_embeddings": "position_embd",
    "embeddings.token_type_embeddings": "token_types",
    "embeddings.LayerNorm": "token_embd_norm",
}
_BERT_LAYER_RE = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias|gamma|beta)$")
_BERT_LAYER = {
    "attention.self.query": "attn_q",
    "attention.self.key": "attn_k",
    "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output",
    "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up",
    "output.dense": "ffn_down",
    "output.LayerNorm": "layer_output_norm",
}
_BERT_SKIPPED = re.compile(r"^(pooler\.|cls\.|embeddings\.position_ids$)")
_SUFFIX = {"gamma": "weight", "beta": "bias", "weight": "weight", "bias": "bias"}
_ST = "sentence_transformers.models."


class Bert(Architecture):
    gguf_name = "bert"
    hf_names = ("BertModel", "BertForMaskedLM", "BertForSequenceClassification")
    tokenizer = "wordpiece"

    def __init__(self, config: Config, folder):
        super().__init__(config, folder)
        c = config
        self.n_layer = c.int("num_hidden_layers", high=MAX_LAYERS)
        self.n_embd = c.int("hidden_size")
        self.n_ff = c.int("intermediate_size")
        self.n_head = c.int("num_attention_heads", high=4096)
        if self.n_embd % self.n_head:
            raise InvalidModelFile("config.json: hidden_size is not a multiple of num_attention_heads")
        self.context = c.int("max_position_embeddings", high=MAX_CONTEXT)
        self.type_vocab = c.int("type_vocab_size", 2, high=1 << 16)
        self.vocab = c.int("vocab_size", high=1 << 22)
        if c.get("hidden_act", "gelu") != "gelu":
            raise InvalidModelFile(f"config.json: BERT activation {c.get('hidden_act')!r} is not supported (only gelu)")
        if c.get("position_embedding_type", "absolute") != "absolute":
            raise InvalidModelFile("config.json: only absolute position embeddings are supported for BERT")
        self.pooling, self.normalize = sentence_transformer_head(folder)

    def metadata(self):
        values = {
            "context_length": (self.context, ValueType.UINT32),
            "embedding_length": (self.n_embd, ValueType.UINT32),
            "feed_forward_length": (self.n_ff, ValueType.UINT32),
            "block_count": (self.n_layer, ValueType.UINT32),
            "attention.head_count": (self.n_head, ValueType.UINT32),
            "attention.layer_norm_epsilon": (self.config.float("layer_norm_eps", 1e-12), ValueType.FLOAT32),
            "attention.causal": (False, ValueType.BOOL),
            "pooling_type": (self.pooling, ValueType.UINT32),
            "normalize_embeddings": (self.normalize, ValueType.BOOL),
        }
        out = _key("bert", values)
        out["tokenizer.ggml.token_type_count"] = (self.type_vocab, ValueType.UINT32)
        return out

    def tensor(self, hf_name: str) -> Tensor | None:
        name = hf_name[5:] if hf_name.startswith("bert.") else hf_name
        if _BERT_SKIPPED.match(name):
            return None
        stem, _, suffix = name.rpartition(".")
        if stem in _BERT_TOP and suffix in _SUFFIX:
            gguf = f"{_BERT_TOP[stem]}.{_SUFFIX[suffix]}"
            return Tensor(gguf, hf_name, force_f32=gguf.endswith(".bias") or "norm" in gguf
                          or gguf.startswith(("position_embd", "token_types")))
        match = _BERT_LAYER_RE.match(name)
        if match and match.group(2) in _BERT_LAYER and int(match.group(1)) < self.n_layer:
            index, part, suffix = match.groups()
            gguf = f"blk.{index}.{_BERT_LAYER[part]}.{_SUFFIX[suffix]}"
            return Tensor(gguf, hf_name, force_f32=gguf.endswith(".bias") or "norm" in gguf)
        raise InvalidModelFile(f"tensor {hf_name!r} has no place in a bert model")

    def expected_shape(self, name: str):
        d, ff = self.n_embd, self.n_ff
        base = name.split(".", 2)[-1] if name.startswith("blk.") else name
        shapes = {
            "token_embd.weight": (self.vocab, d),
            "position_embd.weight": (self.context, d),
            "token_types.weight": (self.type_vocab, d),
            "attn_q.weight": (d, d), "attn_k.weight": (d, d), "attn_v.weight": (d, d), "attn_output.weight": (d, d),
            "ffn_up.weight": (ff, d), "ffn_up.bias": (ff,), "ffn_down.weight": (d, ff),
        }
        if base in shapes:
            return shapes[base]
        return (d,) if base.endswith((".bias", "norm.weight")) else None

    def required(self) -> list[str]:
        names = [f"{t}.weight" for t in ("token_embd", "position_embd", "token_types", "token_embd_norm")]
        names.append("token_embd_norm.bias")
        for i in range(self.n_layer):
            for part in ("attn_q", "attn_k", "attn_v", "attn_output", "attn_output_norm", "ffn_up", "ffn_down",
                         "layer_output_norm"):
                names += [f"blk.{i}.{part}.weight", f"blk.{i}.{part}.bias"]
        return names


def sentence_transformer_head(folder) -> tuple[int, bool]:
    """Pooling type and normalisation from a sentence-transformers folder's ``modules.json``
    (CLS pooling, as BERT's own pooler uses, when the folder has none)."""
    modules = folder.json("modules.json", kind=list)
    if modules is None:
        return POOLING_CLS, False
    pooling, normalize = POOLING_CLS, False
    for module in modules:
        kind = module.get("type", "") if isinstance(module, dict) else ""
        if kind == _ST + "Pooling":
            path = module.get("path") or ""
            settings = folder.json(f"{path}/config.json" if path else "config_pooling.json")
            if settings is None:
                raise InvalidModelFile(f"modules.json names a pooling module at {path!r}, but {path}/config.json is missing")
            if settings.get("pooling_mode_mean_tokens"):
                pooling = POOLING_MEAN
            elif settings.get("pooling_mode_cls_token"):
                pooling = POOLING_CLS
            elif settings.get("pooling_mode_lasttoken"):
                pooling = POOLING_LAST
            else:
                raise InvalidModelFile("only mean, CLS and last-token pooling are supported")
        elif kind == _ST + "Normalize":
            normalize = True
        elif kind != _ST + "Transformer":
            raise InvalidModelFile(f"sentence-transformers module {kind.removeprefix(_ST) or '?'} is not supported")
    return pooling, normalize


ARCHITECTURES = {name: cls for cls in (Llama, Qwen2, Gemma3, Bert) for name in cls.hf_names}


def architecture_for(config: dict, folder) -> Architecture:
    names = config.get("architectures")
    name = names[0] if isinstance(names, list) and names and isinstance(names[0], str) else None
    if name is None:
        raise InvalidModelFile("config.json does not name the model's architecture")
    cls = ARCHITECTURES.get(name)
    if cls is None:
        supported = ", ".join(sorted(ARCHITECTURES))
        raise InvalidModelFile(f"unsupported architecture \"{name}\"; ollamakit converts {supported}")
    return cls(Config(config), folder)
