"""The native Ollama API (``/api/*``): routes only; the work happens in the kernel's store,
the model sources, and the scheduler."""
