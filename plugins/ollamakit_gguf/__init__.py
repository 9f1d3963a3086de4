"""The GGUF model source: ``/api/create`` from GGUF files (``source``), registered by ``plugin``.

Reading and writing GGUF is the library's work (``ollamakit.lib.gguf``); this plugin decides
which files a create request names, classifies them (model, projector, adapter) and stores them.
"""
