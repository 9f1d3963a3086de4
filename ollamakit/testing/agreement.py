"""Greedy agreement with llama.cpp, on the machine at hand.

llama.cpp's own greedy tokens depend on the CPU it was built for (AVX2 and AVX-512 kernels round
differently), so a recorded answer means something only beside the CPU that gave it. The tests
compare live with llama-cpp-python when it is installed here, and otherwise with answers
recorded on this machine kind (``tests/reference/llamacpp-ggml-greedy.json``, written by
``python -m ollamakit.testing.agreement``), whose CPU model and flags are stored beside them and
must match this CPU's.

Two continuations agree when they are equal, or when they part at a step where llama.cpp's own
top two logits were within ``TIE_MARGIN``: a true tie, which any change of summation order may
break either way. After a parting the texts differ by construction, so nothing later counts.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import numpy as np

TIE_MARGIN = 0.02
RECORDED = "llamacpp-ggml-greedy.json"
LLAMA_CPP_VERSION = "0.3.36"
PROMPTS = (
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "List three colors:",
    "The meaning of life is",
    "import numpy as np\n",
)
TOKENS = 64
NUM_CTX = 512


def cpu() -> dict:
    """The CPU's model name and the instruction-set flags that change ggml's kernels."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            if line.startswith(("flags", "Features")) and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    kernel_flags = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "asimd", "sve")
    return {"model": model, "machine": platform.machine(), "flags": [f for f in kernel_flags if f in flags]}


CACHE_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}  # ggml type ids, as llama-cpp-python takes them


def llamacpp_greedy(path: str, prompt_ids: list[int], tokens: int = TOKENS, cache_type: str = "f16") -> tuple[list[int], list[float]]:
    """llama.cpp's greedy continuation and its top-2 logit margin at each step (flash attention
    on, two threads: the engine's defaults; the cache of ``cache_type``)."""
    llm = _llama(path, cache_type)
    llm.reset()
    llm.eval(prompt_ids)
    chosen, margins = [], []
    for _ in range(tokens):
        scores = np.asarray(llm.scores[llm.n_tokens - 1])
        second, first = np.argsort(scores)[-2:]
        chosen.append(int(first))
        margins.append(float(scores[first] - scores[second]))
        llm.eval([int(first)])
    return chosen, margins


_llamas: dict = {}


def _llama(path: str, cache_type: str = "f16"):
    from llama_cpp import Llama

    key = (path, cache_type)
    if key not in _llamas:
        if len(_llamas) >= 3:  # a few small models at a time
            _llamas.pop(next(iter(_llamas)))
        kind = CACHE_TYPES[cache_type]
        _llamas[key] = Llama(
            path, n_ctx=NUM_CTX, n_threads=2, n_batch=512, flash_attn=True, logits_all=True, verbose=False,
            type_k=kind, type_v=kind,
        )
    return _llamas[key]


def llamacpp_tokenize(path: str, text: str) -> list[int]:
    return list(_llama(path).tokenize(text.encode(), add_bos=True, special=True))


def ours_greedy(runner, prompt_ids: list[int], tokens: int = TOKENS) -> list[int]:
    cache = runner.new_cache(NUM_CTX)
    logits = runner.forward([(cache, list(prompt_ids))])[0]
    chosen = []
    for _ in range(tokens):
        chosen.append(int(np.argmax(logits)))
        logits = runner.forward([(cache, [chosen[-1]])])[0]
    return chosen


def parting(ours: list[int], theirs: list[int], margins: list[float]) -> tuple[int | None, float | None]:
    """Where the continuations part and llama.cpp's margin there (None, None when equal)."""
    for step, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            return step, margins[step]
    return None, None


def record(models: dict[str, tuple[str, str]], out: Path) -> None:
    """Write llama.cpp's answers for ``models`` (name -> (GGUF path, cache type)) with this CPU
    beside them."""
    import llama_cpp

    answers = {}
    for name, (path, cache_type) in models.items():
        cases = []
        for text in PROMPTS:
            ids = llamacpp_tokenize(path, text)
            greedy, margins = llamacpp_greedy(path, ids, cache_type=cache_type)
            cases.append({"prompt": text, "prompt_ids": ids, "greedy_ids": greedy, "margins": [round(m, 5) for m in margins]})
        answers[name] = cases
    document = {
        "generator": f"llama-cpp-python {llama_cpp.__version__}, built on this machine; flash attention on, "
        f"float16 cache (a name ending in /q8_0: a q8_0 cache), n_threads 2, n_ctx {NUM_CTX}; "
        "prompts with BOS and special tokens parsed; "
        f"{TOKENS} greedy tokens with llama.cpp's top-2 logit margin at each step",
        "cpu": cpu(),
        "models": answers,
    }
    out.write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":  # python -m ollamakit.testing.agreement [output.json]
    from ollamakit.testing import models as real

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/reference") / RECORDED
    smollm2, gemma3 = str(real.smollm2_q4_1()), str(real.gemma3_270m())
    record({"smollm2": (smollm2, "f16"), "gemma3": (gemma3, "f16"), "smollm2/q8_0": (smollm2, "q8_0")}, target)
    print(f"wrote {target}")
