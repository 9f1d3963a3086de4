"""Plugin ``safetensors``: imports Hugging Face model folders (``config.json``, ``*.safetensors``,
``tokenizer.json``) by converting them to GGUF at create time, so one engine runs every model.

Supported architectures: LlamaForCausalLM (Llama, Mistral, SmolLM2), Qwen2ForCausalLM,
Gemma3ForCausalLM and BertModel (sentence-transformers folders included). PEFT LoRA adapters
(``adapter_config.json``, ``adapter_model.safetensors`` or ``adapter_model.bin``, whose pickle is
read without being run: ``torch_pickle.py``) and mlx-lm's (``adapter_config.json``,
``adapters.safetensors``) in a request's ``adapters`` become llama.cpp GGUF LoRA adapters for a
llama, qwen2, qwen3, gemma2 or gemma3 base (``adapter.py``).
"""

from ollamakit.lazy import lazy_exports

# Imported on first use: these modules import numpy and gguf, and the entry points load this package.
__getattr__ = lazy_exports(
    __name__,
    {
        "Conversion": ".convert",
        "plan_conversion": ".convert",
        "ModelFolder": ".folder",
        "SafetensorsFile": ".reader",
    },
)

__all__ = ["Conversion", "ModelFolder", "SafetensorsFile", "plan_conversion"]
