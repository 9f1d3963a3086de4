"""The plugin manager factory. There is no global manager: each ``Kernel`` builds its own, so a
test gets a fresh one with exactly the plugins it asks for."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points

import pluggy

from . import defaults, hookspecs

PLUGIN_GROUP = "ollamakit.plugins"


@dataclass
class PluginError:
    name: str
    target: str
    error: str


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, remembering which entry points failed to load and why.

    A plugin module may name, in ``DEFERRED_IMPORTS``, modules that its hooks import only when
    called (route handlers, engines: whatever imports numpy, falcon or jinja2), so that loading
    it, which every command does, ``--help`` included, stays cheap. ``import_deferred`` imports
    them, and a plugin whose modules fail is unregistered and reported exactly as one whose
    entry point failed; the kernel calls it, and so does ``ollamakit plugins``."""

    def __init__(self):
        super().__init__("ollamakit")
        self.add_hookspecs(hookspecs)
        self.load_errors: list[PluginError] = []
        self._targets: dict[str, str] = {}  # plugin name -> its entry point, for load errors
        self._deferred_done: set[str] = set()

    def load_entry_points(self, group: str = PLUGIN_GROUP, skip: tuple[str, ...] = ()) -> None:
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            if ep.name in skip or self.get_plugin(ep.name) is not None:
                continue
            try:
                self.register(ep.load(), name=ep.name)
            except Exception as exc:
                self.load_errors.append(
                    PluginError(ep.name, ep.value, f"{type(exc).__name__}: {exc}")
                )
            else:
                self._targets[ep.name] = ep.value

    def import_deferred(self) -> None:
        """Import every registered plugin's ``DEFERRED_IMPORTS``; unregister, and record in
        ``load_errors``, each plugin whose modules fail to import. Cheap after the first call."""
        for name, plugin in self.list_name_plugin():
            if name in self._deferred_done:
                continue
            self._deferred_done.add(name)
            for module in getattr(plugin, "DEFERRED_IMPORTS", ()):
                try:
                    import_module(module)
                except Exception as exc:
                    self.unregister(name=name)
                    target = self._targets.get(name, getattr(plugin, "__name__", name))
                    self.load_errors.append(
                        PluginError(name, target, f"{type(exc).__name__}: {exc}")
                    )
                    break


def make_plugin_manager(
    plugins=(), load_entry_points: bool = True, skip: tuple[str, ...] = ()
) -> PluginManager:
    """A manager with the kernel defaults, the installed plugins (unless ``load_entry_points`` is
    false, or named in ``skip``) and any extra plugin objects given."""
    pm = PluginManager()
    pm.register(defaults, name="ollamakit.defaults")
    if load_entry_points:
        pm.load_entry_points(skip=skip)
    for plugin in plugins:
        pm.register(plugin)
    return pm
