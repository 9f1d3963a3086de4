"""The kernel's contracts: one abstract base per driver kind (a driver is a class registered
under its kind's entry point group, see ``drivers.py``, and constructed with the running
``Kernel``), ``ModelSource``, and the inference contract between the inference service
(``ollamakit.inference``), a scheduler (hook ``make_scheduler``) and an engine (hook
``load_model``): ``Tokenizer``, ``Vision``, ``Runner``, ``Sequence``, ``Lease``, ``Scheduler``.

The inference contract is structural (``typing.Protocol``): an implementation need not inherit
from these classes. One that does inherits the defaults written here (a runner without vision,
without a cache of its own to count, with nothing to close)."""

from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from .blobs import BlobWriter, FileBlobWriter
from .errors import BadRequest

if TYPE_CHECKING:
    from .events import Chunk, Done
    from .images import EncodedImage
    from .headers import ModelHeader
    from .kernel import Kernel
    from .options import Options
    from .store import LocalModel


class Storage(ABC):
    """Where blobs and manifests live (group ``ollamakit.storage``).

    A driver only moves bytes: digests are validated, hashed and garbage-collected by the
    kernel's ``ModelStore``, so every backend behaves alike. Writes must be atomic: a reader
    sees the old state or the new one, never a partial file.
    """

    #: True when ``blob_writer`` sends the bytes on as they come (a remote store): a transport
    #: that receives an upload into a local file then feeds the blob's writer while it
    #: receives, instead of handing the finished file to ``put_blob``.
    streams_uploads: bool = False

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

    def blob_mtime(self, digest: str) -> float | None:
        """When the blob was stored (seconds since the epoch), or None when absent: garbage
        collection spares unreferenced blobs younger than its grace period. A remote backend
        answers from its own metadata instead of fetching the blob."""
        try:
            return self.blob_path(digest).stat().st_mtime
        except FileNotFoundError:
            return None

    @abstractmethod
    def put_blob(self, digest: str, source: Path) -> bool:
        """Move the already-verified local file ``source`` in as ``digest``, atomically.

        Returns True when the blob was new. ``source`` is consumed either way.
        """

    def blob_writer(self, digest: str, size: int | None = None) -> BlobWriter:
        """A writer for blob ``digest`` (``ollamakit.blobs``): chunks in, hashed as they go,
        committed only if they hash to ``digest``; aborted, it leaves nothing. ``size``: the
        length when known in advance (a hint). By default a scratch file for ``put_blob``."""
        return FileBlobWriter(self, digest)

    @abstractmethod
    def delete_blob(self, digest: str) -> None: ...

    @abstractmethod
    def list_blobs(self) -> Iterator[str]: ...

    # -- manifests, addressed by the four name parts (host, namespace, model, tag)
    @abstractmethod
    def read_manifest(self, parts: tuple[str, str, str, str]) -> bytes | None: ...

    @abstractmethod
    def write_manifest(
        self, parts: tuple[str, str, str, str], data: bytes
    ) -> tuple[str, str, str, str] | None:
        """Create or replace, atomically. A driver shared by several processes may write a new
        name under another spelling of it (another case, made at the same moment elsewhere:
        names match case-insensitively) and then returns the parts it used; None means
        ``parts``."""

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


class LocalStorage(Storage):
    """A ``Storage`` whose blobs are files on this machine at ``blob_path``: presence, size,
    reading and the atomic commit all follow from that path, so a local driver says only
    where a blob lives (and how manifests are kept). A remote driver subclasses ``Storage``."""

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def blob_size(self, digest: str) -> int | None:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def open_blob(self, digest: str) -> BinaryIO:
        return open(self.blob_path(digest), "rb")

    def put_blob(self, digest: str, source: Path) -> bool:
        # A hard link creates the name only if it is absent, so of two uploads of the same
        # digest racing here exactly one reports the blob as new, and the original is never
        # touched; a rename would let both win.
        target = self.blob_path(digest)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, target)
            return True
        except FileExistsError:
            return False
        finally:
            Path(source).unlink(missing_ok=True)

    def delete_blob(self, digest: str) -> None:
        self.blob_path(digest).unlink(missing_ok=True)


class ComputeBackend(ABC):
    """Array module and hot kernels for the engine (group ``ollamakit.compute``)."""

    name: str = ""
    # True for a backend that runs whole steps as graphs of its own (``ggml``): the engine then
    # builds graphs for it instead of writing against ``xp``.
    runs_graphs: bool = False
    # The CPU threads a model computes with when its ``num_thread`` option is 0; None for a
    # backend whose work is not spread over CPU threads (an accelerator).
    default_threads: int | None = None

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

    def accelerator_memory(self) -> int:
        """Total bytes of accelerator (GPU) memory the backend computes in; 0 for one that
        computes in system memory. The default context length is chosen from it, as Ollama
        chooses it from its GPUs' memory (``ollamakit.config.default_context_length``)."""
        return 0


class Quantizer(ABC):
    """Turns an F32/F16/BF16 GGUF into a quantized one (group ``ollamakit.quantizer``).

    The entry point name is the type the user asks for (``q4_K_M``), matched case-insensitively.
    """

    name: str = ""
    # The types a model may be quantized from, as Ollama allows: the one place this is said.
    source_types: tuple[str, ...] = ("F16", "BF16", "F32")

    def __init__(self, kernel: Kernel | None = None):
        self.kernel = kernel

    @abstractmethod
    def quantize(self, source: Path, destination: Path, progress=None) -> None:
        """Write the quantized GGUF to ``destination``; ``progress(done, total)`` per tensor."""

    def source_type(self, header: ModelHeader) -> str | None:
        """The type ``header``'s model would be quantized from (its progress line names it),
        or None when the model has this quantizer's type already; create asks before it
        quantizes, and a type this quantizer cannot read is refused here."""
        have = header.file_type
        if have.lower() == self.name.lower():
            return None
        self.check_source(have)
        return have

    @classmethod
    def check_source(cls, type_name: str) -> None:
        """Refuse a file's or a tensor's type unless it is one of ``source_types``."""
        if type_name not in cls.source_types:
            *rest, last = cls.source_types
            raise BadRequest(
                f"quantization is only supported for {', '.join(rest)} and {last} models"
            )


class Renderer(ABC):
    """Builds a model's prompt in code instead of a template (group ``ollamakit.renderer``).

    The entry point name is the ``RENDERER`` a Modelfile names (``qwen3-coder``), matched
    exactly. Messages and tools are the API's JSON dicts; ``think`` is the request's value
    (None, a bool, or ``"low"``/``"medium"``/``"high"``/``"max"``). A renderer sees the whole
    conversation, system messages included, and handles images itself.
    """

    def __init__(self, kernel: Kernel | None = None):
        self.kernel = kernel

    @abstractmethod
    def render(self, messages: list[dict], tools: list[dict] | None, think) -> str:
        """The prompt text, ready to tokenize (special tokens spelled out). A conversation the
        format cannot hold raises ``ValueError``: the request is a 400 with its message."""


class Parser(ABC):
    """Reads a model's streamed output into content, thinking and tool calls (group
    ``ollamakit.parser``); one instance per request. The entry point name is the ``PARSER`` a
    Modelfile names (``harmony``), matched exactly.

    ``init`` runs before the prompt is rendered; ``add`` then gets each piece of output text
    and ``done=True`` with the last one, and returns what is settled so far as a
    ``Parsed(content, thinking, tool_calls)`` (``ollamakit.lib.structured``). A tool call is
    ``{"function": {"index": n, "name": ..., "arguments": {...}}}``; the server gives it its
    ``id``. Output the parser cannot read raises ``ValueError``: the stream ends with an error.
    """

    #: whether the model reads tools / thinks through this parser (its capabilities)
    has_tool_support: bool = False
    has_thinking_support: bool = False
    #: tokens that must reach the parser as text, although they are control tokens
    preserved_tokens: tuple[str, ...] = ()
    #: text after which the answer starts, when a ``format`` holds only the answer of
    #: ``/api/generate`` (None: from the first token, or no thinking; a chat asks again instead)
    answer_after: str | None = None

    def __init__(self, kernel: Kernel | None = None):
        self.kernel = kernel

    def init(self, tools: list[dict] | None, last_message: dict | None, think) -> list[dict] | None:
        """Prepare for a request; returns the tools the renderer or template should see (a
        parser may rename them, as harmony does). ``last_message``: the conversation's last
        message (an assistant one is continued)."""
        return tools

    @abstractmethod
    def add(self, text: str, done: bool):
        """What this piece of output settles: a ``Parsed``."""


class Transport(ABC):
    """Serves the WSGI app (group ``ollamakit.transport``)."""

    def __init__(self, kernel: Kernel):
        self.kernel = kernel

    @abstractmethod
    def serve(self, app, host: str, port: int) -> None:
        """Serve ``app`` until stopped. An address it cannot listen on raises ``ListenError``,
        before ``listening`` is called."""

    def serve_in_thread(self, app, host: str = "127.0.0.1", port: int = 0, threads: int = 16):
        """Serve ``app`` from a thread of this process (for tests, and programs that embed the
        server): a context manager whose ``url`` says where it listens, stopping on exit. Port
        0 takes a free one. A transport that cannot raises ``NotImplementedError``."""
        raise NotImplementedError(
            f"the {type(self).__name__} transport serves only in the foreground"
        )

    def listening(self, host: str, port: int) -> None:
        """Say where the server listens, once it does: before the bind, a busy port would be
        announced as listening."""
        settings = self.kernel.settings
        print(
            f"ollamakit listening on {host}:{port} (models in {settings.models_dir})",
            file=sys.stderr,
            flush=True,
        )


class ModelSource(ABC):
    """What a create request's input turned into: base layers for the new model.

    Returned by the ``resolve_model_source`` hook; the first plugin that recognises the input
    (a GGUF file, a safetensors folder, a parent model name) wins.
    """

    @abstractmethod
    def build(self, ctx) -> Iterable[dict]:
        """Add base layers to ``ctx`` (an ``ollamakit.create.CreateContext``), yielding
        progress objects (``{"status": ...}``) as it goes."""


# -- the inference contract -------------------------------------------------------------------


class Cache(ABC):
    """One sequence's keys and values in a runner (``Runner.new_cache``): ``n_past`` tokens."""

    n_past: int

    @abstractmethod
    def truncate(self, n: int) -> int | None:
        """Forget every token from position ``n`` on."""

    def shift(self, keep: int, discard: int) -> bool:
        """Drop the ``discard`` tokens after the first ``keep`` in place, moving the rest down
        (a full context's shift). False when this cache cannot, and the caller then evaluates
        the kept tokens again."""
        return False

    def copy_prefix(self, source: Cache, n: int) -> bool:
        """Hold the first ``n`` tokens of ``source`` (another sequence's cache from the same
        runner) in place of what this cache held, without evaluating them. False, with nothing
        changed, when this cache cannot: the caller then evaluates them."""
        return False


class Tokenizer(Protocol):
    """Text to token ids and back, as the model's file defines them
    (``ollamakit.lib.tokenizers.Tokenizer`` is one)."""

    vocab_size: int
    eog_ids: frozenset[int]  # tokens that end generation (end of text, end of turn)
    bos_id: int | None
    eos_id: int | None
    sep_id: int | None  # an encoder's separator ([SEP]), kept when an input is cut to fit
    add_bos: bool  # whether ``encode`` puts ``bos_id`` first
    add_eos: bool  # whether ``encode`` appends ``eos_id``

    def encode(
        self, text: str, add_special: bool = True, parse_special: bool = True
    ) -> list[int]: ...

    def decode(self, ids, special: bool = False) -> str:
        """The text of ``ids``; control tokens (BOS, end of turn) are left out unless ``special``
        (then they read as the vocabulary spells them, as llama.cpp's detokenizer can)."""

    def token_to_piece(self, token_id: int, special: bool = False) -> bytes:
        """The bytes a token stands for (a piece of a UTF-8 character, perhaps); a control
        token's are empty unless ``special``."""

    def token_text(self, token_id: int) -> str:
        """A token's text as the vocabulary spells it (``<|im_end|>``), for Jinja templates."""


class Vision(Protocol):
    """A runner's eyes (``ollamakit.images`` describes the contract)."""

    begin: str  # the text before an image's rows in the prompt (may be empty)
    end: str  # and after them
    tokens_per_image: int  # the most rows one image takes

    def encode(self, data: bytes, should_stop=None) -> EncodedImage:
        """Decode and encode one image; a bad image is a ``BadRequest``, ``should_stop()``
        saying yes ends the work with ``Cancelled``."""


class Runner(Protocol):
    """A loaded model, as ``load_model`` returns it. The scheduler owns it: every call but the
    attributes comes from one thread at a time."""

    tokenizer: Tokenizer
    vocab_size: int  # rows of logits (may exceed the tokenizer's vocabulary)
    context_length: int  # the training context; 0 when unknown
    memory_bytes: int  # what it holds now (weights and live caches); 0 when unknown
    vram_bytes: int = 0  # of that, on an accelerator
    vision: Vision | None = None

    def new_cache(self, num_ctx: int) -> Cache:
        """A cache for one sequence of at most ``num_ctx`` tokens."""

    def forward(self, batch: list[tuple[Any, list[int]]], should_stop=None) -> list:
        """Evaluate each (cache, tokens) pair together; the logits after each one's last token."""

    def embed(self, batch: list[list[int]], token_types: list[list[int]] | None = None) -> list:
        """One raw vector per input (token ids). ``token_types``: each input's segment types (a
        query then a document), passed only to a model that reranks (its rank head's score is
        the vector's first value)."""

    def cache_bytes(self, num_ctx: int) -> int:
        """What one sequence's cache of ``num_ctx`` tokens will hold once filled (0: counted in
        ``memory_bytes`` as it grows)."""
        return 0

    def close(self) -> None:
        """Release what the model holds. Called once, after its last request."""
        return None


class Sequence(Protocol):
    """One prompt running on a leased model."""

    def events(self, gone=None) -> Generator[Chunk | Done, None, None]:
        """``Chunk``s, then one ``Done``; an engine error is raised. Closing the iterator early
        cancels the sequence; ``gone()`` saying the client left cancels it too and raises
        ``Cancelled``."""


class Lease(Protocol):
    """A request's hold on a loaded model (``Scheduler.acquire``): the model stays loaded, and
    its runner's attributes may be read, until ``release``."""

    runner: Runner
    tokenizer: Tokenizer
    options: Options
    num_ctx: int  # the context this request runs with

    def start(
        self,
        prompt: list[int],
        *,
        shift: bool = True,
        truncate: bool = True,
        logprobs: bool = False,
        top_logprobs: int = 0,
        constraint=None,
        preserved_tokens: frozenset[int] = frozenset(),
    ) -> Sequence:
        """Queue ``prompt`` (token ids; ``ImageToken``s among them) for generation.
        ``constraint`` (``ollamakit.lib.structured.Constraint``) masks each step's logits.
        ``preserved_tokens``: control tokens whose text the answer carries (an output parser
        reads them); other control tokens add no text. The service passes it only when a
        parser asks for some, so a scheduler written before it keeps working."""

    def release(self) -> None: ...


class Scheduler(Protocol):
    """Loads models and shares them among requests (hook ``make_scheduler``)."""

    def acquire(
        self, model: LocalModel, options: Options, keep_alive: float | None = None, gone=None
    ) -> Lease:
        """Load ``model`` if needed and hold it for one request. ``keep_alive``: seconds it
        stays loaded after its last request (None: as it was, the server's default for a new
        load; ``inf``: forever).
        Raises ``Busy`` when too many requests wait, ``Cancelled`` when ``gone()`` says the
        client left while it waited."""

    def unload(self, model: LocalModel) -> bool:
        """Unload ``model`` now, or once its requests finish; False when it was not loaded."""

    def ps(self) -> list[dict]:
        """The loaded models, as ``/api/ps`` lists them."""

    def queued(self) -> int:
        """Requests waiting now (for a model to load, for memory, or for a free slot), for the
        metrics; 0 from a scheduler that does not count them."""
        return 0

    def close(self) -> None: ...
