"""The plugin manager factory. There is no global manager: each ``Kernel`` builds its own, so a
test gets a fresh one with exactly the plugins it asks for."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    """pluggy's manager, remembering which entry points failed to load and why."""

    def __init__(self):
        super().__init__("ollamakit")
        self.add_hookspecs(hookspecs)
        self.load_errors: list[PluginError] = []

    def load_entry_points(self, group: str = PLUGIN_GROUP, skip: tuple[str, ...] = ()) -> None:
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            if ep.name in skip or self.get_plugin(ep.name) is not None:
                continue
            try:
                self.register(ep.load(), name=ep.name)
            except Exception as exc:
                self.load_errors.append(PluginError(ep.name, ep.value, f"{type(exc).__name__}: {exc}"))


def make_plugin_manager(plugins=(), load_entry_points: bool = True, skip: tuple[str, ...] = ()) -> PluginManager:
    """A manager with the kernel defaults, the installed plugins (unless ``load_entry_points`` is
    false, or named in ``skip``) and any extra plugin objects given."""
    pm = PluginManager()
    pm.register(defaults, name="ollamakit.defaults")
    if load_entry_points:
        pm.load_entry_points(skip=skip)
    for plugin in plugins:
        pm.register(plugin)
    return pm
