"""Writing other programs' config files for ``launch``: never half written, never clobbered.

A file is replaced through a temporary file in its own folder and a rename, after a copy of the
file it replaces is kept under ``~/.ollama/backup/<integration>/<name>.<unix time>`` (the five
newest per file), as Ollama's launcher keeps them. A JSON file that does not parse, or is not an
object, is an error rather than a fresh start: the user's other settings are in it.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

import click

MAX_CONFIG_BYTES = 16 << 20  # a settings file past this is not one we should rewrite
BACKUPS_KEPT = 5


class ConfigError(click.ClickException):
    pass


def backup_dir(home: Path) -> Path:
    return home / ".ollama" / "backup"


def read_bytes(path: Path) -> bytes | None:
    """The file's content, or None when there is none; bounded before it is read whole. Only a
    regular file is read: a FIFO is opened without waiting for a writer, then refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # a folder opens too, but fdopen refuses it
        os.close(fd)
        raise ConfigError(f"{path} is not a regular file")
    with os.fdopen(fd, "rb") as fh:
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES >> 20} MiB")
        return fh.read(MAX_CONFIG_BYTES + 1)


def read_text(path: Path) -> str | None:
    data = read_bytes(path)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None


def read_json_object(path: Path) -> dict[str, Any]:
    data = read_bytes(path)
    if data is None or not data.strip():
        return {}
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"failed to parse config: {exc}, at: {path}") from None
    except RecursionError:
        raise ConfigError(f"failed to parse config: nested too deeply, at: {path}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"failed to parse config: not a JSON object, at: {path}")
    return value


def json_text(value: dict[str, Any], indent: int | None = 2) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=False)


def read_yaml_object(path: Path) -> dict[str, Any]:
    import yaml  # only for the tools whose config is YAML (OMP, Hermes, DeepSeek Harness)

    data = read_bytes(path)
    if data is None or not data.strip():
        return {}
    try:
        value = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise ConfigError(f"failed to parse config: {exc}, at: {path}") from None
    except RecursionError:
        raise ConfigError(f"failed to parse config: nested too deeply, at: {path}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"failed to parse config: not a YAML mapping, at: {path}")
    return value


def yaml_text(value: Any, sort_keys: bool = True) -> str:
    """YAML as Go's yaml.v3 writes a map (keys sorted, blocks indented by four), or with the
    keys in their order, as it writes a document node it edited."""
    import yaml

    return yaml.safe_dump(
        value, sort_keys=sort_keys, indent=4, allow_unicode=True, default_flow_style=False
    )


def keep_backup(path: Path, data: bytes, mode: int, home: Path, integration: str) -> None:
    """``data`` (what ``path`` held, with its permissions ``mode``) as the backup of this
    second, written atomically. A second write of the file within the same second keeps the
    first backup: it holds the older content, the user's own, which ours would replace."""
    folder = backup_dir(home) / integration if integration else backup_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    backup = folder / f"{path.name}.{int(time.time())}"
    if not backup.exists():
        _write_atomically(backup, data, mode)
    stamped = []
    for entry in folder.glob(f"{path.name}.*"):
        stamp = entry.name[len(path.name) + 1 :]
        if stamp.isdigit():
            stamped.append((int(stamp), entry.name, entry))
    for _, _, old in sorted(stamped, reverse=True)[BACKUPS_KEPT:]:
        old.unlink(missing_ok=True)


def write_with_backup(
    path: Path, text: str, home: Path, integration: str = "", private: bool = False
) -> bool:
    """Replace ``path`` with ``text`` atomically; False when it already held exactly that. A
    symbolic link (a dotfile kept elsewhere) stays a link: the file it points to is replaced.
    ``private``: the folder only its owner's (0700), the file too (0600)."""
    data = text.encode("utf-8")
    existing = read_bytes(path)
    if existing == data:
        return False
    try:
        _replace(path, data, existing, home, integration, private)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return True


def _replace(
    path: Path, data: bytes, existing: bytes | None, home: Path, integration: str, private: bool
):
    mode = 0o644
    if existing is not None:
        mode = path.stat().st_mode & 0o777  # the user's permissions stay
        keep_backup(path, existing, mode, home, integration)  # under the link's name
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    if private:
        path.parent.chmod(0o700)
        mode = 0o600
    _write_atomically(path, data, mode)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """``data`` in ``path`` through a temporary file in its folder and a rename."""
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# -- ~/.ollama/config.json: the models each integration was last launched with (Ollama's file)


def launch_config_path(home: Path) -> Path:
    return home / ".ollama" / "config.json"


def saved_models(home: Path, integration: str) -> list[str]:
    try:
        config = read_json_object(launch_config_path(home))
    except ConfigError:
        return []  # an unreadable file only loses the preselection; saving reports it
    entry = (config.get("integrations") or {}).get(integration)
    models = entry.get("models") if isinstance(entry, dict) else None
    return [m for m in models if isinstance(m, str) and m] if isinstance(models, list) else []


def save_models(home: Path, integration: str, models: list[str], onboarded: bool = False) -> None:
    path = launch_config_path(home)
    config = read_json_object(path)
    integrations = config.get("integrations")
    if not isinstance(integrations, dict):
        integrations = {}
    entry = integrations.get(integration)
    entry = entry if isinstance(entry, dict) else {}
    entry["models"] = models  # its aliases and onboarding mark stay
    if onboarded:
        entry["onboarded"] = True
    integrations[integration] = entry
    config["integrations"] = integrations
    write_with_backup(path, json_text(config), home)


def last_choices(home: Path) -> tuple[str, str]:
    """The bare menu's last selection (``run`` or a tool) and the last model run."""
    try:
        config = read_json_object(launch_config_path(home))
    except ConfigError:
        return "", ""
    selection, model = config.get("last_selection"), config.get("last_model")
    return (
        selection if isinstance(selection, str) else "",
        model if isinstance(model, str) else "",
    )


def save_last_choice(home: Path, key: str, value: str) -> None:
    """``last_selection`` or ``last_model``, as Ollama's menu keeps them."""
    path = launch_config_path(home)
    config = read_json_object(path)
    config[key] = value
    config.setdefault("integrations", {})
    write_with_backup(path, json_text(config), home)
