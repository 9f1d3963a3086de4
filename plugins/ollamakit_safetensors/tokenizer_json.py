"""A Hugging Face tokenizer (``tokenizer.json`` and its config files) as GGUF tokenizer metadata,
the way llama.cpp's converter writes it:

* byte-level BPE → ``gpt2``, with the merges and the ``tokenizer.ggml.pre`` whose word-splitting
  regexes are the ones the tokenizer's pre-tokenizer uses;
* SentencePiece-style BPE (``▁`` for spaces, byte fallback) and Unigram → ``llama``, with scores;
* WordPiece → ``bert``, in the phantom-space spelling (``▁word``, continuations bare).

Special tokens come from ``tokenizer_config.json`` (or ``special_tokens_map.json``, then
``config.json``), and the chat template from ``tokenizer_config.json`` or ``chat_template.jinja``.
"""

from __future__ import annotations

import re

from ollamakit.errors import InvalidModelFile
from ollamakit.lib.gguf.constants import ValueType

from .folder import MAX_TOKENIZER_JSON, ModelFolder

MAX_VOCAB = 1 << 22
SPACE = "\u2581"
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
SPECIAL_KEYS = {
    "bos": "bos_token_id",
    "eos": "eos_token_id",
    "unk": "unknown_token_id",
    "sep": "seperator_token_id",
    "pad": "padding_token_id",
    "mask": "mask_token_id",
}
_CASE_INSENSITIVE_CONTRACTIONS = "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
_SPELLED_CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")

Metadata = dict[str, tuple[object, int]]


def tokenizer_metadata(
    folder: ModelFolder, config: dict, *, wordpiece_only: bool = False
) -> Metadata:
    """GGUF ``tokenizer.*`` keys for the folder's tokenizer (value and GGUF type per key)."""
    tokenizer = folder.json("tokenizer.json", MAX_TOKENIZER_JSON)
    settings = folder.json("tokenizer_config.json") or {}
    if tokenizer is None:
        if folder.has("vocab.txt"):
            tokenizer = _wordpiece_from_vocab_txt(folder, settings)
        else:
            raise InvalidModelFile("the model folder has no tokenizer.json")
    model = tokenizer.get("model")
    if not isinstance(model, dict):
        raise InvalidModelFile("tokenizer.json has no model object")
    kind = model.get("type") or _guess_kind(model)
    vocab_size = config.get("vocab_size") if isinstance(config.get("vocab_size"), int) else 0
    tokens, types, scores = _vocabulary(tokenizer, model, kind, vocab_size)
    if wordpiece_only and kind != "WordPiece":
        raise InvalidModelFile(f"a BERT model needs a WordPiece tokenizer, this one is {kind}")

    out: Metadata = {}
    if kind == "WordPiece":
        out.update(_wordpiece(tokens, types, tokenizer))
    elif kind == "BPE" and _is_byte_level(tokenizer):
        out.update(_byte_level_bpe(tokens, types, model, tokenizer, settings))
    elif kind == "Unigram" or (kind == "BPE" and _is_sentencepiece(tokenizer)):
        out.update(_sentencepiece(tokens, types, scores, kind, tokenizer))
    elif kind == "BPE":
        raise InvalidModelFile(
            "tokenizer.json: a BPE tokenizer that is neither byte-level nor SentencePiece-style cannot be converted"
        )
    else:
        raise InvalidModelFile(f"tokenizer.json model type {kind!r} cannot be converted")
    out.update(_special_tokens(folder, tokenizer, settings, config, tokens))
    template = chat_template(folder, settings)
    if template:
        out["tokenizer.chat_template"] = (template, ValueType.STRING)
    return out


# -- the vocabulary ------------------------------------------------------------------------------


def _guess_kind(model: dict) -> str:
    if isinstance(model.get("vocab"), list):
        return "Unigram"
    if "merges" in model:
        return "BPE"
    if "continuing_subword_prefix" in model or "max_input_chars_per_word" in model:
        return "WordPiece"
    raise InvalidModelFile("tokenizer.json does not say what kind of tokenizer it is")


def _check_id(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_VOCAB:
        raise InvalidModelFile(f"tokenizer.json: {what} has an invalid id {value!r}")
    return value


def _vocabulary(tokenizer: dict, model: dict, kind: str, vocab_size: int):
    """Tokens, token types and (Unigram) scores by id; ids no token uses become ``[PADn]``."""
    by_id: dict[int, str] = {}
    scores: dict[int, float] = {}
    vocab = model.get("vocab")
    if kind == "Unigram":
        if not isinstance(vocab, list):
            raise InvalidModelFile(
                "tokenizer.json: a Unigram vocab must be a list of [piece, score]"
            )
        for index, entry in enumerate(vocab):
            if not (
                isinstance(entry, list)
                and len(entry) == 2
                and isinstance(entry[0], str)
                and isinstance(entry[1], (int, float))
                and not isinstance(entry[1], bool)
            ):
                raise InvalidModelFile(
                    f"tokenizer.json: Unigram entry {index} is not [piece, score]"
                )
            by_id[_check_id(index, entry[0])] = entry[0]
            scores[index] = float(entry[1])
    else:
        if not isinstance(vocab, dict):
            raise InvalidModelFile("tokenizer.json: the vocab must be an object of token ids")
        for token, token_id in vocab.items():
            token_id = _check_id(token_id, repr(token))
            if token_id in by_id:
                raise InvalidModelFile(f"tokenizer.json: id {token_id} is given to two tokens")
            by_id[token_id] = token
    added_types: dict[int, int] = {}
    added = tokenizer.get("added_tokens") or []
    if not isinstance(added, list):
        raise InvalidModelFile("tokenizer.json: added_tokens must be a list")
    for entry in added:
        if not isinstance(entry, dict) or not isinstance(entry.get("content"), str):
            raise InvalidModelFile("tokenizer.json: an added token lacks its content")
        token_id = _check_id(entry.get("id"), repr(entry["content"]))
        by_id[token_id] = entry["content"]
        added_types[token_id] = CONTROL if entry.get("special") else USER_DEFINED
    if not by_id:
        raise InvalidModelFile("tokenizer.json has an empty vocabulary")
    size = max(max(by_id) + 1, vocab_size if 0 < vocab_size <= MAX_VOCAB else 0)
    tokens, types = [], []
    for token_id in range(size):
        token = by_id.get(token_id)
        if token is None:
            tokens.append(f"[PAD{token_id}]")
            types.append(UNUSED)
        else:
            tokens.append(token)
            types.append(added_types.get(token_id, NORMAL))
    return tokens, types, scores


def _wordpiece_from_vocab_txt(folder: ModelFolder, settings: dict) -> dict:
    """An old BERT folder with only ``vocab.txt``: one token per line, ids in line order."""
    lines = folder.text("vocab.txt", MAX_TOKENIZER_JSON).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    special = {v for k, v in settings.items() if k.endswith("_token") and isinstance(v, str)}
    return {
        "model": {"type": "WordPiece", "vocab": {t: i for i, t in enumerate(lines)}},
        "added_tokens": [
            {"id": i, "content": t, "special": True} for i, t in enumerate(lines) if t in special
        ],
        "normalizer": {"type": "BertNormalizer", "lowercase": settings.get("do_lower_case", True)},
    }


# -- the three families ---------------------------------------------------------------------------


def _wordpiece(tokens: list[str], types: list[int], tokenizer: dict) -> Metadata:
    def phantom(token: str, kind: int) -> str:
        if kind != NORMAL or (token.startswith("[") and token.endswith("]")):
            return token
        return token[2:] if token.startswith("##") else SPACE + token

    out: Metadata = {
        "tokenizer.ggml.model": ("bert", ValueType.STRING),
        "tokenizer.ggml.pre": ("default", ValueType.STRING),
        "tokenizer.ggml.tokens": ([phantom(t, k) for t, k in zip(tokens, types)], ValueType.STRING),
        "tokenizer.ggml.token_type": (types, ValueType.INT32),
    }
    normalizer = tokenizer.get("normalizer") or {}
    if isinstance(normalizer, dict) and normalizer.get("lowercase") is False:
        # llama.cpp always lower-cases; our tokenizer honours a cased model when told.
        out["tokenizer.ggml.normalizer.lowercase"] = (False, ValueType.BOOL)
    return out


def _is_byte_level(tokenizer: dict) -> bool:
    def has_byte_level(node) -> bool:
        if not isinstance(node, dict):
            return False
        if node.get("type") == "ByteLevel":
            return True
        children = node.get("pretokenizers") or node.get("decoders") or []
        return any(has_byte_level(child) for child in children if isinstance(child, dict))

    return has_byte_level(tokenizer.get("pre_tokenizer")) or has_byte_level(
        tokenizer.get("decoder")
    )


def _is_sentencepiece(tokenizer: dict) -> bool:
    """SentencePiece-style: byte fallback, or spaces spelled as ``▁`` by a normaliser step."""

    def spells_space(node) -> bool:
        if not isinstance(node, dict):
            return False
        if node.get("type") == "Metaspace" or (
            node.get("type") in ("Replace", "Prepend")
            and SPACE in (node.get("content"), node.get("prepend"))
        ):
            return True
        children = node.get("normalizers") or node.get("pretokenizers") or []
        return any(spells_space(child) for child in children)

    model = tokenizer.get("model") or {}
    return (
        bool(model.get("byte_fallback"))
        or spells_space(tokenizer.get("normalizer"))
        or spells_space(tokenizer.get("pre_tokenizer"))
    )


def _merges(model: dict) -> list[str]:
    merges = model.get("merges")
    if not isinstance(merges, list):
        raise InvalidModelFile("tokenizer.json: a BPE model needs a merges list")
    out = []
    for merge in merges:
        if isinstance(merge, str) and merge.count(" ") == 1:
            out.append(merge)
        elif isinstance(merge, list) and len(merge) == 2 and all(isinstance(p, str) for p in merge):
            out.append(" ".join(p.replace(" ", chr(ord(" ") + 256)) for p in merge))
        else:
            raise InvalidModelFile(f"tokenizer.json: malformed merge {merge!r}")
    return out


def _byte_level_bpe(tokens, types, model: dict, tokenizer: dict, settings: dict) -> Metadata:
    return {
        "tokenizer.ggml.model": ("gpt2", ValueType.STRING),
        "tokenizer.ggml.pre": (pre_tokenizer_name(tokenizer, settings), ValueType.STRING),
        "tokenizer.ggml.tokens": (tokens, ValueType.STRING),
        "tokenizer.ggml.token_type": (types, ValueType.INT32),
        "tokenizer.ggml.merges": (_merges(model), ValueType.STRING),
    }


def _split_patterns(node) -> list[str] | None:
    """The regexes a pre-tokenizer splits with, in order; None for a step we cannot express."""
    from ollamakit.lib.tokenizers.pretokenizers import GPT2

    if node is None:
        return []
    if not isinstance(node, dict):
        return None
    kind = node.get("type")
    if kind == "Sequence":
        found = []
        for child in node.get("pretokenizers") or []:
            part = _split_patterns(child)
            if part is None:
                return None
            found += part
        return found
    if kind == "ByteLevel":
        return [GPT2] if node.get("use_regex", True) else []
    if kind == "Digits":
        return [r"\p{N}"] if node.get("individual_digits") else [r"\p{N}+"]
    if (
        kind == "Split"
        and node.get("behavior", "Isolated") == "Isolated"
        and not node.get("invert")
    ):
        pattern = node.get("pattern") or {}
        if isinstance(pattern.get("Regex"), str):
            return [pattern["Regex"]]
        if isinstance(pattern.get("String"), str):
            return [re.escape(pattern["String"])]
    return None


def _normalise_regex(pattern: str) -> str:
    """llama.cpp spells the case-insensitive contractions group out, letter by letter."""
    return pattern.replace(_CASE_INSENSITIVE_CONTRACTIONS, _SPELLED_CONTRACTIONS)


def pre_tokenizer_name(tokenizer: dict, settings: dict) -> str:
    """The ``tokenizer.ggml.pre`` family whose regexes equal this tokenizer's; a tie between
    families is settled by ``clean_up_tokenization_spaces``."""
    from ollamakit.lib.tokenizers import PRE_TOKENIZERS

    patterns = _split_patterns(tokenizer.get("pre_tokenizer"))
    if patterns is None:
        raise InvalidModelFile(
            "tokenizer.json: its pre-tokenizer has a step that cannot be converted"
        )
    wanted = tuple(_normalise_regex(p) for p in patterns)
    families = list(dict.fromkeys(PRE_TOKENIZERS.values()))  # in the order they are listed
    matches = [spec for spec in families if spec.patterns == wanted]
    if not matches:
        raise InvalidModelFile(
            "tokenizer.json: its pre-tokenizer splits words in a way no known model family does"
        )
    clean = settings.get("clean_up_tokenization_spaces")
    if isinstance(clean, bool):
        matches = [s for s in matches if s.clean_spaces == clean] or matches
    return matches[0].aliases[0]


def _sentencepiece(tokens, types, scores: dict[int, float], kind: str, tokenizer: dict) -> Metadata:
    """SentencePiece models run as llama.cpp's ``llama`` tokenizer: merges follow the scores."""
    types = list(types)
    out_scores = []
    for token_id, (token, kind_of) in enumerate(zip(tokens, types)):
        if kind_of == NORMAL and _BYTE_TOKEN.match(token):
            types[token_id] = BYTE
        if kind == "Unigram":
            out_scores.append(scores.get(token_id, -1000.0) if types[token_id] != BYTE else 0.0)
        elif types[token_id] == BYTE:
            out_scores.append(0.0)
        elif types[token_id] == NORMAL:
            out_scores.append(-float(token_id))  # pieces are numbered in merge order
        else:
            out_scores.append(-1000.0)
    unk = (tokenizer.get("model") or {}).get("unk_token")
    if isinstance(unk, str):
        for token_id, token in enumerate(tokens):
            if token == unk and types[token_id] == NORMAL:  # an added special token stays CONTROL
                types[token_id] = UNKNOWN
    return {
        "tokenizer.ggml.model": ("llama", ValueType.STRING),
        "tokenizer.ggml.pre": ("default", ValueType.STRING),
        "tokenizer.ggml.tokens": (tokens, ValueType.STRING),
        "tokenizer.ggml.scores": (out_scores, ValueType.FLOAT32),
        "tokenizer.ggml.token_type": (types, ValueType.INT32),
        "tokenizer.ggml.add_space_prefix": (_adds_space_prefix(tokenizer), ValueType.BOOL),
    }


def _adds_space_prefix(tokenizer: dict) -> bool:
    def walk(node) -> bool:
        if not isinstance(node, dict):
            return False
        kind = node.get("type")
        if kind == "Prepend" and node.get("prepend") == SPACE:
            return True
        if kind == "Metaspace":
            return node.get("prepend_scheme", "always") != "never" and node.get(
                "add_prefix_space", True
            )
        children = node.get("normalizers") or node.get("pretokenizers") or []
        return any(walk(child) for child in children)

    return walk(tokenizer.get("normalizer")) or walk(tokenizer.get("pre_tokenizer"))


# -- special tokens and the chat template -----------------------------------------------------------


def _token_text(value) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _special_tokens(
    folder: ModelFolder, tokenizer: dict, settings: dict, config: dict, tokens: list[str]
) -> Metadata:
    ids = {text: i for i, text in enumerate(tokens)}
    for entry in tokenizer.get("added_tokens") or []:
        ids[entry["content"]] = entry["id"]  # an added token wins over a vocabulary spelling
    names = dict(folder.json("special_tokens_map.json") or {})
    names.update({k: v for k, v in settings.items() if k.endswith("_token")})
    texts = {
        kind: _token_text(names.get(f"{kind}_token"))
        for kind in ("bos", "eos", "unk", "sep", "pad", "mask", "cls")
    }
    texts["bos"] = texts["bos"] or texts["cls"]  # BERT-style: [CLS] opens, [SEP] closes
    texts["eos"] = texts["eos"] or texts["sep"]

    out: Metadata = {}
    for kind, key in SPECIAL_KEYS.items():
        token_id = ids.get(texts[kind]) if texts[kind] else None
        if token_id is None:
            value = config.get(f"{kind}_token_id")
            token_id = value if isinstance(value, int) and not isinstance(value, bool) else None
        if token_id is not None and 0 <= token_id < len(tokens):
            out[f"tokenizer.ggml.{key}"] = (token_id, ValueType.UINT32)

    for kind, added in _added_specials(tokenizer, texts, settings).items():
        out[f"tokenizer.ggml.add_{kind}_token"] = (added, ValueType.BOOL)
    return out


def _added_specials(tokenizer: dict, texts: dict, settings: dict) -> dict[str, bool]:
    """Whether encoding adds BOS/EOS: the config's flags, else the post-processor's template."""
    found = {}
    processor = tokenizer.get("post_processor") or {}
    steps = processor.get("processors", [processor]) if isinstance(processor, dict) else []
    for step in steps:
        if isinstance(step, dict) and step.get("type") == "TemplateProcessing":
            single = step.get("single") or []
            if len(single) > 1:
                first = (
                    (single[0].get("SpecialToken") or {}).get("id")
                    if isinstance(single[0], dict)
                    else None
                )
                last = (
                    (single[-1].get("SpecialToken") or {}).get("id")
                    if isinstance(single[-1], dict)
                    else None
                )
                if first:
                    found["bos"] = first in (texts["bos"], texts["cls"])
                if last:
                    found["eos"] = last == texts["eos"]
        elif isinstance(step, dict) and step.get("type") == "RobertaProcessing":
            found["bos"] = found["eos"] = True
    for kind in ("bos", "eos"):
        if isinstance(settings.get(f"add_{kind}_token"), bool):
            found[kind] = settings[f"add_{kind}_token"]
    return found


def chat_template(folder: ModelFolder, settings: dict) -> str | None:
    template = settings.get("chat_template")
    if isinstance(template, list):  # named templates: the default one is the chat template
        template = next(
            (
                t.get("template")
                for t in template
                if isinstance(t, dict) and t.get("name") == "default"
            ),
            None,
        )
    if isinstance(template, str) and template:
        return template
    text = folder.text("chat_template.jinja")
    if text:
        return text
    alternative = folder.json("chat_template.json")
    if alternative and isinstance(alternative.get("chat_template"), str):
        return alternative["chat_template"]
    return None
