"""What a model file says about itself, read without loading it: the ``ModelHeader`` contract
every model format's reader provides (hook ``read_model_header``), for create (config, checks,
template detection), ``/api/show`` and the engines' ``check_model``.

Nothing here knows a file format: the GGUF plugin answers the hook for GGUF files, and a
plugin for another format would answer it for its own.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable

from .errors import InvalidModelFile

if TYPE_CHECKING:
    from .kernel import Kernel


class TensorHeader(Protocol):
    """One tensor as a header lists it."""

    name: str
    shape: tuple[int, ...]  # GGML order: the contiguous row length first
    type_name: str  # "F16", "Q4_K", ...


@runtime_checkable
class ModelHeader(Protocol):
    """The facts of a model file. Headers are read once and kept (blobs never change), so
    they hold no open file."""

    format: str  # "gguf": the config's model_format
    architecture: str  # "llama", "bert", ...; "" when the file names none
    parameter_count: int
    file_type: str  # as Ollama names it: "Q4_K_M", "F16", ...; "unknown" when unnamed
    metadata: Mapping[str, Any]  # plain values, arrays as lists
    float32_keys: Collection[str]  # keys whose values are single-precision (shown with its digits)
    chat_template: str | None  # the file's own (Jinja) chat template
    tensors: Sequence[TensorHeader]


def read_header(kernel: Kernel, path: Path, label: str = "") -> ModelHeader | None:
    """The header of the model file at ``path``, or None when no installed plugin reads its
    format. A file of a known format that is damaged raises ``InvalidModelFile`` naming
    ``label``."""
    try:
        return kernel.hook.read_model_header(kernel=kernel, path=Path(path))
    except InvalidModelFile as exc:
        raise InvalidModelFile(f"{label}: {exc.message}" if label else exc.message) from None


def read_header_from(
    kernel: Kernel, file: BinaryIO, size: int, label: str = ""
) -> ModelHeader | None:
    """As ``read_header``, from an open file positioned at its start, reading only the header
    (hook ``read_model_header_from``); None also when no plugin reads its format that way."""
    try:
        return kernel.hook.read_model_header_from(kernel=kernel, file=file, size=size)
    except InvalidModelFile as exc:
        raise InvalidModelFile(f"{label}: {exc.message}" if label else exc.message) from None


def require_header(kernel: Kernel, path: Path, label: str) -> ModelHeader:
    """The header of a file that must be a model (a conversion's or a quantizer's output)."""
    header = read_header(kernel, path, label)
    if header is None:
        raise InvalidModelFile(f"{label} is in no format an installed plugin reads")
    return header


def format_parameter_size(n: int) -> str:
    """Ollama's human-readable parameter count: '134.52M', '3.2B', '7B', '500K'."""
    if n >= 1_000_000_000:
        number = n / 1_000_000_000
        return f"{number:.0f}B" if number == int(number) else f"{number:.1f}B"
    if n >= 1_000_000:
        number = n / 1_000_000
        return f"{number:.0f}M" if number == int(number) else f"{number:.2f}M"
    if n >= 1_000:
        return f"{n / 1_000:.0f}K"
    return str(n)
