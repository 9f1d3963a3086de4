"""Pull and push through OCI (Docker distribution v2) registries, and a read-only registry over
our own store. See README.md for credentials and the on-disk resume format."""

from ollamakit.lazy import lazy_exports

# Imported on first use: these modules import httpx, and the entry points load this package.
__getattr__ = lazy_exports(__name__, {"pull_model": ".pull", "push_model": ".push"})

__all__ = ["pull_model", "push_model"]
