"""ggml's CPU library for the engine: the C API through ctypes (``lib``), contexts, graphs and
thread pools (``graph``), and ``ollamakit build-ggml`` (``native``: ggml compiled for this CPU).

    from ollamakit.lib.ggml import lib as L

The compute backend that owns the thread pool is a plugin (``ollamakit_ggml``); the engine's
model code builds its graphs with this library.
"""

__all__ = ["graph", "lib", "native"]
