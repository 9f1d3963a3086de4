"""Built-in prompt renderers and output parsers, chosen by the names a model's config carries
(``RENDERER``/``PARSER`` in a Modelfile, ``renderer``/``parser`` in the config blob).

A renderer (group ``ollamakit.renderer``) replaces the template: it turns the conversation into
the prompt. A parser (group ``ollamakit.parser``) reads the model's streamed output into
content, thinking and tool calls, in place of the tag-based reading of
``ollamakit.lib.structured``. Both are drivers (``ollamakit.interfaces.Renderer``/``Parser``),
looked up here by their exact names.

Where a name is unknown: a create request naming it is refused (400); a stored model that names
an unknown renderer cannot be prompted (500, as Ollama answers ``unknown renderer``); an unknown
parser is ignored, as Ollama ignores it, and the output is read by the template's tags.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.metadata import entry_points

from .drivers import GROUPS
from .errors import BadRequest, OllamaError
from .lib.structured import Parsed, call_id
from .names import ModelName

HARMONY_FAMILIES = ("gptoss", "gpt-oss")
# Ollama strips earlier turns' thoughts only for these (its filterThinkTags).
THINK_FILTER_FAMILIES = ("qwen3",)
THINK_FILTER_MODELS = ("deepseek-r1",)


@cache
def _registered(kind: str) -> dict:
    # Entry points do not change while the process runs; scanning them costs milliseconds.
    return {ep.name: ep for ep in entry_points(group=GROUPS[kind])}


def renderer_names() -> list[str]:
    return sorted(_registered("renderer"))


def parser_names() -> list[str]:
    return sorted(_registered("parser"))


def _make(kind: str, name: str, kernel=None):
    ep = _registered(kind).get(name)
    return None if ep is None else ep.load()(kernel)


def check_names(renderer: str = "", parser: str = "") -> None:
    """A create request naming a renderer or parser that is not installed is a 400."""
    if renderer and renderer not in _registered("renderer"):
        raise BadRequest(f'unknown renderer "{renderer}"')
    if parser and parser not in _registered("parser"):
        raise BadRequest(f'unknown parser "{parser}"')


# The renderer and parser Ollama's create gives a model of these architectures when neither the
# request nor the model it comes from names one (its create.go), and the stop a Gemma 4 gets
ARCHITECTURE_DEFAULTS = {
    "gemma4": ("gemma4", "gemma4"),
    "laguna": ("laguna", "laguna"),
    "nemotron_h": ("nemotron-3-nano", "nemotron-3-nano"),
    "nemotron_h_moe": ("nemotron-3-nano", "nemotron-3-nano"),
    "nemotron_h_omni": ("nemotron-3-nano", "nemotron-3-nano"),
}
ARCHITECTURE_STOPS = {"gemma4": ["<turn|>"]}


def architecture_defaults(architecture: str | None, renderer: str, parser: str) -> dict:
    """What create fills in for a model file of ``architecture`` whose renderer or parser is
    still unnamed: ``renderer``, ``parser`` and ``stop`` (Gemma 4's end of turn), as far as
    they apply; {} when nothing does."""
    defaults = ARCHITECTURE_DEFAULTS.get(architecture or "")
    if defaults is None or (renderer and parser):
        return {}
    out: dict = {"renderer": renderer or defaults[0], "parser": parser or defaults[1]}
    if architecture in ARCHITECTURE_STOPS:
        out["stop"] = ARCHITECTURE_STOPS[architecture or ""]
    return out


# Ollama's ``gemma4`` renderer name stands for Gemma 4's small (E2B/E4B) or large prompt,
# chosen per model (its server's resolveRendererName)
GEMMA4_SIZES = (("gemma4-small", ("e2b", "e4b")), ("gemma4-large", ("12b", "26b", "31b")))
GEMMA4_LARGE_FROM = 12_000_000_000
UNITS = {"B": 1_000_000_000, "M": 1_000_000, "K": 1_000}


def renderer_name(config: dict, model_name: ModelName | None = None) -> str:
    """The renderer a model is prompted with: the one its config names, except that the legacy
    ``gemma4`` becomes ``gemma4-small`` or ``gemma4-large`` by the size the model's name says
    (``e2b``/``e4b``; ``12b``/``26b``/``31b``), else by its parameter count (12B and up is
    large), as Ollama resolves it."""
    name = config.get("renderer") or ""
    if not isinstance(name, str) or name != "gemma4":
        return name if isinstance(name, str) else ""
    names = (model_name.display_shortest(), model_name.display_full()) if model_name else ()
    for text in names:
        for resolved, sizes in GEMMA4_SIZES:
            if any(size in text.lower() for size in sizes):
                return resolved
    count = parameter_count(config.get("model_type"))
    return "gemma4-large" if count is not None and count >= GEMMA4_LARGE_FROM else "gemma4-small"


def parameter_count(model_type) -> int | None:
    """A config's ``model_type`` (``31.3B``, ``270.00M``) as a number of parameters."""
    if not isinstance(model_type, str) or model_type[-1:].upper() not in UNITS:
        return None
    digits = model_type[:-1]
    if not re.fullmatch(r"[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?|\.[0-9]+([eE][+-]?[0-9]+)?", digits):
        return None
    return int(float(digits) * UNITS[model_type[-1].upper()])


def load_renderer(name: str, kernel=None):
    """The renderer named ``name``; None for no name. A stored model naming one that is not
    installed cannot be prompted: Ollama's ``unknown renderer`` error (500)."""
    if not name:
        return None
    renderer = _make("renderer", name, kernel)
    if renderer is None:
        raise OllamaError(f'unknown renderer "{name}"')
    return renderer


def load_parser(name: str, kernel=None):
    """A fresh parser named ``name``; None for no name or one that is not installed."""
    return _make("parser", name, kernel) if name else None


def uses_harmony(config: dict, template: str | None) -> bool:
    """gpt-oss models speak harmony: their family, and a template with harmony's message tags
    (Ollama's heuristic), picks the ``harmony`` parser when the config names none."""
    return (
        config.get("model_family") in HARMONY_FAMILIES
        and template is not None
        and "<|start|>" in template
        and "<|end|>" in template
    )


def parser_name(config: dict, template: str | None) -> str:
    """The parser a model's output goes through ("" for the template's own tags)."""
    name = config.get("parser") or ""
    if not name and uses_harmony(config, template):
        return "harmony"
    return name if isinstance(name, str) else ""


def harmony_think(think):
    """Harmony's reasoning effort knows low, medium and high: ``max`` asks for ``high``."""
    return "high" if think == "max" else think


# -- earlier turns' thoughts ---------------------------------------------------------------


def strips_old_thinking(model_family: str, model_name: ModelName | None) -> bool:
    return model_family in THINK_FILTER_FAMILIES or (
        model_name is not None and model_name.model in THINK_FILTER_MODELS
    )


def without_thinking(content: str, opening: str = "<think>", closing: str = "</think>") -> str:
    """What is left of an assistant message once a leading thought is cut out: everything after
    the closing tag, less the whitespace that follows it. A message that does not start with
    the opening tag stays as it is; one that is only thought (or only whitespace, or the start
    of the tag) becomes empty, as a single pass of Ollama's thinking parser leaves it."""
    trimmed = _lstrip(content)
    if not trimmed or opening.startswith(trimmed):
        return ""
    if not trimmed.startswith(opening):
        return content
    after = trimmed[len(opening) :]
    at = after.find(closing)
    return "" if at < 0 else _lstrip(after[at + len(closing) :])


def _lstrip(text: str) -> str:
    # Go's unicode.IsSpace: Python's isspace() also counts the separators U+001C..U+001F.
    at = 0
    while at < len(text) and text[at].isspace() and not "\x1c" <= text[at] <= "\x1f":
        at += 1
    return text[at:]


def filter_think_tags(
    messages: list[dict], model_family: str, model_name: ModelName | None
) -> list[dict]:
    """Earlier assistant turns (before the last user message) without their ``<think>``
    blocks, for the models Ollama does this for (qwen3, deepseek-r1): old thoughts cost
    context and are not what the model expects to read back."""
    if not strips_old_thinking(model_family, model_name):
        return messages
    last_user = max((n for n, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    return [
        {**m, "content": without_thinking(m.get("content") or "")}
        if m.get("role") == "assistant" and n < last_user
        else m
        for n, m in enumerate(messages)
    ]


# -- a parser driving a response stream ----------------------------------------------------


class AnswerStart:
    """Where a thinking model's answer starts (a ``format`` constrains only what follows)."""

    def __init__(self, closing: str):
        self.closing = closing


class ParsedStream:
    """A ``Parser`` behind the interface the API's response loop reads (``feed`` each piece,
    ``flush`` at the end, ``thinking.closing`` for a format), with ids on the tool calls."""

    def __init__(self, parser, think=None):
        self.parser = parser
        thinks = parser.has_thinking_support and think not in (None, False) and parser.answer_after
        self.thinking = AnswerStart(parser.answer_after) if thinks else None
        self.preserved_tokens = tuple(parser.preserved_tokens)

    def feed(self, text: str) -> Parsed:
        return self._add(text, False)

    def flush(self) -> Parsed:
        return self._add("", True)

    def _add(self, text: str, done: bool) -> Parsed:
        try:
            parsed = self.parser.add(text, done)
        except ValueError as exc:
            raise OllamaError(str(exc)) from None
        parsed.tool_calls = [{"id": call_id(), **call} for call in parsed.tool_calls]
        return parsed


__all__ = [
    "check_names",
    "load_renderer",
    "load_parser",
    "renderer_name",
    "architecture_defaults",
    "renderer_names",
    "parser_names",
    "parser_name",
    "uses_harmony",
    "harmony_think",
    "filter_think_tags",
    "without_thinking",
    "ParsedStream",
]
