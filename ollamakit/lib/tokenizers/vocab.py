"""The vocabulary of a GGUF model: tokens, their kinds, the special ids, and special-token splitting.

Everything here follows what llama.cpp does when it loads the same metadata, because the engine
must see the very token ids that llama.cpp would: which ids count as control tokens, which ends a
generation, which BOS/EOS a model gets when its file leaves them out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import compress, repeat
from functools import cached_property

from ollamakit.errors import InvalidModelFile

# Token attributes (a bit set, as llama.cpp keeps them).
UNKNOWN, UNUSED, NORMAL, CONTROL, USER_DEFINED, BYTE = 1, 2, 4, 8, 16, 32
LSTRIP, RSTRIP = 128, 256
SPECIAL = CONTROL | USER_DEFINED | UNKNOWN  # the kinds that special-token splitting looks for

# tokenizer.ggml.token_type values
_TYPE_TO_ATTR = {1: NORMAL, 2: UNKNOWN, 3: CONTROL, 4: USER_DEFINED, 5: UNUSED, 6: BYTE}

MAX_VOCAB = 1 << 24  # no real vocabulary comes near; anything larger is a broken or hostile file
_ASCII_SPACE = " \t\n\v\f\r"

# Token texts that llama.cpp takes for special roles when the file does not name them.
_EOT_TEXTS = (
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
)
_EOM_TEXTS = ("<|eom_id|>",)
_FIM_PAD_TEXTS = ("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]")
_FIM_REP_TEXTS = ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>")
_FIM_SEP_TEXTS = ("<|file_sep|>",)
_FIM_OTHER_TEXTS = (
    (
        "<|fim_prefix|>",
        "<fim-prefix>",
        "<fim_prefix>",
        "<｜fim▁begin｜>",
        "<PRE>",
        "▁<PRE>",
        "<|code_prefix|>",
        "<|prefix|>",
    ),
    (
        "<|fim_suffix|>",
        "<fim-suffix>",
        "<fim_suffix>",
        "<｜fim▁hole｜>",
        "<SUF>",
        "▁<SUF>",
        "<|code_suffix|>",
        "<|suffix|>",
    ),
    (
        "<|fim_middle|>",
        "<fim-middle>",
        "<fim_middle>",
        "<｜fim▁end｜>",
        "<MID>",
        "▁<MID>",
        "<|code_middle|>",
        "<|middle|>",
    ),
)
_EOG_TEXTS = (
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
)
_ALWAYS_RENDERED = ("<|channel|>", "<|message|>", "<|start|>", "<|constrain|>")  # gpt-oss

# Defaults per tokenizer model before the file's own ids apply: (bos, eos, unk, sep, pad).
_DEFAULT_IDS = {
    "llama": (1, 2, 0, None, None),
    "bert": (101, None, 100, 102, 0),
    "gpt2": (11, 11, None, None, None),
}


def _key(metadata: dict, name: str):
    return metadata.get(f"tokenizer.ggml.{name}")


def _int_list(metadata: dict, name: str, n_tokens: int) -> list | tuple | None:
    values = _key(metadata, name)
    if values is None:
        return None
    if not isinstance(values, (list, tuple)) or len(values) < n_tokens:
        raise InvalidModelFile(
            f"tokenizer.ggml.{name} must be an array with at least {n_tokens} entries"
        )
    return values


@dataclass
class SpecialIds:
    bos: int | None
    eos: int | None
    eot: int | None = None
    eom: int | None = None
    unk: int | None = None
    sep: int | None = None
    pad: int | None = None
    mask: int | None = None
    fim_pre: int | None = None
    fim_suf: int | None = None
    fim_mid: int | None = None
    fim_pad: int | None = None
    fim_rep: int | None = None
    fim_sep: int | None = None


class Vocabulary:
    """Token texts, scores and attributes, with llama.cpp's view of special tokens."""

    def __init__(self, metadata: dict, model: str, *, has_bos: bool = True):
        tokens = _key(metadata, "tokens")
        if not isinstance(tokens, (list, tuple)) or not tokens:
            raise InvalidModelFile("the model has no tokenizer.ggml.tokens array")
        if len(tokens) > MAX_VOCAB:
            raise InvalidModelFile(f"vocabulary of {len(tokens)} tokens is larger than {MAX_VOCAB}")
        if set(map(type, tokens)) != {str}:
            raise InvalidModelFile("tokenizer.ggml.tokens must hold strings")
        n = len(tokens)
        if "" in tokens:  # llama.cpp names empty tokens so that each text is unique again
            tokens = [t or f"[EMPTY_{i}]" for i, t in enumerate(tokens)]
        self.tokens: list[str] = list(tokens)
        self.size = n

        scores = _int_list(metadata, "scores", n)
        if scores is not None and not set(map(type, scores[:n])) <= {float, int}:
            raise InvalidModelFile("tokenizer.ggml.scores must hold numbers")
        self.scores: list[float] | None = None if scores is None else list(map(float, scores[:n]))

        types = _int_list(metadata, "token_type", n)
        if types is None:
            self.attrs = [NORMAL] * n
        else:
            self.attrs = list(map(_TYPE_TO_ATTR.get, types[:n], repeat(0)))

        # Later duplicates win, as in llama.cpp's map.
        self.token_to_id: dict[str, int] = dict(zip(self.tokens, range(n)))
        self._read_special_ids(metadata, model, has_bos)
        self._infer_special_roles()
        self._apply_name_rules(metadata)
        self._special_trie  # built now, so the first request does not pay for it

    # -- special ids -------------------------------------------------------------------------
    def _read_special_ids(self, metadata: dict, model: str, has_bos: bool) -> None:
        bos, eos, unk, sep, pad = _DEFAULT_IDS.get(model, (None, None, None, None, None))
        if not has_bos:  # some pre-tokenizer families have no BOS unless the file names one
            bos = None
        mask = 103 if model == "bert" else None
        ids = SpecialIds(bos=bos, eos=eos, unk=unk, sep=sep, pad=pad, mask=mask)
        keys = {
            "bos": "bos_token_id",
            "eos": "eos_token_id",
            "eot": "eot_token_id",
            "eom": "eom_token_id",
            "unk": "unknown_token_id",
            "sep": "seperator_token_id",
            "pad": "padding_token_id",
            "mask": "mask_token_id",
            "fim_pre": "fim_pre_token_id",
            "fim_suf": "fim_suf_token_id",
            "fim_mid": "fim_mid_token_id",
            "fim_pad": "fim_pad_token_id",
            "fim_rep": "fim_rep_token_id",
            "fim_sep": "fim_sep_token_id",
        }
        legacy = {
            "fim_pre": "prefix_token_id",
            "fim_suf": "suffix_token_id",
            "fim_mid": "middle_token_id",
        }
        for field, key in keys.items():
            current = getattr(ids, field)
            if current is not None and current >= self.size:
                current = None  # a default outside this vocabulary is no token at all
            for name in (key, legacy.get(field)):
                value = _key(metadata, name) if name else None
                if value is None:
                    continue
                if type(value) is not int:
                    raise InvalidModelFile(f"tokenizer.ggml.{name} must be an integer")
                if 0 <= value < self.size:  # llama.cpp ignores an id outside the vocabulary
                    current = value
            setattr(ids, field, current)
        self.special = ids

    def _find(self, texts: tuple[str, ...]) -> list[int]:
        return [self.token_to_id[t] for t in texts if t in self.token_to_id]

    def _mark_control(self, token_id: int) -> None:
        self.attrs[token_id] |= CONTROL

    def _infer_special_roles(self) -> None:
        ids = self.special
        roles = [("eot", _EOT_TEXTS), ("eom", _EOM_TEXTS)]
        roles += list(zip(("fim_pre", "fim_suf", "fim_mid"), _FIM_OTHER_TEXTS))
        roles += [
            ("fim_pad", _FIM_PAD_TEXTS),
            ("fim_rep", _FIM_REP_TEXTS),
            ("fim_sep", _FIM_SEP_TEXTS),
        ]
        for field, texts in roles:
            if getattr(ids, field) is not None:
                continue
            found = self._find(texts)
            if found:
                setattr(ids, field, min(found))
                self._mark_control(min(found))

        for token_id in compress(range(self.size), map(CONTROL.__and__, self.attrs)):
            if "unused" in self.tokens[token_id]:  # control tokens named "unused" are unused
                self.attrs[token_id] |= UNUSED

        eog = {i for i in (ids.fim_pad, ids.fim_rep, ids.fim_sep) if i is not None}
        for token_id in self._find(_EOG_TEXTS):
            eog.add(token_id)
            self._mark_control(token_id)
        for token_id in self._find(_ALWAYS_RENDERED):
            self.attrs[token_id] = USER_DEFINED
        eog.update(i for i in (ids.eos, ids.eot, ids.eom) if i is not None)

        eog_texts = {self.tokens[i]: i for i in eog}
        # Harmony-style vocabularies end a message with <|end|> but keep generating after it.
        if "<|end|>" in eog_texts and (
            ("<|return|>" in eog_texts and ("<|call|>" in eog_texts or "<|calls|>" in eog_texts))
            or ("<|calls|>" in eog_texts and "<|flush|>" in eog_texts)
            or ("<|call|>" in eog_texts and "<|flush|>" in eog_texts)
        ):
            eog.discard(eog_texts["<|end|>"])
            self.attrs[eog_texts["<|end|>"]] = USER_DEFINED
        if "</s>" in eog_texts and (
            "<|tool_response>" in eog_texts or "<|plamo:eos|>" in eog_texts
        ):
            eog.discard(eog_texts["</s>"])
            self.attrs[eog_texts["</s>"]] = NORMAL
        self.eog_ids: frozenset[int] = frozenset(eog)

    def _apply_name_rules(self, metadata: dict) -> None:
        """Per-model strip rules that llama.cpp applies by model name (they are not in the file)."""
        name = str(metadata.get("general.name") or "").lower()
        pre = str(_key(metadata, "pre") or "")
        arch = str(metadata.get("general.architecture") or "")
        if any(p in pre for p in ("jina-v2-de", "jina-v2-es", "jina-v2-code")) or any(
            a in arch for a in ("nomic-bert-moe", "jina-bert-v3")
        ):
            if "<mask>" in self.token_to_id:
                self.attrs[self.token_to_id["<mask>"]] |= LSTRIP
        elif "phi-3" in name or "phi3" in name:
            for token_id in self.special_tokens:
                self.attrs[token_id] |= RSTRIP
            for text, strip in (
                ("</s>", True),
                ("<unk>", False),
                ("<s>", False),
                ("<|endoftext|>", False),
            ):
                if text in self.token_to_id:
                    token_id = self.token_to_id[text]
                    self.attrs[token_id] = (
                        self.attrs[token_id] | RSTRIP if strip else self.attrs[token_id] & ~RSTRIP
                    )
        elif "modern-bert" in name and "[MASK]" in self.token_to_id:
            self.attrs[self.token_to_id["[MASK]"]] |= LSTRIP

    # -- special-token splitting ---------------------------------------------------------------
    @cached_property
    def special_tokens(self) -> list[int]:
        """Control, user-defined and unknown tokens, longest text first: the order they are split out."""
        found = list(compress(range(self.size), map(SPECIAL.__and__, self.attrs)))
        found.sort(key=lambda i: -len(self.tokens[i]))
        return found

    @cached_property
    def _special_trie(self) -> tuple[dict, dict[int, int], re.Pattern | None]:
        trie: dict = {}
        for token_id in self.special_tokens:
            node = trie
            for ch in self.tokens[token_id]:
                node = node.setdefault(ch, {})
            node[None] = token_id
        rank = {token_id: r for r, token_id in enumerate(self.special_tokens)}
        first_chars = (
            re.compile("[" + "".join(re.escape(ch) for ch in trie) + "]") if trie else None
        )
        return trie, rank, first_chars

    def _specials_in(self, text: str, parse_special: bool) -> list[int]:
        """The special tokens that occur in ``text``, in splitting order (found with a trie walk
        from each position that starts some special token)."""
        trie, rank, first_chars = self._special_trie
        if first_chars is None:  # no special tokens
            return []
        found = set()
        n = len(text)
        for match in first_chars.finditer(text):
            start = match.start()
            node = trie[text[start]]
            q = start + 1
            while node is not None:
                token_id = node.get(None)
                if token_id is not None:
                    found.add(token_id)
                if q >= n:
                    break
                node = node.get(text[q])
                q += 1
        if (
            not parse_special
        ):  # control and unknown tokens are plain text then; user-defined still split
            found = {i for i in found if not self.attrs[i] & (CONTROL | UNKNOWN)}
        return sorted(found, key=rank.__getitem__)

    def partition(self, text: str, parse_special: bool) -> list:
        """Split ``text`` into raw-text pieces (str) and special token ids (int), as llama.cpp does:
        each special token in turn, longest first, is cut out of every piece still raw."""
        if not text:
            return []
        fragments: list = [(0, len(text))]
        for token_id in self._specials_in(text, parse_special):
            needle = self.tokens[token_id]
            attr = self.attrs[token_id]
            out: list = []
            for fragment in fragments:
                if type(fragment) is int:
                    out.append(fragment)
                    continue
                pos, end = fragment
                while (match := text.find(needle, pos, end)) >= 0:
                    left = match
                    if attr & LSTRIP:
                        while left > pos and text[left - 1] in _ASCII_SPACE:
                            left -= 1
                    if left > pos:
                        out.append((pos, left))
                    out.append(token_id)
                    pos = match + len(needle)
                    if attr & RSTRIP:
                        while pos < end and text[pos] in _ASCII_SPACE:
                            pos += 1
                if pos < end:
                    out.append((pos, end))
            fragments = out
        return [f if type(f) is int else text[f[0] : f[1]] for f in fragments]
