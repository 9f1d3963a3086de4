"""The scheduler plugin: loads models on demand, keeps them for ``keep_alive``, and runs the
sequences of concurrent requests to one model together, one batched forward pass per step."""

from ollamakit.lazy import lazy_exports

# Imported on first use: these modules import numpy, and the entry points load this package.
__getattr__ = lazy_exports(__name__, {"Lease": ".scheduler", "Scheduler": ".scheduler"})

__all__ = ["Lease", "Scheduler"]
