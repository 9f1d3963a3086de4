"""Record transformers' logits for the qwen3 and gemma2 adapters of ``test_peft_adapter``, so the
test checks them against Hugging Face's own model, not only against a merge it computes itself.

    python tests/plugins/safetensors/record_gguf_adapter_logits.py   # with torch, transformers

For each architecture: the tiny fixture of ``ollamakit.testing.architectures`` (its float16
values, read back as float32) is loaded into its ``transformers`` class, the weights renamed from
GGUF to Hugging Face (gemma2's norms lose the 1 the converter adds; q and k rows are not
permuted: that is the claim under test); the seeded adapter (``peft_folders.gguf_peft_adapter``)
is merged as PEFT merges (W + alpha/r · B A, in Hugging Face's row order); the last prompt
position's logits are kept, without and with it. PEFT itself is not needed: its merge is that
sum (``merge_and_unload``), which ``record_peft_logits.py`` shows on the other architectures.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE.parents[2] / "tests" / "reference" / "hf-gguf-lora-logits.json"
PROMPT = [5, 72, 101, 108, 108, 111, 33, 9, 40, 50, 60, 70, 80, 90]
ARCHS = ("qwen3", "gemma2")
LAYER = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
GEMMA2_LAYER = {
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}


def hf_name(arch: str, name: str) -> str:
    top = {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    }
    if name in top:
        return top[name]
    _, layer, part, kind = name.split(".")
    table = {
        **LAYER,
        **(GEMMA2_LAYER if arch == "gemma2" else {"ffn_norm": "post_attention_layernorm"}),
    }
    return f"model.layers.{layer}.{table[part]}.{kind}"


def record() -> dict:
    import numpy as np
    import torch
    import transformers
    from safetensors.numpy import load_file

    from ollamakit.lib.gguf import GGUFFile
    from ollamakit.testing import architectures
    from ollamakit.testing.agreement import cpu
    from peft_folders import GGUF_NAMES, gguf_peft_adapter

    answers = {
        "made_with": f"transformers {transformers.__version__}, torch {torch.__version__}, numpy {np.__version__}, float32, CPU",
        "cpu": cpu(),
        "prompt": PROMPT,
    }
    with tempfile.TemporaryDirectory() as scratch:
        for arch in ARCHS:
            fixture = architectures.FIXTURES[arch]
            path = architectures.build(arch, Path(scratch) / f"{arch}.gguf")
            gguf_peft_adapter(path, Path(scratch) / f"{arch}-lora")
            state = {}
            with GGUFFile.open(path) as gguf:
                for info in gguf.tensors:
                    values = gguf.tensor(info.name).astype(np.float32)
                    if arch == "gemma2" and info.name.endswith("norm.weight"):
                        values = values - np.float32(1.0)
                    state[hf_name(arch, info.name)] = torch.from_numpy(values.copy())
            config = getattr(transformers, fixture.hf_config)(**fixture.c)
            model = getattr(transformers, fixture.hf_model)(config).eval()
            missing, unexpected = model.load_state_dict(state, strict=False)
            missing = [
                m for m in missing if m != "lm_head.weight" or not fixture.c["tie_word_embeddings"]
            ]
            if missing or unexpected:
                raise SystemExit(f"{arch}: missing {missing}, unexpected {unexpected}")

            def last_row():
                with torch.no_grad():
                    return [round(float(x), 6) for x in model(torch.tensor([PROMPT])).logits[0, -1]]

            base = last_row()
            lora = load_file(Path(scratch) / f"{arch}-lora" / "adapter_model.safetensors")
            config_json = json.loads(
                (Path(scratch) / f"{arch}-lora" / "adapter_config.json").read_text()
            )
            weights = dict(model.named_parameters())
            with torch.no_grad():
                for key in lora:
                    if key.endswith(".lora_A.weight"):
                        stem = key.removesuffix(".lora_A.weight")
                        a = torch.from_numpy(lora[key].astype(np.float64))
                        b = torch.from_numpy(lora[stem + ".lora_B.weight"].astype(np.float64))
                        target = weights[stem.removeprefix("base_model.model.") + ".weight"]
                        delta = config_json["lora_alpha"] / a.shape[0] * (b @ a)
                        target.copy_((target.double() + delta).float())
            answers[arch] = {"base": base, "tuned": last_row()}
            assert set(GGUF_NAMES)  # the adapter covers every projection
    return answers


if __name__ == "__main__":
    OUT.write_text(json.dumps(record(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
