"""A plugin author runs ollamakit's storage contract against their own driver in three lines."""

from ollamakit.testing.contracts import StorageContract


class TestAcmeStorage(StorageContract):
    drivers = ("acme",)
