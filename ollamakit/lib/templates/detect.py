"""Which known chat family a GGUF's Jinja chat template belongs to.

Ollama compares the template's source text with a list of known templates. We compare what
the template *does* instead: render it (sandboxed) on probe conversations and compare the
prompts with those our family templates print for the same conversations. A template written
differently but producing the same prompt is still recognised, and one producing anything
else is not, however similar its source looks.
"""

from __future__ import annotations

from difflib import SequenceMatcher

from .families import FAMILIES, Family
from .jinja import ChatTemplateError, render_jinja
from .prompt import execute

_SYSTEM = "You are a terse assistant."
_PROBES = (
    [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
    ],
    # For templates that refuse a system role (Gemma 1/2, Mistral).
    [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
    ],
)
_BOS, _EOS = "<s>", "</s>"
# Beginning-of-sequence tokens some templates write literally; the tokenizer adds them instead.
_LITERAL_BOS = (
    "<s>",
    "<|begin_of_text|>",
    "<bos>",
    "<|startoftext|>",
    "<BOS_TOKEN>",
    "<|endoftext|>",
)
MIN_SIMILARITY = 0.9
MAX_SOURCE = 64 * 1024


def _normalise(text: str) -> str:
    for bos in _LITERAL_BOS:
        if text.startswith(bos):
            text = text[len(bos) :]
            break
    return text


def _expected(fam: Family, probe) -> str:
    return execute(fam.template, probe)


def detect_template(jinja_chat_template) -> tuple[str, str, dict] | None:
    """``(family name, our Go template, {"stop": [...]})`` for a recognised chat template, else
    None (also for anything that is not a usable template)."""
    if not isinstance(jinja_chat_template, str) or not jinja_chat_template.strip():
        return None
    if len(jinja_chat_template) > MAX_SOURCE:
        return None
    rendered = []
    # The first probe that renders decides: the later ones are for templates refusing a system
    # role, and a template that adds a default system prompt must not be judged without one.
    for probe in _PROBES:
        try:
            text = render_jinja(jinja_chat_template, probe, bos_token=_BOS, eos_token=_EOS)
        except ChatTemplateError:
            continue
        rendered.append((probe, _normalise(text)))
        break
    if not rendered:
        return None

    best, best_score = None, 0.0
    for fam in FAMILIES.values():
        scores: list[float] = []  # emptied when a probe's render lacks one of the markers
        for probe, text in rendered:
            expected = _expected(fam, probe)
            if not all(marker in text for marker in fam.markers):
                scores = []
                break
            scores.append(
                1.0
                if text == expected
                else SequenceMatcher(None, text, expected, autojunk=False).ratio()
            )
        if not scores:
            continue
        score = sum(scores) / len(scores)
        if score > best_score:
            best, best_score = fam, score
    if best is None or best_score < MIN_SIMILARITY:
        return None
    return best.name, best.template, best.params
