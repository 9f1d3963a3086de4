"""Reranking routes: ``POST /api/rerank`` and ``POST /v1/rerank`` (see ``routes.py``)."""
