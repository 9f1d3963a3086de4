"""Routes from plugins, each path owned by one of them.

Falcon's ``add_route`` on a path that already has a resource silently replaces it, so two
plugins serving the same path would depend on the order they were loaded in. Here a second
``add_route`` on a path is an error at start-up naming both plugins, unless one of them says it
means to replace the other's: ``app.add_route(path, resource, override=True)``. An override wins
whichever order the plugins run in; two overrides of one path are an error again.
"""

from __future__ import annotations

import re
from typing import Any

import falcon
import pluggy

# ``/api/show/{name}`` and ``/api/show/{model}`` match the same requests: one path.
_FIELD = re.compile(r"\{[^}]*\}")


class RouteCollision(Exception):
    """Two plugins add a route on the same path, and not exactly one of them overrides."""


def path_key(uri_template: str) -> str:
    """The requests a template matches, as one string: field names and a trailing slash dropped
    (the app strips trailing slashes from request paths)."""
    return _FIELD.sub("{}", uri_template.rstrip("/") or "/")


class PluginApp(falcon.App):
    """A ``falcon.App`` that knows which plugin added each route (``route_owners``)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.route_owners: dict[str, tuple[str, bool]] = {}  # path -> (plugin, overrides)
        self.adding_plugin = "the application"

    def add_route(
        self, uri_template: str, resource: object, *, override: bool = False, **kwargs: Any
    ) -> None:
        key = path_key(uri_template)
        owner = self.route_owners.get(key)
        if owner is not None:
            first, first_overrides = owner
            if first_overrides == override:
                both = "both override it" if override else "neither overrides the other"
                raise RouteCollision(
                    f'plugins "{first}" and "{self.adding_plugin}" both add the route {uri_template} '
                    f"and {both}; a plugin that replaces a route passes override=True to add_route"
                )
            if first_overrides:
                return  # the overriding route stays
        self.route_owners[key] = (self.adding_plugin, override)
        super().add_route(uri_template, resource, **kwargs)


def plugin_label(pm: pluggy.PluginManager, plugin: object) -> str:
    """A plugin's name as a person knows it: its entry point name, its module, or its class."""
    name = pm.get_name(plugin)
    if name is None or name == str(id(plugin)):
        return getattr(plugin, "__name__", None) or type(plugin).__qualname__
    return name


def register_routes(app: PluginApp, kernel: Any) -> None:
    """Call each plugin's ``register_routes`` in the order pluggy would, noting whose routes are
    whose. (A hook call would run them all as one, with no way to tell the plugins apart.)"""
    arguments = {"app": app, "kernel": kernel}
    for impl in reversed(kernel.hook.register_routes.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            raise TypeError(f"register_routes takes no wrappers ({impl.plugin_name})")
        app.adding_plugin = plugin_label(kernel.pm, impl.plugin)
        impl.function(*(arguments[name] for name in impl.argnames))
    app.adding_plugin = "the application"
