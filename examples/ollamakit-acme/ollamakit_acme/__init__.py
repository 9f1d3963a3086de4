"""ACME Corp's ollamakit plugin: the ``acme`` storage driver and the ``acme-usage`` command."""
