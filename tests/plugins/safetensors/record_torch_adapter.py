"""Write ``tests/reference/peft-adapter.bin``: a PEFT adapter as ``save_pretrained(...,
safe_serialization=False)`` writes it (``torch.save`` of the state dict), made by torch itself,
so that ``test_torch_adapter`` reads a real PyTorch checkpoint without torch installed.

    python tests/plugins/safetensors/record_torch_adapter.py   # with torch

The tensors are ``peft_folders.peft_adapter``'s for the tiny qwen2 folder (seed 0), adapter seed 1,
rank 4, on q_proj, v_proj and down_proj; written again from their seeds, the test compares them.
Two of them are saved as views, as a checkpoint may hold them: layer 0's q_proj lora_A as the
transpose of a contiguous (in, r) tensor (strides that are not row-major) and layer 1's
down_proj lora_B as a slice of a larger storage (an offset into it).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE.parents[2] / "tests" / "reference" / "peft-adapter.bin"
MODULES = ("q_proj", "v_proj", "down_proj")
STRIDED = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
OFFSET = "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"


def record() -> None:
    import torch

    from peft_folders import decoder_folder, peft_adapter

    with tempfile.TemporaryDirectory() as folder:
        model = decoder_folder("qwen2", Path(folder) / "qwen2")
        tensors = peft_adapter(model, Path(folder) / "lora", modules=MODULES)
    state = {}
    for name, values in tensors.items():
        tensor = torch.from_numpy(values.copy())
        if name == STRIDED:
            tensor = tensor.T.contiguous().T
            assert not tensor.is_contiguous()
        elif name == OFFSET:
            big = torch.zeros(values.size + 7)
            big[7:] = tensor.flatten()
            tensor = big[7:].view(values.shape)
            assert tensor.storage_offset() == 7
        state[name] = tensor
    torch.save(state, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) with torch {torch.__version__}")


if __name__ == "__main__":
    record()
