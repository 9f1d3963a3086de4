"""LoRA adapters in llama.cpp's GGUF format, checked against the model they adapt.

An adapter file has ``general.type`` "adapter", ``adapter.type`` "lora", an optional
``adapter.lora.alpha``, and for each adapted matrix ``W`` (a base tensor name) two tensors
``W.lora_a`` (ne = [W.ne0, rank]) and ``W.lora_b`` (ne = [rank, W.ne1]). The engine then computes
``W x + scale * B (A x)`` with ``scale = alpha / rank`` (1 when alpha is 0 or absent), at
Ollama's adapter scale of 1.0.

``lora_pairs`` is the whole check. Create runs it before a manifest is written, so an adapter
for another model is a 400 there and not an error at the first request; the engine runs it
again when it loads the pair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ollamakit.errors import InvalidModelFile

from .reader import GGUFFile, TensorInfo

# The matrices the engine multiplies with mul_mat, so an adapter may change them. The token
# embedding is read by rows, and llama.cpp cannot apply its LoRA on a model whose output shares
# it; norm vectors are skipped by llama.cpp itself.
ADAPTABLE = re.compile(
    r"^(blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)|output)\.weight$"
)
IGNORED = re.compile(r"_norm\.weight\.lora_[ab]$")
MAX_RANK = 4096


@dataclass(frozen=True)
class LoraPair:
    target: str  # the base tensor's name
    a: TensorInfo  # ne = [in, rank]
    b: TensorInfo  # ne = [rank, out]
    scale: float

    @property
    def rank(self) -> int:
        return int(self.a.shape[1])


def lora_pairs(adapter: GGUFFile, base: GGUFFile) -> list[LoraPair]:
    """The adapter's (A, B) pairs by base tensor, each checked against ``base``; raises
    ``InvalidModelFile`` with a message that names the first thing that does not fit."""
    meta = adapter.metadata
    if meta.get("general.type") != "adapter":
        raise InvalidModelFile(
            f'expected general.type "adapter", found {meta.get("general.type")!r}'
        )
    if meta.get("adapter.type") != "lora":
        raise InvalidModelFile(
            f"only LoRA adapters are supported (adapter.type is {meta.get('adapter.type')!r})"
        )
    if adapter.architecture != base.architecture:
        raise InvalidModelFile(
            f'the adapter is for the "{adapter.architecture}" architecture, the model is "{base.architecture}"'
        )
    alpha = meta.get("adapter.lora.alpha", 0.0)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha < 1e6:
        raise InvalidModelFile("adapter.lora.alpha must be a non-negative number")

    halves: dict[str, dict[str, TensorInfo]] = {}
    for info in adapter.tensors:
        if IGNORED.search(info.name):
            continue
        target, dot, half = info.name.rpartition(".")
        if not dot or half not in ("lora_a", "lora_b"):
            raise InvalidModelFile(f"adapter tensor {info.name} is neither a lora_a nor a lora_b")
        halves.setdefault(target, {})[half] = info
    if not halves:
        raise InvalidModelFile("the adapter has no LoRA tensors")

    base_tensors = {info.name: info for info in base.tensors}
    pairs = []
    for target in sorted(halves):
        a, b = halves[target].get("lora_a"), halves[target].get("lora_b")
        if a is None or b is None:
            raise InvalidModelFile(
                f"adapter tensor {target} lacks its lora_{'a' if a is None else 'b'}"
            )
        weight = base_tensors.get(target)
        if weight is None:
            raise InvalidModelFile(f"the adapter changes {target}, which the model does not have")
        if not ADAPTABLE.match(target):
            raise InvalidModelFile(f"adapters of {target} are not supported")
        if len(a.shape) != 2 or len(b.shape) != 2 or len(weight.shape) != 2:
            raise InvalidModelFile(f"the LoRA tensors of {target} must be matrices")
        if a.shape[0] != weight.shape[0] or b.shape[1] != weight.shape[1]:
            raise InvalidModelFile(
                f"the LoRA tensors of {target} do not fit its shape {tuple(weight.shape)} "
                f"(lora_a {tuple(a.shape)}, lora_b {tuple(b.shape)})"
            )
        rank = a.shape[1]
        if b.shape[0] != rank or not 1 <= rank <= MAX_RANK:
            raise InvalidModelFile(f"the LoRA tensors of {target} disagree on their rank")
        pairs.append(LoraPair(target, a, b, float(alpha) / rank if alpha else 1.0))
    return pairs
