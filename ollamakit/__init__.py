"""ollamakit: an Ollama-compatible local LLM server built as a plugin framework."""

__version__ = "0.1.0"
