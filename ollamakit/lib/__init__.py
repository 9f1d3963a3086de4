"""Libraries: code many parts use, each with a public API (its package's ``__all__``).

A plugin is what an entry point registers; a library is what plugins (and tests, benchmarks and
third parties) import. Import a library from its package, not from its modules:

- ``ollamakit.lib.gguf``: read, write and dequantize GGUF files;
- ``ollamakit.lib.ggml``: ggml's CPU library through ctypes, its graphs and thread pools, and
  the build of ggml for this CPU;
- ``ollamakit.lib.tokenizers``: llama.cpp-exact tokenizers from a GGUF vocabulary;
- ``ollamakit.lib.templates``: Ollama's Go templates and GGUF Jinja chat templates;
- ``ollamakit.lib.structured``: JSON-schema constraints, tool-call and thinking parsers.

Libraries import the kernel's types and each other, never a plugin.
"""
