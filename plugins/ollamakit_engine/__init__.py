"""The inference engine: decoder-only transformers (llama family, qwen2/3, gemma3) written once
against a compute backend's array module.

    runner = load_runner(path, NumpyBackend())
    cache = runner.new_cache(num_ctx=2048)
    logits = runner.forward([(cache, prompt_ids)])[0]
"""

from ollamakit.lazy import lazy_exports

# Imported on first use: these modules import numpy, and the entry points load this package.
__getattr__ = lazy_exports(
    __name__,
    {
        "KVCache": ".cache",
        "Runner": ".runner",
        "build_runner": ".loader",
        "load_runner": ".loader",
        "supports": ".loader",
    },
)

__all__ = ["KVCache", "Runner", "build_runner", "load_runner", "supports"]
