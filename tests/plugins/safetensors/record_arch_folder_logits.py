"""Record transformers' answers for the seeded folders of ``arch_folders``, so that
``test_arch_folders`` checks their conversion against transformers itself without torch installed.

    python tests/plugins/safetensors/record_arch_folder_logits.py [NAMES...]  # torch, transformers

With names, only those folders are recorded again; the others' answers are kept.

For each folder: the architecture's ``transformers`` class (for an MXFP4 folder, with its experts
dequantized by transformers' own MXFP4 code), made from the folder's config, must
``save_pretrained`` the same tensor names and shapes as ``arch_folders`` writes, and load the
folder with no tensor missing or left over. Then, in float32 with eager attention, its greedy
continuation of each prompt (the whole sequence run again at each step), with every step's top-2
margin and top logprobs, as ``ollamakit.testing.architectures`` records llama.cpp's.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE.parents[2] / "tests" / "reference" / "transformers-arch-folders.json"
TOKENS = 12


def record(names=None) -> dict:
    import numpy as np
    import torch
    import transformers
    from safetensors import safe_open

    import arch_folders
    from ollamakit.testing import architectures as fixtures
    from ollamakit.testing.agreement import cpu

    def shapes(path: Path) -> dict:
        with safe_open(path, "np") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}

    made_with = (
        f"transformers {transformers.__version__}, torch {torch.__version__}, numpy "
        f"{np.__version__} (the seeds' generator); float32, eager attention, CPU; {TOKENS} greedy "
        f"tokens per prompt with the top-2 logit margin and the top {fixtures.TOP} logprobs"
    )
    answers: dict = {"made_with": made_with, "cpu": cpu(), "folders": {}}
    if names:
        kept = json.loads(OUT.read_text())
        if (kept["cpu"], kept["made_with"]) != (answers["cpu"], made_with):
            raise SystemExit(f"{OUT} was recorded otherwise or elsewhere: record every folder")
        answers["folders"] = kept["folders"]
    with tempfile.TemporaryDirectory() as scratch:
        for name in names or arch_folders.FOLDERS:
            folder = arch_folders.write(name, Path(scratch) / name)
            if name in arch_folders.MXFP4_FOLDERS:
                folder = dequantized(folder, Path(scratch) / f"{name}-dequantized")
            config = json.loads((folder / "config.json").read_text())
            model_class = getattr(transformers, config["architectures"][0])
            own = model_class(model_class.config_class.from_pretrained(folder))
            own.save_pretrained(Path(scratch) / f"{name}-saved")
            theirs = shapes(Path(scratch) / f"{name}-saved" / "model.safetensors")
            if theirs != shapes(folder / "model.safetensors"):
                raise SystemExit(f"{name}: save_pretrained writes other tensors than arch_folders")
            model, info = model_class.from_pretrained(
                folder, dtype=torch.float32, attn_implementation="eager", output_loading_info=True
            )
            if any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")):
                raise SystemExit(f"{name}: transformers does not load every tensor: {info}")
            model.eval()
            runs = []
            for text in fixtures.PROMPTS:
                ids = fixtures.prompt_ids(text)
                steps = []
                for _ in range(TOKENS):
                    with torch.no_grad():
                        logits = model(torch.tensor([ids])).logits[0, -1].numpy()
                    step = fixtures._step(logits)
                    steps.append(step)
                    ids = ids + [step["id"]]
                runs.append(
                    {
                        "prompt": text,
                        "greedy_ids": [s["id"] for s in steps],
                        "margins": [round(s["margin"], 5) for s in steps],
                        "top_logprobs": [s["top"] for s in steps],
                    }
                )
            answers["folders"][name] = runs
    return answers


def dequantized(folder: Path, out: Path) -> Path:
    """An MXFP4 folder with its experts as transformers' own MXFP4 code dequantizes them
    (``convert_moe_packed_tensors``, in float32), which its loader does on a machine without
    MXFP4 kernels; the folder's other tensors and files as they are."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors

    shutil.copytree(folder, out)
    weights = load_file(folder / "model.safetensors")
    for name in [n for n in weights if n.endswith("_blocks")]:
        scales = weights.pop(name.replace("_blocks", "_scales"))
        blocks = weights.pop(name)
        weights[name.removesuffix("_blocks")] = convert_moe_packed_tensors(
            blocks, scales, dtype=torch.float32
        )
    save_file(weights, str(out / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    del config["quantization_config"]
    (out / "config.json").write_text(json.dumps(config))
    return out


if __name__ == "__main__":
    document = json.dumps(record(sys.argv[1:] or None), indent=1)
    OUT.write_text(document + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
