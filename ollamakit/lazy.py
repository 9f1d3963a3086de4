"""Package attributes imported on first use (PEP 562's module ``__getattr__``).

A plugin's package is imported whenever its entry point is loaded, which every ``ollamakit``
command does, ``--help`` included. A package whose public names live in modules that import
numpy, falcon or jinja2 names them here instead of importing them, so that loading the plugin
costs nothing until one of those names is used:

    __getattr__ = lazy_exports(__name__, {"GGUFFile": ".reader", "GGUFWriter": ".writer"})
"""

from __future__ import annotations

from importlib import import_module


def lazy_exports(package: str, exports: dict[str, str]):
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` (a module path,
    relative to ``package`` when it starts with a dot) the first time ``name`` is asked for."""

    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            # AttributeError also lets ``from package import submodule`` find submodules.
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module, package), name)
        setattr(import_module(package), name, value)  # later lookups skip this function
        return value

    return __getattr__
