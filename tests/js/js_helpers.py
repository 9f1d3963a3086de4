"""Shared by conftest.py and the tests here."""

from __future__ import annotations


class JsError(Exception):
    """What ollama-js threw: its ``name``, ``error`` (the message) and ``status_code``."""

    def __init__(self, thrown: dict):
        super().__init__(thrown)
        self.name, self.error, self.status_code = (
            thrown["name"],
            thrown["error"],
            thrown["status_code"],
        )
