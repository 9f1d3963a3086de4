"""The kernel's default hook implementations: construct drivers by name through stevedore.

Registered ``trylast`` so any plugin can replace construction, or wrap it with
``@hookimpl(wrapper=True)``.
"""

from __future__ import annotations

from . import drivers
from .hookspecs import hookimpl


@hookimpl(trylast=True)
def make_storage(kernel):
    return drivers.load_driver("storage", kernel.settings.storage, kernel)


@hookimpl(trylast=True)
def make_compute(kernel):
    name = kernel.settings.compute
    if name != "auto":
        return drivers.load_driver("compute", name, kernel)
    # ``auto``: the first available backend in preference order; numpy always works.
    preference = ["cuda", "ggml", "numpy"]
    names = drivers.driver_names("compute")
    for candidate in sorted(
        names, key=lambda n: preference.index(n) if n in preference else len(preference)
    ):
        try:
            cls = drivers.driver_class("compute", candidate)
        except Exception:
            continue
        if cls.available():
            return cls(kernel)
    raise drivers.DriverNotFound("no compute backend is available")


@hookimpl(trylast=True)
def make_quantizer(kernel, name):
    if drivers.find_driver_name("quantizer", name) is None:
        return None
    return drivers.load_driver("quantizer", name, kernel)


@hookimpl(trylast=True)
def make_transport(kernel):
    return drivers.load_driver("transport", kernel.settings.transport, kernel)
