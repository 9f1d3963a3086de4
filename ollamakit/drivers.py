"""Named drivers: one stevedore entry point group per kind. The entry point name is the word a
user types (``--storage fs``, ``quantize: q4_K_M``)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

from .errors import BadRequest

GROUPS = {
    "storage": "ollamakit.storage",
    "compute": "ollamakit.compute",
    "quantizer": "ollamakit.quantizer",
    "transport": "ollamakit.transport",
    "renderer": "ollamakit.renderer",
    "parser": "ollamakit.parser",
    "integration": "ollamakit.integration",
}


class DriverNotFound(BadRequest):
    pass


@dataclass
class DriverInfo:
    kind: str
    name: str
    target: str
    error: str | None = None


def driver_names(kind: str) -> list[str]:
    return sorted({ep.name for ep in entry_points(group=GROUPS[kind])})


def find_driver_name(kind: str, name: str) -> str | None:
    """The registered spelling of ``name``, matched case-insensitively."""
    for candidate in driver_names(kind):
        if candidate.lower() == name.lower():
            return candidate
    return None


def driver_class(kind: str, name: str):
    """Load (without constructing) driver ``name`` of ``kind``."""
    registered = find_driver_name(kind, name)
    if registered is None:
        raise DriverNotFound(
            f"no {kind} driver named {name!r}; installed: {', '.join(driver_names(kind))}"
        )
    from stevedore import (
        DriverManager,
    )  # imported here: the CLI starts (and ``--help`` answers) without it

    manager = DriverManager(
        GROUPS[kind], registered, invoke_on_load=False, on_load_failure_callback=_raise
    )
    return manager.driver


def load_driver(kind: str, name: str, *args, **kwargs):
    """Construct driver ``name`` of ``kind`` with ``args``."""
    return driver_class(kind, name)(*args, **kwargs)


def describe_drivers() -> list[DriverInfo]:
    """Every installed driver, with the error it raises on import (never swallowed)."""
    found = []
    for kind, group in GROUPS.items():
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            info = DriverInfo(kind, ep.name, ep.value)
            try:
                ep.load()
            except Exception as exc:  # report, do not hide: `ollamakit plugins` prints it
                info.error = f"{type(exc).__name__}: {exc}"
            found.append(info)
    return found


def _raise(manager, entrypoint, exc):
    raise exc
