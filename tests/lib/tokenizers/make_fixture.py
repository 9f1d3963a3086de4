"""Regenerate ``llamacpp_ids.json``: llama.cpp's token ids for hard and random texts.

Development tool, not a test: it needs ``llama-cpp-python`` (not a project dependency) and the real
models. Run ``python tests/lib/tokenizers/make_fixture.py`` from the repository root.

For the pre-tokenizer families it writes metadata-only GGUF files (SmolLM2's vocabulary with
multi-digit tokens added, so that digit grouping shows in the ids) and relabels
``tokenizer.ggml.pre``; llama.cpp loads them with ``vocab_only``.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from tokenizer_corpus import HARD_TEXTS, random_texts, smollm_with_digit_tokens, minilm_metadata  # noqa: E402

PRE_FAMILIES = [
    "default",
    "llama-bpe",
    "qwen2",
    "gpt-2",
    "deepseek-llm",
    "deepseek-coder",
    "deepseek-v3",
    "falcon",
    "starcoder",
    "command-r",
    "olmo",
    "dbrx",
    "smaug-bpe",
    "poro-chat",
    "jina-v2-es",
    "tekken",
    "chatglm-bpe",
    "viking",
    "jais",
    "gpt-4o",
    "chameleon",
    "qwen35",
    "exaone-moe",
    "seed-coder",
]


def write_gguf(path: Path, metadata: dict, arch: str) -> None:
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), arch)
    for key, value in metadata.items():
        if key == "general.architecture" or key.startswith("GGUF."):
            continue
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        elif key == "tokenizer.ggml.scores":
            writer.add_array(key, [float(v) for v in value])
        else:
            writer.add_array(key, list(value))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def cases(path, texts) -> list[dict]:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    return [
        {
            "text": t,
            "with_bos_special": llm.tokenize(t.encode(), add_bos=True, special=True),
            "plain": llm.tokenize(t.encode(), add_bos=False, special=False),
        }
        for t in texts
    ]


def main() -> None:
    from ollamakit.testing import models
    from ollamakit.lib.gguf.reader import GGUFFile

    texts = HARD_TEXTS + random_texts(random.Random(1234), 30)
    fixture = {
        "generator": "llama.cpp via llama-cpp-python (vocab_only); see make_fixture.py",
        "models": {
            "smollm2": cases(models.smollm2_q4_1(), texts),
            "gemma3": cases(models.gemma3_270m(), texts),
        },
        "pre": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        bert = Path(tmp) / "minilm.gguf"
        write_gguf(bert, minilm_metadata(models.all_minilm_l6_v2()), "bert")
        fixture["models"]["minilm"] = cases(bert, texts)
        base = smollm_with_digit_tokens(GGUFFile.open(models.smollm2_q4_1()).metadata)
        pre_texts = HARD_TEXTS[:30] + random_texts(random.Random(99), 6)
        for name in PRE_FAMILIES:
            path = Path(tmp) / f"{name}.gguf"
            write_gguf(path, {**base, "tokenizer.ggml.pre": name}, "llama")
            fixture["pre"][name] = cases(path, pre_texts)
    out = HERE / "llamacpp_ids.json"
    out.write_text(json.dumps(fixture, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
