"""One abstract base per driver kind. A driver is a class registered under its kind's entry
point group (see ``drivers.py``) and constructed with the running ``Kernel``."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from .kernel import Kernel
    from .names import ModelName


class Storage(ABC):
    """Where blobs and manifests live (group ``ollamakit.storage``).

    A driver only moves bytes: digests are validated, hashed and garbage-collected by the
    kernel's ``ModelStore``, so every backend behaves alike. Writes must be atomic: a reader
    sees the old state or the new one, never a partial file.
    """

    def __init__(self, kernel: Kernel):
        self.kernel = kernel

    # -- blobs (``digest`` is always the canonical ``sha256:<hex>`` form)
    @abstractmethod
    def has_blob(self, digest: str) -> bool: ...

    @abstractmethod
    def blob_size(self, digest: str) -> int | None:
        """Size in bytes, or None when absent."""

    @abstractmethod
    def open_blob(self, digest: str) -> BinaryIO:
        """A readable binary file; raises FileNotFoundError when absent."""

    @abstractmethod
    def blob_path(self, digest: str) -> Path:
        """A local file holding the blob, for memory-mapping. Remote backends may cache."""

    @abstractmethod
    def put_blob(self, digest: str, source: Path) -> bool:
        """Move the already-verified local file ``source`` in as ``digest``, atomically.

        Returns True when the blob was new. ``source`` is consumed either way.
        """

    @abstractmethod
    def delete_blob(self, digest: str) -> None: ...

    @abstractmethod
    def list_blobs(self) -> Iterator[str]: ...

    # -- manifests, addressed by the four name parts (host, namespace, model, tag)
    @abstractmethod
    def read_manifest(self, parts: tuple[str, str, str, str]) -> bytes | None: ...

    @abstractmethod
    def write_manifest(self, parts: tuple[str, str, str, str], data: bytes) -> None: ...

    @abstractmethod
    def delete_manifest(self, parts: tuple[str, str, str, str]) -> None: ...

    @abstractmethod
    def list_manifests(self) -> Iterator[tuple[tuple[str, str, str, str], float]]:
        """Every manifest's name parts with its modification time (seconds since the epoch)."""

    def scratch_dir(self) -> Path:
        """A local directory for temporary files that ``put_blob`` can move from cheaply.
        Best made this process's own (``ollamakit.scratch.OwnedFolder``), so that what a
        crashed process left can be told from what a live one is writing."""
        path = self.kernel.settings.models_dir / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def remove_leftovers(self) -> None:
        """Remove the temporary files of processes that ended without cleaning up (called at
        start-up; must never touch a live process's files)."""

    def close(self) -> None:
        """Release what the driver holds (its temporary folder, connections)."""

    def close_at_signal(self) -> None:
        """What ``close`` must not leave behind when a signal ends the process at once (taking
        no lock: it runs in a signal handler). By default nothing."""


class ComputeBackend(ABC):
    """Array module and hot kernels for the engine (group ``ollamakit.compute``)."""

    name: str = ""
    # True for a backend that runs whole steps as graphs of its own (``ggml``): the engine then
    # builds graphs for it instead of writing against ``xp``.
    runs_graphs: bool = False

    def __init__(self, kernel: Kernel | None = None):
        self.kernel = kernel

    @classmethod
    def available(cls) -> bool:
        """Whether this machine can run the backend (``auto`` picks the first that can)."""
        return True

    @property
    @abstractmethod
    def xp(self) -> Any:
        """The array module (numpy, cupy, ...)."""

    def asarray(self, array):
        return self.xp.asarray(array)

    def to_numpy(self, array):
        import numpy

        return numpy.asarray(array)


class Quantizer(ABC):
    """Turns an F32/F16/BF16 GGUF into a quantized one (group ``ollamakit.quantizer``).

    The entry point name is the type the user asks for (``q4_K_M``), matched case-insensitively.
    """

    name: str = ""

    def __init__(self, kernel: Kernel | None = None):
        self.kernel = kernel

    @abstractmethod
    def quantize(self, source: Path, destination: Path, progress=None) -> None:
        """Write the quantized GGUF to ``destination``; ``progress(done, total)`` per tensor."""


class Transport(ABC):
    """Serves the WSGI app (group ``ollamakit.transport``)."""

    def __init__(self, kernel: Kernel):
        self.kernel = kernel

    @abstractmethod
    def serve(self, app, host: str, port: int) -> None:
        """Serve ``app`` until stopped. An address it cannot listen on raises ``ListenError``,
        before ``listening`` is called."""

    def listening(self, host: str, port: int) -> None:
        """Say where the server listens, once it does: before the bind, a busy port would be
        announced as listening."""
        settings = self.kernel.settings
        print(f"ollamakit listening on {host}:{port} (models in {settings.models_dir})", file=sys.stderr, flush=True)


class ModelSource(ABC):
    """What a create request's input turned into: base layers for the new model.

    Returned by the ``resolve_model_source`` hook; the first plugin that recognises the input
    (a GGUF file, a safetensors folder, a parent model name) wins.
    """

    @abstractmethod
    def build(self, ctx) -> Iterable[dict]:
        """Add base layers to ``ctx`` (an ``ollamakit.create.CreateContext``), yielding
        progress objects (``{"status": ...}``) as it goes."""
