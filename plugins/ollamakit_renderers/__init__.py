"""Built-in prompt renderers and output parsers, by the names Ollama gives them (``RENDERER`` and
``PARSER`` in a Modelfile): the ``ollamakit.renderer`` and ``ollamakit.parser`` drivers of the
templates layer. Each module holds one model family's format.
"""
