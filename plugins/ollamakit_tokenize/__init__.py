"""Tokenizing routes: ``POST /api/tokenize`` and ``POST /api/detokenize`` (see ``routes.py``)."""
