"""Wrapping a default, as docs/plugin-hooks.md shows: a ``wrapper=True`` implementation gets
what the others built and returns its replacement."""

from ollamakit import drivers
from ollamakit.config import Settings
from ollamakit.hookspecs import hookimpl
from ollamakit.kernel import make_kernel


class ReadOnlyStorage:
    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put_blob(self, digest, source):
        raise PermissionError("read-only")


class ReadOnly:
    @hookimpl(wrapper=True)
    def make_storage(self, kernel):
        inner = yield
        return ReadOnlyStorage(inner)


def test_a_wrapper_gets_the_default_driver_and_replaces_it(models_dir):
    kernel = make_kernel(Settings(models_dir=models_dir), plugins=[ReadOnly()])
    try:
        storage = kernel.storage
        assert isinstance(storage, ReadOnlyStorage)
        assert isinstance(storage.inner, drivers.driver_class("storage", "fs"))  # the default's
        assert storage.has_blob("sha256:" + "0" * 64) is False
    finally:
        kernel.close()
