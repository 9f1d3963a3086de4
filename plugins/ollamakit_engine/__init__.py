"""The inference engine: decoder-only transformers (llama family, qwen2/3, gemma3) written once
against a compute backend's array module.

    runner = load_runner(path, NumpyBackend())
    cache = runner.new_cache(num_ctx=2048)
    logits = runner.forward([(cache, prompt_ids)])[0]
"""

from .cache import KVCache
from .loader import build_runner, load_runner, supports
from .runner import Runner

__all__ = ["KVCache", "Runner", "build_runner", "load_runner", "supports"]
