"""Pre-tokenizers for byte-level BPE: the word-splitting regexes that ``tokenizer.ggml.pre`` names.

Each pre-tokenizer is a list of regexes applied in turn; every regex splits each piece left by the
previous one into its matches and the unmatched gaps between them (the "isolated" split of the
Hugging Face tokenizers, which is what llama.cpp does too). The patterns are the ones the models'
``tokenizer.json`` files declare, with case-insensitive groups spelled out.

A pattern that uses ``\\p{..}`` classes runs over the collapsed text (see :mod:`.unicode`), with
each class rewritten to its stand-in byte plus its ASCII members; any other pattern runs over the
text itself with non-ASCII whitespace turned into 0x0B. Both run with ``re.ASCII``, so ``\\s`` means
exactly llama.cpp's whitespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ollamakit.errors import InvalidModelFile

from . import unicode

_CONTRACTIONS = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = (
    _CONTRACTIONS
    + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2 = (
    _CONTRACTIONS
    + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN35 = (
    _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
JAIS2 = (
    _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)"
    r"|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}"
)
# Case-aware word patterns; llama.cpp has one letter class, so case is told apart by lookaheads.
_UPPER_THEN_LOWER = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+"
_UPPER_RUN = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*"
TEKKEN = (
    _UPPER_THEN_LOWER
    + "|"
    + _UPPER_RUN
    + r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
GPT4O = (
    _UPPER_THEN_LOWER
    + _CONTRACTIONS
    + "?|"
    + _UPPER_RUN
    + _CONTRACTIONS
    + r"?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
GRANITE_MULTI = GPT4O.replace(r"(?=[\p{L}])", r"(?=[\p{L}\p{M}])")
_WORDS_BY_SCRIPT = (
    r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
    r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_CJK_KANA = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"
_CJK_HANGUL = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
_PORO = " ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+"
# Written as escapes: several of these letters (Kelvin sign, Ohm sign, ...) change under NFC.
_DEEPSEEK_LETTERS = (
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af"
    "\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5"
    "\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba"
    "\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45"
    "\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe"
    "\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc"
    "\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139"
    "\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3"
    "\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06"
    "\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3"
    "\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df"
    "\U0001e900-\U0001e943]+"
)
_DEEPSEEK_PUNCTUATION = "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+"


@dataclass(frozen=True)
class PreTokenizerSpec:
    patterns: tuple[str, ...]
    clean_spaces: bool = True  # llama.cpp's clean_up_tokenization_spaces for this family
    ignore_merges: bool = False  # a word that is already a token is taken whole
    add_bos: bool | None = None  # a family default, before tokenizer.ggml.add_bos_token
    no_bos: bool = False  # the family has no BOS token at all
    aliases: tuple[str, ...] = field(default=())


_FAMILIES = [
    PreTokenizerSpec(
        (r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"), aliases=("default",)
    ),
    PreTokenizerSpec(
        (LLAMA3,),
        ignore_merges=True,
        add_bos=True,
        aliases=(
            "llama3",
            "llama-v3",
            "llama-bpe",
            "falcon3",
            "falcon-h1",
            "pixtral",
            "midm-2.0",
            "lfm2",
            "jina-v5-nano",
        ),
    ),
    PreTokenizerSpec((LLAMA3,), aliases=("dbrx", "smaug-bpe")),
    PreTokenizerSpec(
        (r"[\r\n]", _DEEPSEEK_LETTERS, _DEEPSEEK_PUNCTUATION, r"\s+$", _CJK_HANGUL, r"\p{N}+"),
        clean_spaces=False,
        aliases=("deepseek-llm",),
    ),
    PreTokenizerSpec(
        (r"\p{N}{1,3}", _CJK_KANA, _WORDS_BY_SCRIPT),
        clean_spaces=False,
        aliases=("deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4"),
    ),
    PreTokenizerSpec(
        (r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", _CJK_HANGUL, r"\p{N}"),
        clean_spaces=False,
        aliases=("deepseek-coder",),
    ),
    PreTokenizerSpec(
        (
            r"[\p{P}\$\+<=>\^~\|`]+",
            r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
            "[0-9][0-9][0-9]",
        ),
        aliases=("falcon",),
    ),
    PreTokenizerSpec(
        (r"\p{N}", GPT2),
        aliases=("starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"),
    ),
    PreTokenizerSpec((r"\p{N}", GPT2), clean_spaces=False, aliases=("smollm", "command-r")),
    PreTokenizerSpec(
        (GPT2,),
        aliases=(
            "gpt-2",
            "gpt2",
            "phi-2",
            "jina-es",
            "jina-de",
            "gigachat",
            "jina-v2-es",
            "jina-v2-de",
            "a.x-4.0",
            "mellum",
            "modern-bert",
            "mpt",
            "olmo",
            "jais",
            "exaone4",
            "jina-v1-en",
            "jina-v2-code",
            "roberta-bpe",
        ),
    ),
    PreTokenizerSpec((GPT2,), clean_spaces=False, aliases=("trillion", "granite-docling")),
    PreTokenizerSpec((QWEN2,), aliases=("stablelm2", "megrez")),
    PreTokenizerSpec(
        (QWEN2,),
        clean_spaces=False,
        aliases=(
            "qwen2",
            "deepseek-r1-qwen",
            "kormo",
            "f2llmv2",
            "hunyuan",
            "solar-open",
            "grok-2",
        ),
    ),
    PreTokenizerSpec((QWEN35,), clean_spaces=False, aliases=("qwen35",)),
    PreTokenizerSpec((_PORO,), clean_spaces=False, aliases=("poro-chat",)),
    PreTokenizerSpec((_PORO,), aliases=("bloom", "gpt3-finnish")),
    PreTokenizerSpec((LLAMA3,), no_bos=True, aliases=("chatglm-bpe",)),
    PreTokenizerSpec((LLAMA3,), no_bos=True, ignore_merges=True, aliases=("glm4", "glm5")),
    PreTokenizerSpec((_PORO, r"\p{N}"), clean_spaces=False, aliases=("viking",)),
    PreTokenizerSpec((JAIS2,), aliases=("jais-2",)),
    PreTokenizerSpec(
        (TEKKEN,), clean_spaces=False, ignore_merges=True, add_bos=True, aliases=("tekken",)
    ),
    PreTokenizerSpec(
        (
            "<sentinel:[0-9]+>",
            "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
            "([\\t\\n]|    |  )",
            r"\p{N}",
            r"[\p{P}!-/:-@\[-`{-~]",
            GPT2,
        ),
        clean_spaces=False,
        add_bos=True,
        aliases=("chameleon",),
    ),
    PreTokenizerSpec(
        (GPT4O,),
        clean_spaces=False,
        aliases=("gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"),
    ),
    PreTokenizerSpec(
        (GRANITE_MULTI,),
        clean_spaces=False,
        ignore_merges=True,
        aliases=("granite-embed-multi-97m",),
    ),
    PreTokenizerSpec(
        (
            r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])"
            r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+",
        ),
        clean_spaces=False,
        aliases=("bailingmoe", "bailingmoe2", "llada-moe"),
    ),
    PreTokenizerSpec(
        (
            _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+"
            r"|\s+(?!\S)|\s+",
        ),
        clean_spaces=False,
        aliases=("seed-coder",),
    ),
    PreTokenizerSpec(
        (r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",),
        clean_spaces=False,
        aliases=("ufakzeka",),
    ),
    PreTokenizerSpec(("[^\\n]+|[\\n]+", QWEN2), clean_spaces=False, aliases=("laguna",)),
    PreTokenizerSpec(
        (
            _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}"
            r"| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+",
        ),
        aliases=("exaone-moe",),
    ),
    PreTokenizerSpec(
        (
            r"\p{N}{1,3}",
            _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*"
            r"|\s*[\r\n]+|\s+(?!\S)|\s+",
        ),
        ignore_merges=True,
        aliases=("minicpm5",),
    ),
    PreTokenizerSpec(
        (
            r"\p{N}{1,3}",
            _CJK_KANA,
            _WORDS_BY_SCRIPT.replace(r"[\r\n]*|\s*[\r\n]+", r"|[\r\n]"),
            r"\p{N}",
        ),
        clean_spaces=False,
        aliases=("spark2_5",),
    ),
]

PRE_TOKENIZERS: dict[str, PreTokenizerSpec] = {
    alias: spec for spec in _FAMILIES for alias in spec.aliases
}

# Stand-in byte plus ASCII members for each class, as llama.cpp rewrites them.
_CLASS_MEMBERS = {
    "N": unicode.NUMBER + "0-9",
    "L": unicode.LETTER + "A-Za-z",
    "P": unicode.PUNCTUATION + r"!-#%-*,-/:-;?-@\[-\]_\{\}",
    "M": unicode.ACCENT_MARK,
    "S": unicode.SYMBOL + r"\$\+<->\^`\|~",
}
_CLASS_NAMES = {
    "N": "N",
    "L": "L",
    "P": "P",
    "M": "M",
    "S": "S",
    "Lu": "L",
    "Ll": "L",
    "Lt": "L",
    "Lm": "L",
    "Lo": "L",
}
_CLASS_RE = re.compile(r"\\p\{(N|L|P|M|S|Lu|Ll|Lt|Lm|Lo)\}")


def _collapsed_pattern(pattern: str) -> str:
    """Rewrite ``\\p{..}`` classes for the collapsed text; ``$`` becomes an end-of-text anchor."""
    out, inside, i = [], False, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            match = _CLASS_RE.match(pattern, i)
            if match:
                members = _CLASS_MEMBERS[_CLASS_NAMES[match.group(1)]]
                out.append(members if inside else f"[{members}]")
                i = match.end()
            else:
                out.append(pattern[i : i + 2])
                i += 2
            continue
        if ch == "[" and not inside:
            inside = True
        elif ch == "]" and inside:
            inside = False
        elif ch == "$" and not inside:
            ch = r"\Z"  # ECMAScript "$" never matches before a final newline; Python's does
        out.append(ch)
        i += 1
    return "".join(out)


class PreTokenizer:
    """Splits text into the words that BPE merges inside of."""

    def __init__(self, patterns: tuple[str, ...]):
        self._steps = []
        for pattern in patterns:
            use_collapsed = bool(_CLASS_RE.search(pattern))
            self._steps.append((re.compile(_collapsed_pattern(pattern), re.ASCII), use_collapsed))

    def split(self, text: str) -> list[str]:
        if not text:
            return []
        subjects: dict[bool, str] = {}
        spans = [(0, len(text))]
        for regex, use_collapsed in self._steps:
            subject = subjects.get(use_collapsed)
            if subject is None:
                subject = subjects[use_collapsed] = (
                    unicode.collapse(text) if use_collapsed else unicode.widen(text)
                )
            pieces = []
            for start, end in spans:
                last = start
                for match in regex.finditer(subject, start, end):
                    a, b = match.span()
                    if a == b:
                        continue
                    if a > last:
                        pieces.append((last, a))
                    pieces.append((a, b))
                    last = b
                if last < end:
                    pieces.append((last, end))
            spans = pieces
        return [text[a:b] for a, b in spans]


def pre_tokenizer_spec(name: str | None) -> PreTokenizerSpec:
    if not name:
        return PRE_TOKENIZERS["default"]
    spec = PRE_TOKENIZERS.get(name)
    if spec is None:
        raise InvalidModelFile(f"unknown pre-tokenizer type: '{name}'")
    return spec
