"""The scheduler plugin: loads models on demand, keeps them for ``keep_alive``, and runs the
sequences of concurrent requests to one model together, one batched forward pass per step."""

from .options import Options
from .scheduler import Lease, Scheduler

__all__ = ["Lease", "Options", "Scheduler"]
