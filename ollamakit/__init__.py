"""ollamakit: an Ollama-compatible local LLM server built as a plugin framework."""

__version__ = "0.1.0"
# The Ollama API this server implements (checked against Ollama 0.33's source): what
# /api/version and the registry User-Agent report, since clients and registries gate features
# on it. ollamakit's own version rides along where clients ignore it.
OLLAMA_VERSION = "0.33.0"
