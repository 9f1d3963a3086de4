"""Models as single archives for machines with no network: ``ollamakit export`` and ``import``."""
