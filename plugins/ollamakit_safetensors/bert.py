"""BERT encoders (``BertModel`` and sentence-transformers folders) to llama.cpp's ``bert`` GGUF:
tensor names, F32 position and token-type embeddings, and the pooling type and normalisation
that the folder's ``modules.json`` declares.

A cross-encoder (``BertForSequenceClassification``, what sentence-transformers' ``CrossEncoder``
loads) becomes a reranker, pooling type ``rank``, as llama.cpp's converter makes it: the
classifier is ``cls.output`` and its labels ``classifier.output_labels``. Unlike llama.cpp's
converter, which drops BERT's pooler, the pooler (a dense layer and tanh on [CLS]) is kept as
``cls``, the tensor llama.cpp's rank head applies with exactly that tanh: the model's scores are
then the ones transformers computes."""

from __future__ import annotations

import re

from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf.constants import ValueType

from .base import MAX_CONTEXT, Architecture, Config, Tensor, arch_keys

POOLING_MEAN, POOLING_CLS, POOLING_LAST, POOLING_RANK = 1, 2, 3, 4
MAX_LABELS = 1 << 12

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
_BERT_HEAD = {"pooler.dense": "cls", "classifier": "cls.output"}  # a cross-encoder's head
_SUFFIX = {"gamma": "weight", "beta": "bias", "weight": "weight", "bias": "bias"}
_ST = "sentence_transformers.models."


class Bert(Architecture):
    gguf_name = "bert"
    hf_names = ("BertModel", "BertForMaskedLM", "BertForSequenceClassification")
    tokenizer = "wordpiece"

    def __init__(self, config: Config, folder):
        super().__init__(config, folder)
        c = config
        if self.n_embd % self.n_head:
            raise InvalidModelFile(
                "config.json: hidden_size is not a multiple of num_attention_heads"
            )
        self.context = c.int("max_position_embeddings", high=MAX_CONTEXT)
        self.type_vocab = c.int("type_vocab_size", 2, high=1 << 16)
        self.vocab = c.int("vocab_size", high=1 << 22)
        if c.get("hidden_act", "gelu") != "gelu":
            raise InvalidModelFile(
                f"config.json: BERT activation {c.get('hidden_act')!r} is not supported (only gelu)"
            )
        if c.get("position_embedding_type", "absolute") != "absolute":
            raise InvalidModelFile(
                "config.json: only absolute position embeddings are supported for BERT"
            )
        self.labels = classifier_labels(c) if _is_classifier(c) else None
        if self.labels is not None:
            self.pooling, self.normalize = POOLING_RANK, False
        else:
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
                self.config.float("layer_norm_eps", 1e-12),
                ValueType.FLOAT32,
            ),
            "attention.causal": (False, ValueType.BOOL),
            "pooling_type": (self.pooling, ValueType.UINT32),
            "normalize_embeddings": (self.normalize, ValueType.BOOL),
        }
        if self.labels is not None:
            values["classifier.output_labels"] = (self.labels, ValueType.STRING)
        out = arch_keys("bert", values)
        out["tokenizer.ggml.token_type_count"] = (self.type_vocab, ValueType.UINT32)
        return out

    def tensor(self, hf_name: str) -> Tensor | None:
        name = hf_name[5:] if hf_name.startswith("bert.") else hf_name
        stem, _, suffix = name.rpartition(".")
        if self.labels is not None and stem in _BERT_HEAD and suffix in ("weight", "bias"):
            return Tensor(f"{_BERT_HEAD[stem]}.{suffix}", hf_name, force_f32=suffix == "bias")
        if _BERT_SKIPPED.match(name):
            return None
        if stem in _BERT_TOP and suffix in _SUFFIX:
            gguf = f"{_BERT_TOP[stem]}.{_SUFFIX[suffix]}"
            return Tensor(
                gguf,
                hf_name,
                force_f32=gguf.endswith(".bias")
                or "norm" in gguf
                or gguf.startswith(("position_embd", "token_types")),
            )
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
            "attn_q.weight": (d, d),
            "attn_k.weight": (d, d),
            "attn_v.weight": (d, d),
            "attn_output.weight": (d, d),
            "ffn_up.weight": (ff, d),
            "ffn_up.bias": (ff,),
            "ffn_down.weight": (d, ff),
            "cls.weight": (d, d),
        }
        if self.labels is not None:
            shapes.update(
                {"cls.output.weight": (len(self.labels), d), "cls.output.bias": (len(self.labels),)}
            )
        if base in shapes:
            return shapes[base]
        return (d,) if base.endswith((".bias", "norm.weight")) else None

    def required(self) -> list[str]:
        names = [
            f"{t}.weight" for t in ("token_embd", "position_embd", "token_types", "token_embd_norm")
        ]
        names.append("token_embd_norm.bias")
        for i in range(self.n_layer):
            for part in (
                "attn_q",
                "attn_k",
                "attn_v",
                "attn_output",
                "attn_output_norm",
                "ffn_up",
                "ffn_down",
                "layer_output_norm",
            ):
                names += [f"blk.{i}.{part}.weight", f"blk.{i}.{part}.bias"]
        if self.labels is not None:
            names += ["cls.output.weight", "cls.output.bias"]
        return names

    def parameters(self) -> dict[str, object]:
        # sentence-transformers cuts every input at max_seq_length tokens ([CLS] and [SEP]
        # included), often below the model's positions (all-MiniLM: 256 of 512). The GGUF keeps
        # the positions, as llama.cpp's and Ollama's converters write them; num_ctx carries the
        # limit, and /api/embed truncates to num_ctx (or refuses with truncate: false), so the
        # vectors of long inputs are sentence-transformers' own.
        return {"num_ctx": self.max_seq_length} if self.max_seq_length else {}


def _is_classifier(config: Config) -> bool:
    names = config.get("architectures")
    return (
        isinstance(names, list)
        and bool(names)
        and str(names[0]).endswith("ForSequenceClassification")
    )


def classifier_labels(config: Config) -> list[str]:
    """The classifier's output labels in index order (``id2label``; one ``LABEL_0`` score,
    a cross-encoder's usual head, when the config has none)."""
    count = config.int("num_labels", 0, low=0, high=MAX_LABELS)
    labels = config.get("id2label")
    if labels is None:
        return [f"LABEL_{i}" for i in range(count or 1)]
    if not isinstance(labels, dict) or not 0 < len(labels) <= MAX_LABELS:
        raise InvalidModelFile("config.json: id2label must map each class index to a name")
    try:
        ordered = sorted((int(k), v) for k, v in labels.items())
    except (TypeError, ValueError):
        raise InvalidModelFile("config.json: id2label keys must be class indices") from None
    if [k for k, _ in ordered] != list(range(len(ordered))) or not all(
        isinstance(v, str) for _, v in ordered
    ):
        raise InvalidModelFile("config.json: id2label must name classes 0 to n-1")
    return [v for _, v in ordered]


def sentence_transformer_length(folder, context: int) -> int:
    """``max_seq_length`` from ``sentence_bert_config.json`` when it is below ``context``; 0
    when there is none (or it does not limit anything)."""
    settings = folder.json("sentence_bert_config.json")
    value = settings.get("max_seq_length") if settings else None
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidModelFile(
            "sentence_bert_config.json: max_seq_length must be a positive whole number"
        )
    return value if value < context else 0


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
                raise InvalidModelFile(
                    f"modules.json names a pooling module at {path!r}, but {path}/config.json is missing"
                )
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
            raise InvalidModelFile(
                f"sentence-transformers module {kind.removeprefix(_ST) or '?'} is not supported"
            )
    return pooling, normalize
