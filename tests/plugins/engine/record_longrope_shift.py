"""Record llama.cpp's answers after a context shift on the LongRoPE fixture, for
``test_longrope_shift.py`` (llama-cpp-python itself stays out of the tests).

    python tests/plugins/engine/record_longrope_shift.py   # with llama-cpp-python installed

For each context (256: within the fixture's original context, so the short rope factors; 512:
past it, the long ones): the prompt is evaluated, its greedy next token chosen, then positions
[KEEP, KEEP + DISCARD) are dropped as a context shift drops them (``llama_memory_seq_rm``, the
later ones moved down with ``llama_memory_seq_add``, which llama.cpp applies by re-roping the
cached keys), and the greedy continuation recorded from there: each step's token, its top-2
margin and top logprobs. Float32 cache, flash attention off, two threads.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "reference" / "llamacpp-longrope-shift.json"
FIXTURE = "phi3-longrope"
PROMPT = "Once upon a time, in a small village, there lived an old clockmaker."
KEEP, DISCARD, TOKENS = 4, 32, 12
CONTEXTS = (256, 512)


def record() -> dict:
    import llama_cpp
    from llama_cpp import Llama

    from ollamakit.testing import architectures as fixtures
    from ollamakit.testing.agreement import cpu

    answers = []
    with tempfile.TemporaryDirectory() as folder:
        path = fixtures.build(FIXTURE, Path(folder) / f"{FIXTURE}.gguf")
        digest = fixtures.sha256(path)
        for num_ctx in CONTEXTS:
            llm = Llama(
                str(path),
                n_ctx=num_ctx,
                n_threads=2,
                n_batch=512,
                flash_attn=False,
                logits_all=True,
                verbose=False,
                type_k=0,
                type_v=0,
            )
            ids = fixtures.prompt_ids(PROMPT)
            llm.reset()
            llm.eval(ids)
            first = fixtures._step(llm.scores[llm.n_tokens - 1])
            memory = llama_cpp.llama_get_memory(llm.ctx)
            if not llama_cpp.llama_memory_seq_rm(memory, 0, KEEP, KEEP + DISCARD):
                raise SystemExit("llama.cpp did not drop the positions")
            llama_cpp.llama_memory_seq_add(memory, 0, KEEP + DISCARD, -1, -DISCARD)
            llm.n_tokens = len(ids) - DISCARD  # the next token's position
            steps, token = [], first["id"]
            for _ in range(TOKENS):
                llm.eval([token])
                step = fixtures._step(llm.scores[llm.n_tokens - 1])
                steps.append(step)
                token = step["id"]
            answers.append(
                {
                    "num_ctx": num_ctx,
                    "first_id": first["id"],
                    "greedy_ids": [s["id"] for s in steps],
                    "margins": [round(s["margin"], 5) for s in steps],
                    "top_logprobs": [s["top"] for s in steps],
                }
            )
            llm.close()
    return {
        "generator": f"tests/plugins/engine/record_longrope_shift.py: llama-cpp-python "
        f"{llama_cpp.__version__} built on this machine; fixture {FIXTURE} of "
        f"ollamakit.testing.architectures.build (its sha256 below); float32 cache, flash "
        f"attention off, "
        f"n_threads 2; the prompt as byte ids, its greedy next token, positions [{KEEP}, "
        f"{KEEP + DISCARD}) dropped, then {TOKENS} greedy tokens with the top-2 logit margin "
        f"and the top {fixtures.TOP} logprobs",
        "cpu": cpu(),
        "fixture": FIXTURE,
        "sha256": digest,
        "prompt": PROMPT,
        "keep": KEEP,
        "discard": DISCARD,
        "answers": answers,
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    OUT.write_text(json.dumps(record(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
