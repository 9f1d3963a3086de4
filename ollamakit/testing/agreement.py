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
from dataclasses import dataclass
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
# Prompts of a few hundred tokens: a step of many rows, where the engine multiplies Q4_1
# matrices with ollamakit's kernel (graph_model.GraphTransformer._product) and fast prefill would
# take its float32 path (graph_model.dense_prefill_weights); a long prompt's answer is where a
# difference in the products' last bits shows.
LONG_PROMPTS = (
    "The history of the Roman Empire spans many centuries. " * 12 + "In summary,",
    "def add(a, b):\n    return a + b\n\n" * 10 + "def multiply(a, b):",
    "Once upon a time, there was a little fox who lived in the forest. Every day the fox went to the river to drink. "
    * 5
    + "One day,",
    "Q: What is 2 + 2?\nA: 4\nQ: What is 3 + 5?\nA: 8\n" * 8 + "Q: What is 7 + 6?\nA:",
    "Photosynthesis is the process by which green plants use sunlight to make food from carbon dioxide and water. "
    * 6
    + "The main product is",
    "import os\nimport sys\nimport json\n" * 10 + "def main():",
)
# A prompt past Gemma 3's 512-token window and the 1024 cells of its sliding-window ring, in a
# context long enough that the engine keeps the ring (llama.cpp then keeps its SWA cache alike).
WINDOW_PROMPTS = ("\n\n".join(LONG_PROMPTS + LONG_PROMPTS[:2]),)
# About 4k tokens (3,947 for SmolLM2): the long prompts in turn, numbered, so attention reads a
# cache of thousands of rows at every step, and an open ending (llama.cpp's first step is no tie).
# In CONTEXT_NUM_CTX nothing shifts; in SHIFT_NUM_CTX SmolLM2's window is full after 21 generated
# tokens and shifts once.
CONTEXT_PROMPTS = (
    "\n\n".join(f"{n + 1}. {LONG_PROMPTS[n % len(LONG_PROMPTS)]}" for n in range(26))
    + "\n\nIn summary, these passages",
)
TOKENS = 64
NUM_CTX = 512
WINDOW_NUM_CTX = 2048
CONTEXT_NUM_CTX = 8192
SHIFT_NUM_CTX = 3968
NUM_KEEP = 4  # Ollama's default num_keep: what a shift keeps at the start


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
    kernel_flags = (
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512_vnni",
        "avx512_bf16",
        "avx_vnni",
        "amx_int8",
        "asimd",
        "sve",
    )
    return {
        "model": model,
        "machine": platform.machine(),
        "flags": [f for f in kernel_flags if f in flags],
    }


CACHE_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}  # ggml type ids, as llama-cpp-python takes them


def shift_plan(n_past: int, num_keep: int = NUM_KEEP) -> tuple[int, int]:
    """(keep, discard) for a full window, as the scheduler's ``Sequence.shift_plan`` and
    Ollama decide it: keep ``num_keep`` tokens, drop half of the rest."""
    keep = max(0, min(num_keep, n_past - 2))
    return keep, max(1, (n_past - keep) // 2)


def llamacpp_greedy(
    path: str,
    prompt_ids: list[int],
    tokens: int = TOKENS,
    cache_type: str = "f16",
    adapter: str | None = None,
    num_ctx: int = NUM_CTX,
) -> tuple[list[int], list[float]]:
    """llama.cpp's greedy continuation and its top-2 logit margin at each step (flash attention
    on, two threads: the engine's defaults; the cache of ``cache_type``; the LoRA ``adapter``
    at scale 1.0, as Ollama applies it; sliding-window layers in a cache of their window and a
    step, as the engine keeps them and as Ollama runs llama.cpp). A step that finds the window
    full first shifts it as Ollama's runner shifts llama.cpp's: the dropped cells removed and the
    later ones moved down, which llama.cpp does by re-roping their cached keys."""
    import llama_cpp

    llm = _llama(path, cache_type, adapter, num_ctx)
    llm.reset()
    llm.eval(prompt_ids)
    chosen, margins = [], []
    for _ in range(tokens):
        scores = np.asarray(llm.scores[llm.n_tokens - 1])
        second, first = np.argsort(scores)[-2:]
        chosen.append(int(first))
        margins.append(float(scores[first] - scores[second]))
        if llm.n_tokens + 1 > num_ctx:
            keep, discard = shift_plan(llm.n_tokens)
            memory = llama_cpp.llama_get_memory(llm.ctx)
            if not llama_cpp.llama_memory_seq_rm(memory, 0, keep, keep + discard):
                raise RuntimeError("llama.cpp did not drop the positions")
            llama_cpp.llama_memory_seq_add(memory, 0, keep + discard, -1, -discard)
            llm.n_tokens -= discard  # the next token's position
        llm.eval([int(first)])
    return chosen, margins


_llamas: dict = {}


def _llama(path: str, cache_type: str = "f16", adapter: str | None = None, num_ctx: int = NUM_CTX):
    from llama_cpp import Llama

    key = (path, cache_type, adapter, num_ctx)
    if key not in _llamas:
        if len(_llamas) >= 3:  # a few small models at a time
            _llamas.pop(next(iter(_llamas)))
        kind = CACHE_TYPES[cache_type]
        _llamas[key] = Llama(
            path,
            n_ctx=num_ctx,
            n_threads=2,
            n_batch=512,
            flash_attn=True,
            swa_full=False,
            logits_all=True,
            verbose=False,
            type_k=kind,
            type_v=kind,
            lora_path=adapter,
        )
    return _llamas[key]


def llamacpp_tokenize(path: str, text: str) -> list[int]:
    return list(_llama(path).tokenize(text.encode(), add_bos=True, special=True))


def ours_greedy(
    runner, prompt_ids: list[int], tokens: int = TOKENS, num_ctx: int = NUM_CTX
) -> list[int]:
    cache = runner.new_cache(num_ctx)
    logits = runner.forward([(cache, list(prompt_ids))])[0]
    return ours_continuation(runner, cache, logits, tokens, num_ctx)


def ours_continuation(runner, cache, logits, tokens: int, num_ctx: int) -> list[int]:
    """The engine's greedy continuation from ``cache`` and its last ``logits``; a full window
    shifts in place, as the scheduler shifts it (``Cache.shift``; a cache that cannot would have
    the kept tokens evaluated again, which is not llama.cpp's shift, so that fails here)."""
    chosen = []
    for _ in range(tokens):
        chosen.append(int(np.argmax(logits)))
        if cache.n_past + 1 > num_ctx and not cache.shift(*shift_plan(cache.n_past)):
            raise AssertionError("the cache could not shift in place")
        logits = runner.forward([(cache, [chosen[-1]])])[0]
    return chosen


def parting(
    ours: list[int], theirs: list[int], margins: list[float]
) -> tuple[int | None, float | None]:
    """Where the continuations part and llama.cpp's margin there (None, None when equal)."""
    for step, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            return step, margins[step]
    return None, None


@dataclass(frozen=True)
class Case:
    """What one recorded comparison runs: a model (a function of ``ollamakit.testing.models``),
    the cache type both engines use, an optional adapter (another such function) and prompts."""

    model: str
    cache_type: str = "f16"
    adapter: str | None = None
    prompts: tuple[str, ...] = PROMPTS
    num_ctx: int = NUM_CTX

    def paths(self) -> tuple[str, str | None]:
        from ollamakit.testing import models

        adapter = getattr(models, self.adapter)() if self.adapter else None
        return str(getattr(models, self.model)()), None if adapter is None else str(adapter)


CASES = {
    "smollm2": Case("smollm2_q4_1"),
    "gemma3": Case("gemma3_270m"),
    "smollm2/q8_0": Case("smollm2_q4_1", "q8_0"),
    "smollm2+lora": Case("smollm2_q4_1", adapter="smollm2_random_lora"),
    "smollm2/long": Case("smollm2_q4_1", prompts=LONG_PROMPTS),
    "gemma3/long": Case("gemma3_270m", prompts=LONG_PROMPTS),
    "gemma3/window": Case("gemma3_270m", prompts=WINDOW_PROMPTS, num_ctx=WINDOW_NUM_CTX),
    "smollm2/4k": Case("smollm2_q4_1", prompts=CONTEXT_PROMPTS, num_ctx=CONTEXT_NUM_CTX),
    "smollm2/4k/q8_0": Case(
        "smollm2_q4_1", "q8_0", prompts=CONTEXT_PROMPTS, num_ctx=CONTEXT_NUM_CTX
    ),
    "smollm2/4k-shift": Case("smollm2_q4_1", prompts=CONTEXT_PROMPTS, num_ctx=SHIFT_NUM_CTX),
    "smollm2/4k-shift/q8_0": Case(
        "smollm2_q4_1", "q8_0", prompts=CONTEXT_PROMPTS, num_ctx=SHIFT_NUM_CTX
    ),
    "gemma3/4k": Case("gemma3_270m", prompts=CONTEXT_PROMPTS, num_ctx=CONTEXT_NUM_CTX),
    "gemma3/4k/q8_0": Case("gemma3_270m", "q8_0", prompts=CONTEXT_PROMPTS, num_ctx=CONTEXT_NUM_CTX),
    "qwen25/4k": Case("qwen25_coder_1_5b", prompts=CONTEXT_PROMPTS, num_ctx=CONTEXT_NUM_CTX),
    "qwen25/4k/q8_0": Case(
        "qwen25_coder_1_5b", "q8_0", prompts=CONTEXT_PROMPTS, num_ctx=CONTEXT_NUM_CTX
    ),
}


def record(cases: dict[str, Case], out: Path) -> None:
    """Write llama.cpp's answers for ``cases`` with this CPU beside them (keeping the other
    cases' answers in ``out`` when they were recorded on this CPU too)."""
    import llama_cpp

    answers = {}
    if out.exists():
        recorded = json.loads(out.read_text())
        if recorded.get("cpu") == cpu():
            answers = recorded["models"]
    for name, case in cases.items():
        path, adapter = case.paths()
        answers[name] = []
        for text in case.prompts:
            ids = llamacpp_tokenize(path, text)
            greedy, margins = llamacpp_greedy(
                path, ids, cache_type=case.cache_type, adapter=adapter, num_ctx=case.num_ctx
            )
            answers[name].append(
                {
                    "prompt": text,
                    "prompt_ids": ids,
                    "greedy_ids": greedy,
                    "margins": [round(m, 5) for m in margins],
                }
            )
    document = {
        "generator": f"llama-cpp-python {llama_cpp.__version__}, built on this machine; flash attention on, "
        f"float16 cache (a name ending in /q8_0: a q8_0 cache), n_threads 2, n_ctx {NUM_CTX} "
        f"({WINDOW_NUM_CTX} for /window, {CONTEXT_NUM_CTX} for /4k, {SHIFT_NUM_CTX} for /4k-shift), "
        "swa_full false; a step that finds the window full first drops half of what follows the "
        f"first {NUM_KEEP} tokens (llama_memory_seq_rm, the rest moved down by llama_memory_seq_add); "
        "a name with +lora: the seeded random adapter of ollamakit.testing.models.random_lora at scale 1.0; "
        "prompts with BOS and special tokens parsed; "
        f"{TOKENS} greedy tokens with llama.cpp's top-2 logit margin at each step",
        "cpu": cpu(),
        "models": answers,
    }
    out.write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":  # python -m ollamakit.testing.agreement [output.json [case...]]
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/reference") / RECORDED
    record({name: CASES[name] for name in sys.argv[2:]} or CASES, target)
    print(f"wrote {target}")
