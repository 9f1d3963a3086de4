"""The model a request names: found in the store, checked against what the request asks of it
(capabilities, thinking, the Ollama version it requires), with the template it is prompted
through."""

from __future__ import annotations

from dataclasses import replace

from .. import OLLAMA_VERSION, cloud
from ..capabilities import model_capabilities, model_jinja_template
from ..create import unmet_requirement
from ..errors import BadRequest, NotFound, OllamaError
from ..names import ModelName
from ..store import LocalModel


def find_model(kernel, name: str, *, embedding: bool = False) -> LocalModel:
    """The stored model; 404 otherwise, in the words of the endpoint: ``model '<name>' not
    found`` (the raw name), or the scheduler's words for the embed endpoints. ``:local`` names
    the stored model; a ``:cloud`` name is refused as Ollama refuses it without a cloud."""
    stored, source = cloud.split_source(name) if name else ("", "")
    if source == "cloud":
        raise cloud.refusal(kernel.settings, cloud.REMOTE_INFERENCE)
    if stored and ModelName.parse(stored) is None:
        raise BadRequest("invalid model name")
    model = kernel.store.get(stored) if stored else None
    if model is not None and source == "local" and model.config.get("remote_host"):
        model = None  # ``:local`` asks for a model that runs here, which a remote stub is not
    if model is None:
        if embedding and name:
            raise NotFound(f'model "{name}" not found, try pulling it first')
        raise NotFound(f"model '{name}' not found")
    check_requires(model)
    return model if embedding else with_chosen_template(model, kernel.settings)


def with_chosen_template(model: LocalModel, settings) -> LocalModel:
    """``OLLAMA_GO_TEMPLATE=false``: a model that has both a Go template and the GGUF's own
    (Jinja) chat template is prompted, and its capabilities read, through the Jinja one, as in
    Ollama; the model as seen by this request, the stored one unchanged. Without a Jinja template
    the Go template stays (Ollama would have no template to use at all)."""
    if settings.go_template or model.template is None:
        return model
    chosen = replace(model)
    chosen.__dict__["template"] = None  # the cached_property's slot: no Go template
    if model_jinja_template(chosen) is None:
        return model
    return chosen


def check_requires(model: LocalModel) -> None:
    """A model whose Modelfile said ``REQUIRES`` a newer Ollama than the API this server
    implements does not run: 412 in the words ollama.com's registry uses when an older Ollama
    asks for such a model (Ollama itself stores the version and checks only that it is a semver,
    so the registry is where it is enforced; a model copied in or created here meets the same
    rule when it is used)."""
    requires = model.config.get("requires")
    if isinstance(requires, str) and unmet_requirement(requires, OLLAMA_VERSION):
        raise OllamaError(
            f"The model you are attempting to run requires a newer version of Ollama "
            f"({requires.lstrip('v')}; this server implements {OLLAMA_VERSION}).",
            412,
        )


def capabilities(model: LocalModel) -> set[str]:
    """What the model can do (the same answer ``/api/show`` gives)."""
    return set(model_capabilities(model))


def require(model: LocalModel, capabilities: set[str], needed: list[str]) -> None:
    missing = [c for c in needed if c not in capabilities]
    if missing:
        raise BadRequest(f"{model.name.display_full()} does not support {', '.join(missing)}")


def check_think(model: LocalModel, name: str, think, capabilities: set[str]):
    """Thinking models default to thinking; asking a model that cannot think is a 400."""
    if "thinking" in capabilities:
        return True if think is None else think
    if think not in (None, False):
        raise BadRequest(f'"{name}" does not support thinking')
    return None
