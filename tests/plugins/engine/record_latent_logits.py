"""Record llama.cpp's logits for a deepseek2 whose low-rank and shared-expert maps are Q4_K, for
``test_latent_attention.py`` (llama-cpp-python itself stays out of the tests).

    python tests/plugins/engine/record_latent_logits.py   # with llama-cpp-python installed

The model (``build``) is the deepseek2 fixture of ``ollamakit.testing.architectures`` at width
256, its query's and latent's first maps and its shared expert's gate and up quantized to Q4_K
(the weights llama.cpp repacks beside the usual projections), with deepseek-v2-lite's YaRN
(40x, multiplier 0.0707). For each prompt: the last row's logits after one step over the whole
prompt, float16 cache, flash attention on, two threads, as float32 values.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[2] / "reference" / "llamacpp-latent-q4k.json"
NUM_CTX = 256
PROMPTS = ([5], [5, 70, 80, 90, 100, 33, 44, 55, 66, 77, 88, 99, 111, 122, 133, 144])
REPACKED = ("attn_q_a", "attn_kv_a_mqa", "ffn_gate_shexp", "ffn_up_shexp")
Q4_K = 12  # ggml type


def build(folder: Path) -> Path:
    """The model: the same bytes on every machine (seeded weights, ggml's reference Q4_K)."""
    from ollamakit_quant.encode import encode

    from ollamakit.lib.gguf import GGUFFile
    from ollamakit.testing import architectures as fixtures
    from ollamakit.testing.gguf_factory import make_gguf

    base = fixtures.FIXTURES["deepseek2"]
    fixtures.FIXTURES["deepseek2-256"] = replace(base, config={**base.config, "hidden_size": 256})
    try:
        source = fixtures.build("deepseek2-256", folder / "f16.gguf")
    finally:
        del fixtures.FIXTURES["deepseek2-256"]
    raw = source.read_bytes()
    with GGUFFile.open(source) as gguf:
        metadata = dict(gguf.metadata)
        tensors = {
            t.name: (raw[t.offset : t.offset + t.nbytes], t.ggml_type, tuple(t.shape))
            for t in gguf.tensors
        }
    for name, (data, _, shape) in list(tensors.items()):
        if name.split(".")[-2] in REPACKED:
            blocks = encode(np.frombuffer(data, np.uint8), "F16", "Q4_K")
            tensors[name] = (blocks.tobytes(), Q4_K, shape)
    metadata["deepseek2.rope.scaling.factor"] = 40.0
    metadata["deepseek2.rope.scaling.yarn_log_multiplier"] = 0.0707
    return make_gguf(folder / "q4k.gguf", metadata, tensors, types=fixtures.value_types(metadata))


def record() -> dict:
    import llama_cpp
    from llama_cpp import Llama

    from ollamakit.testing import architectures as fixtures
    from ollamakit.testing.agreement import cpu

    answers = []
    with tempfile.TemporaryDirectory() as folder:
        path = build(Path(folder))
        digest = fixtures.sha256(path)
        for ids in PROMPTS:
            llm = Llama(
                str(path),
                n_ctx=NUM_CTX,
                n_threads=2,
                n_batch=512,
                flash_attn=True,
                logits_all=True,
                verbose=False,
                type_k=1,
                type_v=1,
            )
            llm.reset()
            llm.eval(ids)
            logits = np.asarray(llm.scores[llm.n_tokens - 1], np.float32)
            answers.append({"ids": ids, "logits": [float(v) for v in logits]})
            llm.close()
    return {
        "generator": f"tests/plugins/engine/record_latent_logits.py: llama-cpp-python "
        f"{llama_cpp.__version__} built on this machine; the model of its build() (sha256 "
        f"below); float16 cache, flash attention on, n_threads 2, n_ctx {NUM_CTX}; the last "
        f"row's logits after one step over each prompt (byte ids), float32 values",
        "cpu": cpu(),
        "sha256": digest,
        "answers": answers,
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    OUT.write_text(json.dumps(record(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
