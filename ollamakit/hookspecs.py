"""The hooks a plugin can implement, grouped by phase.

Rule of thumb: when a person picks an implementation by name (a storage, a compute backend, a
quantizer, a transport) it is a stevedore driver, and the ``make_*`` hooks below only construct
it; when the kernel asks "who wants to take part?" it is a hook here. Every hook is documented
in ``docs/plugin-hooks.md``; a test fails when one is not.

The annotations say what each hook is given and what it returns (``None`` from a
``firstresult`` hook means "not mine"); mypy checks the kernel's calls against them. To wrap
what the other implementations return (a default driver, say), use a new-style wrapper,
``@hookimpl(wrapper=True)``: ``result = yield`` gives the result, and what it returns replaces it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, BinaryIO

import pluggy

if TYPE_CHECKING:
    from collections.abc import Iterator

    import click

    from pathlib import Path

    from .create import CreateRequest
    from .events import Served
    from .headers import ModelHeader
    from .interfaces import (
        ComputeBackend,
        ModelSource,
        Quantizer,
        Runner,
        Scheduler,
        Storage,
        Transport,
    )
    from .kernel import Kernel
    from .names import ModelName
    from .store import LocalModel
    from .web.routes import PluginApp

hookspec = pluggy.HookspecMarker("ollamakit")
hookimpl = pluggy.HookimplMarker("ollamakit")


# -- assembly: building the app and the CLI --------------------------------------------------


@hookspec
def register_routes(app: PluginApp, kernel: Kernel) -> None:
    """Add routes to the Falcon ``app``. Called once per app; every plugin may add routes. A path
    belongs to one plugin: adding another's is an error unless ``add_route(..., override=True)``."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands to the ``ollamakit`` command group."""


@hookspec(firstresult=True)
def run_without_command(ctx: click.Context) -> bool | None:
    """``ollamakit`` given no command: do what it means (the first plugin that returns True),
    as bare ``ollama`` opens its launcher in a terminal. Default: the help text."""


# -- drivers: construction of the named implementations (first result wins) --------------------


@hookspec(firstresult=True)
def make_storage(kernel: Kernel) -> Storage | None:
    """Return the ``Storage`` to use. Default: the stevedore driver ``settings.storage``."""


@hookspec(firstresult=True)
def make_compute(kernel: Kernel) -> ComputeBackend | None:
    """Return the ``ComputeBackend``. Default: driver ``settings.compute`` (``auto`` probes)."""


@hookspec(firstresult=True)
def make_quantizer(kernel: Kernel, name: str) -> Quantizer | None:
    """Return the ``Quantizer`` for type ``name`` (``q4_K_M``), or None when unknown."""


@hookspec(firstresult=True)
def make_transport(kernel: Kernel) -> Transport | None:
    """Return the ``Transport`` that serves the app. Default: driver ``settings.transport``."""


# -- models: creating and running (first result wins) -----------------------------------------


@hookspec(firstresult=True)
def resolve_model_source(request: CreateRequest, kernel: Kernel) -> ModelSource | None:
    """Return a ``ModelSource`` for a create request's input, or None if not yours.

    ``request`` is the validated ``CreateRequest``. The parent-model source runs first
    (``tryfirst``): a model name wins over files, as in Ollama's create.
    """


@hookspec(firstresult=True)
def read_model_header(kernel: Kernel, path: Path) -> ModelHeader | None:
    """The ``ollamakit.headers.ModelHeader`` of the model file at ``path`` (a local file), or
    None when its format is not yours. Raise ``InvalidModelFile`` saying what is wrong when the
    file is of your format and damaged. Create, ``/api/show`` and the model sources read every
    model file's facts through this hook, so no part needs to know a format."""


@hookspec(firstresult=True)
def read_model_header_from(kernel: Kernel, file: BinaryIO, size: int) -> ModelHeader | None:
    """As ``read_model_header``, from an open model file of ``size`` bytes, positioned at its
    start, reading no more of it than the header needs: a blob in a remote store is then read
    by ranges instead of fetched whole (``/api/show`` on a replica that never ran the model).
    Return None when the format is not yours, or when its header is longer than you read this
    way: the store then reads the local file through ``read_model_header``."""


@hookspec(firstresult=True)
def check_model(kernel: Kernel, header: ModelHeader) -> bool | None:
    """Whether a new model's weights can run, asked by create before anything is stored,
    whichever source made them (uploaded files, a converted folder, a parent model).

    ``header`` is the file's ``ollamakit.headers.ModelHeader``: ``architecture``, ``metadata``
    (plain values) and ``tensors`` (each with ``name``, ``shape`` in GGML order and
    ``type_name``). Return True when its architecture is yours and it holds what that
    architecture needs; raise ``InvalidModelFile`` saying what is wrong when it is yours and
    does not; return None when it is not yours. A model no plugin claims is refused as an
    unsupported architecture.
    """


@hookspec(firstresult=True)
def pull_model(kernel: Kernel, name: ModelName) -> Iterator[dict[str, Any]] | None:
    """Pull the model ``name`` (a ``ModelName`` that names its registry) into ``kernel.store``:
    return an iterator of progress objects (``{"status": ...}``, its own ``success`` last), or
    None when you do not fetch models. Asked by create when its ``from`` model is not stored."""


@hookspec(firstresult=True)
def make_scheduler(kernel: Kernel) -> Scheduler | None:
    """Return the ``ollamakit.interfaces.Scheduler`` that loads models and leases them to the
    inference service (first-party: ``ollamakit_scheduler``)."""


@hookspec(firstresult=True)
def load_model(kernel: Kernel, model: LocalModel, options: dict[str, Any]) -> Runner | None:
    """Load the stored ``model`` (an ``ollamakit.store.LocalModel``) into an
    ``ollamakit.interfaces.Runner``, or return None when its architecture is not yours.
    ``options``: the load options (``ollamakit.options.load_options``)."""


@hookspec(firstresult=True)
def estimate_memory(
    kernel: Kernel, model: LocalModel, num_ctx: int, num_parallel: int
) -> int | None:
    """Bytes the stored ``model`` would hold once loaded with ``num_parallel`` sequences of
    ``num_ctx`` tokens (weights and caches), worked out from its file without loading it; None
    when its architecture is not yours. The scheduler refuses a model that cannot fit before
    loading it."""


# -- lifecycle events (every implementation is called; results ignored) --------------------------


@hookspec
def on_startup(kernel: Kernel) -> None:
    """The server is about to accept requests."""


@hookspec
def on_shutdown(kernel: Kernel) -> None:
    """The server has stopped accepting requests."""


@hookspec
def on_model_created(kernel: Kernel, name: ModelName) -> None:
    """A manifest was written for ``name`` (a ``ModelName``) by create, copy or pull."""


@hookspec
def on_model_deleted(kernel: Kernel, name: ModelName) -> None:
    """The manifest for ``name`` was removed."""


# -- observations: what the server did, for metrics and audit logs (every implementation is
# called, through ``Kernel.observe``: one that raises is logged, and the server carries on) -----


@hookspec
def on_request_done(kernel: Kernel, method: str, route: str, status: int, seconds: float) -> None:
    """An HTTP request was answered: its ``status`` and headers are decided (a streamed body may
    still be flowing), ``seconds`` after it arrived. ``route``: the URI template that served it
    (``/api/show/{name}``), or ``""`` when none did (no such path, or refused before routing).
    Called on the request's thread; only while some plugin implements it is it asked at all."""


@hookspec
def on_inference_done(kernel: Kernel, served: Served) -> None:
    """A request that ran a model finished its answer: ``served`` (``ollamakit.events.Served``)
    says which model, what kind of request, its tokens and timings."""


@hookspec
def on_model_loaded(kernel: Kernel, model: LocalModel, seconds: float, memory_bytes: int) -> None:
    """The scheduler loaded ``model`` in ``seconds``; it holds ``memory_bytes``."""


@hookspec
def on_model_unloaded(kernel: Kernel, model: LocalModel, reason: str) -> None:
    """The scheduler unloaded ``model``: ``reason`` is ``"expired"`` (its keep_alive ran out),
    ``"evicted"`` (to make room for another), ``"requested"`` (an unload request) or
    ``"shutdown"``. (A name that now names another model file leaves the old file's copy to
    expire, as Ollama does: copies are keyed by file.)"""
