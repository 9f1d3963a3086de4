"""Plugin ``safetensors``: imports Hugging Face model folders (``config.json``, ``*.safetensors``,
``tokenizer.json``) by converting them to GGUF at create time, so one engine runs every model.

Supported architectures: LlamaForCausalLM (Llama, Mistral, SmolLM2), Qwen2ForCausalLM,
Gemma3ForCausalLM and BertModel (sentence-transformers folders included).
"""

from .convert import Conversion, plan_conversion
from .folder import ModelFolder
from .reader import SafetensorsFile

__all__ = ["Conversion", "ModelFolder", "SafetensorsFile", "plan_conversion"]
