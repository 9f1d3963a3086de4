"""Record transformers' and PEFT's logits for the seeded adapters of ``peft_folders``, so that
``test_peft_adapter`` checks the conversion against PEFT itself without torch installed.

    python tests/plugins/safetensors/record_peft_logits.py   # with torch, transformers and peft

For each of llama, qwen2 and gemma3: the tiny F32 folder and its seeded rank-4 adapter (seed 1,
alpha 8, all seven projections) are made again from their seeds, the adapter folder is loaded by
``PeftModel.from_pretrained`` (so PEFT reads the very files the test converts), and the last
prompt position's logits are kept, without and with the adapter. PEFT's own ``save_pretrained``
must give back the same tensor names and shapes, which shows the test writes PEFT's format.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE.parents[2] / "tests" / "reference" / "peft-lora-logits.json"
PROMPT = [5, 72, 101, 108, 108, 111, 33, 9, 40, 50, 60, 70, 80, 90]
ARCHS = ("llama", "qwen2", "gemma3")


def record() -> dict:
    import numpy as np
    import peft
    import torch
    import transformers
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    from ollamakit.testing.agreement import cpu
    from peft_folders import decoder_folder, peft_adapter

    def last_row(model) -> list[float]:
        with torch.no_grad():
            return [round(float(x), 6) for x in model(torch.tensor([PROMPT])).logits[0, -1]]

    def shapes(path: Path) -> dict:
        with safe_open(path, "np") as f:
            return {key: list(f.get_slice(key).get_shape()) for key in f.keys()}

    answers = {
        "made_with": f"transformers {transformers.__version__}, peft {peft.__version__}, torch {torch.__version__}, "
        f"numpy {np.__version__} (the seeds' generator), float32, CPU",
        "cpu": cpu(),
        "prompt": PROMPT,
    }
    with tempfile.TemporaryDirectory() as scratch:
        for arch in ARCHS:
            model_dir = decoder_folder(arch, Path(scratch) / arch)
            peft_adapter(model_dir, Path(scratch) / f"{arch}-lora")
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
            base = last_row(model)
            tuned_model = PeftModel.from_pretrained(model, Path(scratch) / f"{arch}-lora").eval()
            tuned = last_row(tuned_model)
            tuned_model.save_pretrained(Path(scratch) / f"{arch}-saved")
            ours = shapes(Path(scratch) / f"{arch}-lora" / "adapter_model.safetensors")
            theirs = shapes(Path(scratch) / f"{arch}-saved" / "adapter_model.safetensors")
            if ours != theirs:
                raise SystemExit(f"{arch}: PEFT saves other tensors than peft_folders writes")
            answers[arch] = {"base": base, "tuned": tuned}
    return answers


if __name__ == "__main__":
    OUT.write_text(json.dumps(record(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
