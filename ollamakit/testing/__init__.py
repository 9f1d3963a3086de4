"""Helpers for tests, including those of third-party plugins: fixtures, real models, and
contract suites every driver of a kind must pass."""
