"""``ollamakit create NAME --experimental``: Ollama's client-side create of a model from a
Hugging Face safetensors folder (``cmd/cmd.go`` ``CreateHandler``, ``x/create/client``).

As in Ollama, this side does the work and writes the model straight into the local model store
(``OLLAMA_MODELS``), without the server's create endpoint, so it is refused unless
``OLLAMA_HOST`` is this machine. The Modelfile is read as Ollama's experimental path reads it:
``FROM .`` when there is none, ``FROM`` and ``DRAFT`` folders found beside the Modelfile, ADAPTER
and MESSAGE skipped, one LICENSE (the last), ``REQUIRES`` no older than 0.19.0 (what the model
then requires when it says nothing), and the parameters an MLX model has no use for skipped.
``--quantize`` takes Ollama's names for it (``int4``, ``int8`` and their aliases).

The folder is converted by the kernel's create pipeline (``ollamakit.creation``), through the
model sources the installed plugins register, into the GGUF that ollamakit's engines run: where
Ollama stores each tensor as a safetensors blob for its MLX engine, the model here has the one
GGUF layer a server-side create from the same folder would give it.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

import click

from ollamakit.cli.address import server_url

from .files import create_plan
from .modelfile import Instruction, Modelfile, ModelfileError, parse, requires_version

MIN_REQUIRES = "0.19.0"  # what Ollama's safetensors models require, at the least
# Parameters Ollama's experimental create leaves out of the model.
IGNORED_PARAMETERS = (
    "penalize_newline low_vram f16_kv logits_all vocab_only use_mlock mirostat mirostat_tau "
    "mirostat_eta"
).split()
# Ollama's quantize names (x/quant Canonical) and the GGML types that do the same here: int4 is
# 4-bit with a scale and a minimum per group (K-quants: the usual 4-bit mix), int8 8-bit.
QUANTIZE_ALIASES = {"INT4": "int4", "FP4": "int4", "Q4": "int4", "INT8": "int8", "FP8": "int8"}
QUANTIZE_ALIASES.update(Q8="int8", NVFP4="nvfp4", MXFP4="mxfp4", MXFP8="mxfp8")
GGML_TYPES = {"int4": "q4_K_M", "int8": "q8_0"}
SUPPORTED = "int4, int8, nvfp4, mxfp4, mxfp8"


def canonical_quantize(value: str) -> str:
    return QUANTIZE_ALIASES.get(value.strip().upper(), "")


def is_local_server(url: str) -> bool:
    """Ollama's ``isLocalhost``: ``localhost``, a loopback or an unspecified address."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def is_safetensors_dir(path: Path) -> bool:
    """A ``config.json`` and at least one ``*.safetensors`` file."""
    try:
        return (path / "config.json").exists() and any(
            entry.name.endswith(".safetensors") for entry in os.scandir(path)
        )
    except OSError:
        return False


def _beside(ref: str, modelfile: Path | None) -> Path | None:
    """A relative folder as found next to the Modelfile, if it is a safetensors folder there."""
    if modelfile is None or Path(ref).is_absolute():
        return None
    candidate = modelfile.parent / ref
    return candidate if is_safetensors_dir(candidate) else None


def read_experimental_modelfile(path: str | None) -> tuple[str, Path | None]:
    """The Modelfile's text and path; ``FROM .`` when none is named or found (Ollama takes a
    named one that does not exist the same way)."""
    file = Path(path) if path else Path("Modelfile")
    if not file.is_file():
        return "FROM .\n", None
    try:
        return file.read_text(encoding="utf-8"), file.resolve()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"failed to parse Modelfile: {exc}") from None


def experimental_request(
    text: str, modelfile: Path | None
) -> tuple[Path, Path | None, Modelfile, str]:
    """The model folder, the draft folder, the Modelfile as Ollama's experimental path reads it
    (folders resolved, what it skips left out) and the version the model requires."""
    try:
        parsed = parse(text)
    except ModelfileError as exc:
        raise click.ClickException(f"failed to parse Modelfile: {exc}") from None
    kept: list[Instruction] = []
    model_ref, draft_ref, requires = ".", "", MIN_REQUIRES
    for instruction in parsed:
        keyword = instruction.keyword
        if keyword == "from":
            model_ref = instruction.value
        elif keyword == "draft":
            draft_ref = instruction.value
        elif keyword == "requires":
            try:
                version = requires_version(instruction.value)
            except ModelfileError as exc:
                raise click.ClickException(exc.message) from None
            if _version_key(version) < _version_key(MIN_REQUIRES):
                raise click.ClickException(
                    f"requires {version} is below the minimum supported version "
                    f"{MIN_REQUIRES} for safetensors models"
                )
            requires = version
        elif keyword == "license":
            kept = [i for i in kept if i.keyword != "license"] + [instruction]
        elif keyword == "parameter" and instruction.name in IGNORED_PARAMETERS:
            continue
        elif keyword not in ("adapter", "message"):
            kept.append(instruction)
    model_dir = _beside(model_ref, modelfile) or Path(model_ref)
    draft_dir = None
    if draft_ref:
        if Path(draft_ref).is_absolute():
            if not is_safetensors_dir(Path(draft_ref)):
                raise click.ClickException(
                    f"draft {draft_ref} is not a supported safetensors model directory"
                )
            draft_dir = Path(draft_ref)
        else:
            draft_dir = _beside(draft_ref, modelfile)
            if draft_dir is None:
                raise click.ClickException(
                    f"DRAFT model references are not supported with --experimental yet: {draft_ref}"
                )
    return model_dir, draft_dir, Modelfile(kept), requires


def _version_key(version: str) -> tuple[int, ...]:
    core = version.split("-", 1)[0].split("+", 1)[0]
    return tuple(int(part) for part in core.split("."))


def create_experimental(pm, name: str, modelfile: str | None, quantize, draft_quantize) -> None:
    from ollamakit.config import Settings

    if not is_local_server(server_url()):
        raise click.ClickException("remote safetensor model creation not yet supported")
    text, path = read_experimental_modelfile(modelfile)
    model_dir, draft_dir, kept, requires = experimental_request(text, path)
    if draft_quantize and draft_dir is None:
        raise click.ClickException("--draft-quantize requires a DRAFT model")
    for flag, value in (("--quantize", quantize), ("--draft-quantize", draft_quantize)):
        if value and not canonical_quantize(value):
            raise click.ClickException(
                f'unsupported {flag} "{value}": supported types are {SUPPORTED}'
            )
        if value and canonical_quantize(value) not in GGML_TYPES:
            raise click.ClickException(
                f"{flag} {canonical_quantize(value)} is not available: ollamakit's engines run "
                f"GGML types, which int4 and int8 are made as"
            )
    if not is_safetensors_dir(model_dir):
        raise click.ClickException(
            f"{model_dir} is not a supported safetensors model directory "
            "(needs config.json + *.safetensors)"
        )
    instructions = [Instruction("from", str(model_dir.resolve()))]
    if draft_dir is not None:
        instructions.append(Instruction("draft", str(draft_dir.resolve())))
    try:
        plan = create_plan(Modelfile(instructions + kept.instructions), Path.cwd())
    except ModelfileError as exc:
        raise click.ClickException(str(exc)) from None
    request = {"model": name, **plan.request, "requires": requires}
    if quantize:
        request["quantize"] = GGML_TYPES[canonical_quantize(quantize)]
    if draft_quantize:
        request["draft_quantize"] = GGML_TYPES[canonical_quantize(draft_quantize)]
    from ollamakit.kernel import Kernel

    kernel = Kernel(Settings.from_env(), pm)
    try:
        _create_in_store(kernel, plan.uploads, request)
    finally:
        kernel.close()
    click.echo(f"Created safetensors model '{name}'")


def _create_in_store(kernel, uploads, request: dict) -> None:
    """The files as blobs of the local store (each hashed again as it is copied in), then the
    kernel's create pipeline over them, its progress shown as the server's would be."""
    from ollamakit.create import CreateRequest
    from ollamakit.creation import create_model
    from ollamakit.errors import OllamaError

    from .create import show_create_progress
    from .progress import Progress

    progress = Progress()
    try:
        store = kernel.store
        for file in uploads:
            if store.has_blob(file.digest):
                progress.status(f"using existing blob {file.digest}")
                continue
            bar = progress.bar(file.digest, f"copying file {file.digest}", file.size)
            store.write_blob(file.digest, _chunks(file.path, bar.update, file.size), file.size)
            bar.finish()
        for message in create_model(kernel, CreateRequest.from_body(request)):
            show_create_progress(progress, message)
    except OllamaError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        progress.close()


def _chunks(path: Path, update, total: int, size: int = 1 << 20):
    done = 0
    with open(path, "rb") as fh:
        while block := fh.read(size):
            done += len(block)
            update(done, total)
            yield block
