"""The kernel object: settings, the plugin manager, and the drivers it constructs on demand."""

from __future__ import annotations

import logging
from functools import cached_property
from typing import TYPE_CHECKING

from .config import Settings, default_context_length
from .plugins import PluginManager, make_plugin_manager

if TYPE_CHECKING:
    from pluggy import HookCaller

    from .interfaces import Scheduler

log = logging.getLogger("ollamakit")


class Kernel:
    """Everything a request handler or command needs, passed explicitly (no globals)."""

    def __init__(self, settings: Settings | None = None, pm: PluginManager | None = None):
        self.settings = settings or Settings.from_env()
        self.pm = pm or make_plugin_manager()
        # Plugins import their heavy modules in their hooks (see PluginManager): before any hook
        # runs, a plugin that cannot import them is dropped and reported, as if it failed to load.
        self.pm.import_deferred()

    @property
    def hook(self):
        return self.pm.hook

    @cached_property
    def storage(self):
        return self.hook.make_storage(kernel=self)

    @cached_property
    def store(self):
        from .store import ModelStore

        return ModelStore(self)

    @cached_property
    def compute(self):
        return self.hook.make_compute(kernel=self)

    @cached_property
    def default_num_ctx(self) -> int:
        """The context length of a request that sets none (nor does its model):
        ``OLLAMA_CONTEXT_LENGTH``, else chosen from the compute backend's accelerator memory
        (``config.default_context_length``), as Ollama chooses it from its GPUs'."""
        if self.settings.context_length:
            return self.settings.context_length
        memory = self.compute.accelerator_memory() if self.compute is not None else 0
        chosen = default_context_length(memory, self.settings.gpu_overhead)
        log.info("default context length %d (accelerator memory %d bytes)", chosen, memory)
        return chosen

    @cached_property
    def scheduler(self) -> Scheduler:
        scheduler = self.hook.make_scheduler(kernel=self)
        if scheduler is None:
            from .errors import OllamaError

            raise OllamaError("no scheduler plugin is installed, so models cannot be run")
        return scheduler

    def observe(self, hook: HookCaller, **kwargs) -> None:
        """Tell each observer of ``hook`` (``self.hook.on_model_loaded``, say) what happened, in
        pluggy's order. One that fails is logged and the others still hear of it: watching the
        server must never break what it watches, nor another watcher."""
        arguments = {"kernel": self, **kwargs}
        for impl in reversed(hook.get_hookimpls()):
            try:
                if impl.hookwrapper or impl.wrapper:
                    raise TypeError(f"{hook.name} takes no wrappers ({impl.plugin_name})")
                impl.function(*(arguments[name] for name in impl.argnames))
            except Exception:
                log.exception("an observer of %s failed", hook.name)

    def quantizer(self, name: str):
        return self.hook.make_quantizer(kernel=self, name=name)

    def close(self) -> None:
        if "scheduler" in self.__dict__:
            self.scheduler.close()
        if "storage" in self.__dict__:
            self.storage.close()


def make_kernel(settings: Settings | None = None, **plugin_options) -> Kernel:
    """Build a kernel; ``plugin_options`` go to ``make_plugin_manager``."""
    return Kernel(settings, make_plugin_manager(**plugin_options))
