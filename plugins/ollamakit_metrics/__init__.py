"""Prometheus metrics at ``GET /metrics`` (see ``collector.py``)."""
