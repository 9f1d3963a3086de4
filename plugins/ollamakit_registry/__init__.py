"""Pull and push through OCI (Docker distribution v2) registries, and a read-only registry over
our own store. See README.md for credentials and the on-disk resume format."""

from .pull import pull_model
from .push import push_model

__all__ = ["pull_model", "push_model"]
