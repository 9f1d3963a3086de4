"""Quantization of F32/F16/BF16 GGUF models to ggml's block types, in numpy."""
