"""Checks for a store that a killed process wrote to, for crash tests (ours and plugin authors'):
what it left that nobody owns, and whether every model it lists is whole and answers.

Written for the ``fs`` driver's layout (``blobs/``, ``manifests/``, per-process temporary folders
``blobs/sha256-tmp-*`` locked by their living owner).
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from .. import manifest as mf

# What may stay in blobs/ besides blobs: a pull's resumable state, which the next pull of the
# same digest picks up (Ollama's layout), and the lock a downloader takes on it.
_KEPT = re.compile(r"^sha256-[0-9a-f]{64}(-partial(-\d+|\.lock)?)?\Z")


def dead_folders(models_dir: Path) -> list[Path]:
    """Per-process temporary folders whose owner is gone (nobody holds their lock)."""
    dead = []
    for path in (Path(models_dir) / "blobs").glob("sha256-tmp-*"):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            dead.append(path)
        except OSError:
            pass  # held by a live process
        finally:
            os.close(fd)  # closing drops a lock taken here
    return dead


def stray_files(models_dir: Path) -> list[Path]:
    """Files that are neither blobs, manifests, a pull's resumable state, nor inside a live
    process's temporary folder."""
    models = Path(models_dir)
    live = {p for p in (models / "blobs").glob("sha256-tmp-*")} - set(dead_folders(models))
    stray = []
    for path in models.rglob("*"):
        if not path.is_file() or any(folder in path.parents for folder in live):
            continue
        relative = path.relative_to(models)
        if relative.parts[0] == "blobs" and len(relative.parts) == 2 and _KEPT.match(path.name):
            continue
        if (
            relative.parts[0] == "manifests"
            and len(relative.parts) == 5
            and not path.name.startswith(".")
        ):
            continue
        stray.append(path)
    return stray


def check_manifests(models_dir: Path) -> int:
    """Every manifest parses and every blob it names is present; returns how many there are."""
    models = Path(models_dir)
    count = 0
    for path in (models / "manifests").glob("*/*/*/*"):
        manifest = mf.Manifest.parse(path.read_bytes())
        for digest in manifest.digests():
            assert (models / "blobs" / digest.replace(":", "-")).is_file(), (
                f"{path} names missing blob {digest}"
            )
        count += 1
    return count


def check_models_answer(http, generate: bool = True) -> list[str]:
    """Every model ``/api/tags`` lists shows, and generates a token (``http``: an httpx client
    on the server); returns their names."""
    names = [m["name"] for m in http.get("/api/tags").raise_for_status().json()["models"]]
    for name in names:
        assert http.post("/api/show", json={"model": name}).status_code == 200, name
        if generate:
            reply = http.post(
                "/api/generate",
                json={
                    "model": name,
                    "prompt": "a",
                    "stream": False,
                    "options": {"num_predict": 1, "temperature": 0},
                },
            )
            assert reply.status_code == 200 and reply.json()["done"], (name, reply.text)
    return names
