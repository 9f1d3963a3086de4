"""What each Hugging Face architecture becomes in GGUF: the ``<arch>.*`` metadata, the tensor
names and the few tensor transformations llama.cpp's converter applies. Each architecture also
lists the shape every tensor must have, so a folder whose tensors disagree with its
``config.json`` is refused at create time, not when the model first loads.
"""

from __future__ import annotations

from ollamakit.errors import InvalidModelFile

from .base import Architecture, Config, Tensor
from .bert import Bert
from .deepseek2 import Deepseek2
from .decoders import Gemma2, Gemma3, Granite, Llama, Olmo2, Qwen2, Qwen3, Starcoder2
from .experts import Mixtral, Qwen3Moe
from .gemma4 import Gemma4
from .gptoss import GptOss
from .nomic_bert import NomicBert
from .phi3 import Phi3

__all__ = ["ARCHITECTURES", "Architecture", "Tensor", "architecture_for"]

ARCHITECTURES = {
    name: cls
    for cls in (
        Llama,
        Qwen2,
        Qwen3,
        Gemma3,
        Gemma2,
        Gemma4,
        Phi3,
        Mixtral,
        Qwen3Moe,
        Olmo2,
        Granite,
        Starcoder2,
        GptOss,
        Deepseek2,
        Bert,
        NomicBert,
    )
    for name in cls.hf_names
}


def architecture_for(config: dict, folder) -> Architecture:
    names = config.get("architectures")
    name = names[0] if isinstance(names, list) and names and isinstance(names[0], str) else None
    if name is None:
        hint = ""
        if any(t.startswith("block.0.attn.qkv.") for t in folder.tensors):
            # as Ollama asks of it: its config names no architecture
            hint = ' (for gpt-oss\'s original layout, add "architectures": ["GptOssForCausalLM"])'
        raise InvalidModelFile("config.json does not name the model's architecture" + hint)
    cls = ARCHITECTURES.get(name)
    if cls is None:
        supported = ", ".join(sorted(ARCHITECTURES))
        raise InvalidModelFile(f'unsupported architecture "{name}"; ollamakit converts {supported}')
    return cls.build(Config(config), folder)
