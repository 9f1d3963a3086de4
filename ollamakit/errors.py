"""Errors that carry an HTTP status, so every layer can fail in the API's own words."""


class OllamaError(Exception):
    """An error the API reports as ``{"error": message}`` with ``status``."""

    status = 500

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


# What a reply says of an error nobody anticipated: its text may hold paths or internals, so
# it goes to the server log and the client learns only that the fault is the server's.
INTERNAL_ERROR = "internal server error (the server log has the details)"


class BadRequest(OllamaError):
    status = 400


class NotFound(OllamaError):
    status = 404


class TooLarge(OllamaError):
    """A request or one of its parts past a documented limit (docs/configuration.md)."""

    status = 413


class StoreNotWritable(OllamaError):
    """The model store cannot take a write: a read-only or full disk, no permission. Said in
    the system's own words, never with the file's path (the server log has that)."""

    status = 507  # Insufficient Storage: the server cannot store what the request needs


class Busy(OllamaError):
    status = 503


class Cancelled(OllamaError):
    status = 499


class InvalidDigest(BadRequest):
    def __init__(self, message: str = "invalid digest format"):
        super().__init__(message)


class DigestMismatch(BadRequest):
    def __init__(self, expected: str, got: str):
        super().__init__(f'digest mismatch, expected "{expected}", got "{got}"')
        self.expected, self.got = expected, got


class InvalidModelFile(BadRequest):
    """A model file (GGUF, safetensors) that fails validation: always a 400, never a traceback."""


class ListenError(OllamaError):
    """The server cannot listen on its address: the port is taken, or the address is not this
    machine's. ``serve`` prints it as one line and exits non-zero, as Ollama does."""
