"""Readiness (``GET /health``) and the models loaded at start (``OLLAMAKIT_PRELOAD``)."""
