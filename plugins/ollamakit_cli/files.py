"""From a parsed Modelfile to an ``/api/create`` request: resolve the paths it names, find the
model files in a folder, hash them, and name them the way the server expects (spec 5.1)."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .modelfile import Modelfile, ModelfileError, parameters, requires_version

HASH_CHUNK = 8 << 20

# The weights in a folder, by preference: the first pattern that matches wins.
WEIGHT_PATTERNS = (
    "model*.safetensors",
    "consolidated*.safetensors",
    "pytorch_model*.bin",
    "consolidated*.pth",
    "*.gguf",
    "*.bin",
)
# An adapter folder's weights (with its adapter_config.json), by preference: PEFT's, then mlx-lm's.
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin", "adapters.safetensors")
# Side files that travel with the weights (configs and tokenizers).
SIDE_PATTERNS = ("*.json", "*/*.json", "chat_template.jinja")


@dataclass(frozen=True)
class LocalFile:
    path: Path
    digest: str
    size: int


@dataclass
class CreatePlan:
    """The create request (without ``model``) and the local files whose blobs it needs."""

    request: dict = field(default_factory=dict)
    uploads: list[LocalFile] = field(default_factory=list)


def expand_path(value: str, base_dir: Path) -> Path:
    """Absolute, ``~``/``~user``-relative, or relative to the Modelfile's folder."""
    path = Path(value)
    if value.startswith("~"):
        try:
            path = path.expanduser()
        except RuntimeError:  # an unknown ~user
            raise ModelfileError(f"cannot find the home folder in {value!r}") from None
    elif not path.is_absolute():
        path = base_dir / path
    return Path(os.path.abspath(path))


class NotRegularFile(ModelfileError):
    pass


def open_regular(path: Path):
    """``path`` opened for reading, if it is a regular file. A device never ends (``/dev/zero``)
    and a FIFO may never begin: opened without blocking and checked on the open file, so
    neither can hang the command and a swap after a check cannot slip through."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(
                f"{path} is not a regular file (a device, a FIFO or a socket cannot be read as one)"
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def sha256_file(path: Path) -> tuple[str, int]:
    """The file's digest and size, read once."""
    digest, size = hashlib.sha256(), 0
    with open_regular(path) as fh:
        while block := fh.read(HASH_CHUNK):
            digest.update(block)
            size += len(block)
    return "sha256:" + digest.hexdigest(), size


def model_files(folder: Path) -> list[Path]:
    """The files that make up the model in ``folder``: the weights, then configs/tokenizers."""
    weights: list[Path] = []
    for pattern in WEIGHT_PATTERNS:
        weights = sorted(p for p in folder.glob(pattern) if p.is_file())
        if weights:
            if pattern == "model*.safetensors":
                weights += sorted(p for p in folder.glob("*/model*.safetensors") if p.is_file())
            break
    if not weights:
        raise ModelfileError(f"no Modelfile or safetensors files found in {folder}")
    sides = [p for pattern in SIDE_PATTERNS for p in sorted(folder.glob(pattern)) if p.is_file()]
    tokenizer = [p for p in (folder / "tokenizer.model",) if p.is_file()] or sorted(
        folder.glob("*/tokenizer.model")
    )
    found, seen = [], set()
    for path in weights + sides + tokenizer:
        real = path.resolve()
        if not real.is_relative_to(folder.resolve()):
            raise ModelfileError(
                f"insecure path: {path.relative_to(folder)} links outside {folder}"
            )
        if real not in seen:
            seen.add(real)
            found.append(real)
    return found


def adapter_files(folder: Path) -> list[Path] | None:
    """A PEFT adapter folder's two files (``adapter_config.json`` and the weights), or None
    when ``folder`` is not one: its weights' name matches none of a model's patterns."""
    config = folder / "adapter_config.json"
    weights = [folder / name for name in ADAPTER_WEIGHTS if (folder / name).is_file()][:1]
    if not config.is_file() or not weights:
        return None
    found = [config.resolve(), weights[0].resolve()]
    for path, real in zip((config, weights[0]), found):
        if not real.is_relative_to(folder.resolve()):
            raise ModelfileError(f"insecure path: {path.name} links outside {folder}")
    return found


def _files_at(path: Path, adapter: bool = False) -> list[Path]:
    if path.is_dir():
        return (adapter and adapter_files(path)) or model_files(path)
    return [path.resolve()]


def request_file_names(paths: list[Path]) -> dict[Path, str]:
    """The names the server sees: a lone file's base name, several files' paths relative to
    their common folder (so ``1_Pooling/config.json`` keeps its folder)."""
    if len(paths) < 2:
        return {p: p.name for p in paths}
    root = Path(os.path.commonpath([str(p.parent) for p in paths]))
    return {p: p.relative_to(root).as_posix() for p in paths}


class _FileSet:
    """Files for one request field (``files``, ``adapters``, ``draft_files``), hashed once."""

    def __init__(self, hashes: dict[Path, LocalFile], adapter: bool = False):
        self.paths: list[Path] = []
        self.hashes = hashes
        self.adapter = adapter

    def add(self, path: Path) -> None:
        for file in _files_at(path, self.adapter):
            if file not in self.paths:
                self.paths.append(file)
            if file not in self.hashes:
                self.hashes[file] = LocalFile(file, *sha256_file(file))

    def mapping(self) -> dict[str, str]:
        names = request_file_names(self.paths)
        return {names[p]: self.hashes[p].digest for p in self.paths}


def _refuse_same_path(path: Path, others: list[Path]) -> None:
    if any(path.resolve() == other.resolve() for other in others):
        raise ModelfileError(f"DRAFT must not reference the same local path as FROM: {path}")


def create_plan(modelfile: Modelfile, base_dir: Path, warn=None) -> CreatePlan:
    """Turn ``modelfile`` into a create request. ``base_dir`` is the Modelfile's folder."""
    plan, hashes = CreatePlan(), {}
    files, adapters, drafts = _FileSet(hashes), _FileSet(hashes, adapter=True), _FileSet(hashes)
    model_paths: list[Path] = []
    draft_paths: list[Path] = []
    request = plan.request
    for instruction in modelfile:
        keyword, value = instruction.keyword, instruction.value
        try:
            if keyword == "from":
                path = expand_path(value, base_dir)
                if not path.exists():
                    request["from"] = value  # a model name
                    continue
                _refuse_same_path(path, draft_paths)
                model_paths.append(path)
                files.add(path)
            elif keyword in ("adapter", "draft"):
                path = expand_path(value, base_dir)
                if not path.exists():
                    raise ModelfileError(f"{keyword.upper()} {value}: no such file or directory")
                if keyword == "draft":
                    _refuse_same_path(path, model_paths)
                    draft_paths.append(path)
                (adapters if keyword == "adapter" else drafts).add(path)
            elif keyword in ("template", "system", "renderer", "parser"):
                request[keyword] = value
            elif keyword == "requires":
                request["requires"] = requires_version(value)
            elif keyword == "license":
                request.setdefault("license", []).append(value)
            elif keyword == "message":
                request.setdefault("messages", []).append(
                    {"role": instruction.name, "content": value}
                )
        except NotRegularFile:
            raise ModelfileError(
                f"{keyword.upper()} {value}: not a regular file", instruction.line
            ) from None
        except ModelfileError as exc:
            raise ModelfileError(exc.message, exc.line or instruction.line) from None
        except OSError as exc:
            raise ModelfileError(
                f"{keyword.upper()} {value}: {exc.strerror or exc}", instruction.line
            ) from None
    params = parameters(modelfile, warn)
    if params:
        request["parameters"] = params
    for key, file_set in (("files", files), ("adapters", adapters), ("draft_files", drafts)):
        if file_set.paths:
            request[key] = file_set.mapping()
    plan.uploads = list(hashes.values())
    return plan
