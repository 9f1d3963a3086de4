"""ggml built for this machine's CPU, so its products are llama.cpp's on this machine, bit for bit.

The ``libggml-python`` wheel ships one CPU build (AVX2). llama.cpp built on a machine with
AVX-512 or VNNI uses other kernels, whose sums round differently, and greedy answers then part
wherever two tokens are close. So ``ollamakit build-ggml`` compiles ggml from source with
``GGML_NATIVE`` (every instruction set this CPU has), once, into the cache; ``lib.load`` prefers
that build whenever one exists for this CPU.

The source is ggml as vendored by llama-cpp-python ``SOURCE_VERSION``, taken from that package's
source distribution on PyPI: the same ggml as the llama.cpp that the tests and benchmarks compare
with. Nothing of it is kept but the compiled libraries.

Beside them go ``kernels*.c`` compiled for this CPU: ollamakit's own products for weight types
whose several-column products ggml computes one activation column at a time, or with work
repeated per column, each output ggml's bit for bit, and the float32 product, GELU and
attention of the BERT encoders (``lib.Library.kernels``).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SOURCE_PACKAGE = "llama-cpp-python"
SOURCE_VERSION = "0.3.36"
GGML_IN_SOURCE = "vendor/llama.cpp/ggml"
LIBRARIES = ("libggml-base.so", "libggml-cpu.so", "libggml.so")
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=ON",
    "-DGGML_NATIVE=ON",
    # llamafile's tiled products for prompts, which llama.cpp's own build turns on
    "-DGGML_LLAMAFILE=ON",
    "-DGGML_BUILD_TESTS=OFF",
    "-DGGML_BUILD_EXAMPLES=OFF",
    "-DCMAKE_INSTALL_RPATH=$ORIGIN",
    "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ollamakit" / "ggml"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def lacks_avx2() -> bool:
    """An x86 CPU without AVX2, which the prebuilt wheel's kernels need (others: unknown, so
    not refused here)."""
    flags = _cpu_flags()
    return platform.machine() in ("x86_64", "AMD64") and bool(flags) and "avx2" not in flags


def cpu_signature() -> str:
    """What a native build depends on: the machine, the CPU's instruction-set flags (a build for
    one CPU may use instructions another lacks, so each CPU kind gets its own folder) and the
    build's options."""
    flags = " ".join(sorted(_cpu_flags()))
    options = " ".join(CMAKE_OPTIONS)
    digest = hashlib.sha256(f"{platform.machine()} {flags} {options}".encode()).hexdigest()[:12]
    return f"{SOURCE_VERSION}-{platform.machine()}-{digest}"


# ollamakit's kernels: Q4_1 and Q5_1 (kernels.c), Q8_0 and Q5_0 (kernels_q0.c), Q6_K
# (kernels_q6_k.c), Q4_K as ggml repacks it (kernels_q4_k.c), and what they share (kernels.h)
KERNEL_SOURCES = tuple(
    Path(__file__).with_name(n)
    for n in ("kernels.c", "kernels_q0.c", "kernels_q6_k.c", "kernels_q4_k.c")
)
KERNEL_HEADER = Path(__file__).with_name("kernels.h")
KERNEL_FLAGS = ("-O3", "-march=native", "-shared", "-fPIC")


def kernels_name() -> str:
    """The file name of ollamakit's own kernels (``kernels*.c``) built for this CPU: named by the
    sources' digest, so a changed source is built again rather than an old build loaded."""
    digest = hashlib.sha256(" ".join(KERNEL_FLAGS).encode())
    for source in (*KERNEL_SOURCES, KERNEL_HEADER):
        digest.update(source.read_bytes())
    return f"libollamakit-kernels-{digest.hexdigest()[:12]}.so"


def build_kernels(folder: Path, log=print) -> Path:
    """Compile the kernels for this CPU into ``folder`` (beside ggml's libraries), unless done."""
    target = folder / kernels_name()
    if target.exists():
        return target
    compiler = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if compiler is None:
        raise BuildError("no C compiler (cc, gcc or clang) is installed")
    log("compiling ollamakit's kernels for this CPU")
    staging = folder / f".{target.name}.{os.getpid()}"
    sources = [str(source) for source in KERNEL_SOURCES]
    _run([compiler, *KERNEL_FLAGS, "-o", str(staging), *sources], "compiling the kernels")
    os.replace(staging, target)  # whole or not at all
    return target


def built_folder() -> Path | None:
    """The native build for this CPU, if one was made."""
    folder = cache_root() / cpu_signature()
    return folder if all((folder / name).exists() for name in LIBRARIES) else None


def build(log=print, jobs: int | None = None) -> Path:
    """Download ggml's source, compile it for this CPU and install the libraries in the cache.
    Returns their folder; raises ``BuildError`` with the reason when a step fails."""
    target = cache_root() / cpu_signature()
    if built_folder() is not None:
        build_kernels(target, log)
        log(f"ggml for this CPU is already built in {target}")
        return target
    cmake = shutil.which("cmake")
    if cmake is None:
        raise BuildError("cmake is not installed (pip install cmake, or the system's package)")
    if jobs is None:
        jobs = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )
    with tempfile.TemporaryDirectory(prefix="ollamakit-ggml-") as scratch_name:
        scratch = Path(scratch_name)
        log(f"downloading ggml's source ({SOURCE_PACKAGE} {SOURCE_VERSION}, source distribution)")
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--disable-pip-version-check",
                "-q",
                "-d",
                str(scratch),
                f"{SOURCE_PACKAGE}=={SOURCE_VERSION}",
            ],
            "downloading the source",
        )
        archive = next(scratch.glob("*.tar.gz"), None)
        if archive is None:
            raise BuildError("the source distribution did not arrive")
        source = _extract_ggml(archive, scratch / "src")
        # The source distribution leaves out ggml's pkg-config template, which cmake insists on
        # configuring; an empty one serves (nothing here reads the .pc file).
        (source / "ggml.pc.in").touch()
        build_dir = scratch / "build"
        log(f"compiling ggml for this CPU with {jobs} jobs (a minute or two)")
        _run([cmake, "-S", str(source), "-B", str(build_dir), *CMAKE_OPTIONS], "configuring ggml")
        _run([cmake, "--build", str(build_dir), "-j", str(jobs)], "compiling ggml")
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=_parent(target)))
        for name in LIBRARIES:
            built = next(iter(sorted(build_dir.rglob(name))), None)
            if built is None:
                raise BuildError(f"the build made no {name}")
            # the real file under the name ggml's libraries link against (NEEDED: libggml-*.so.0)
            real = built.resolve()
            shutil.copy2(real, staging / real.name)
            for alias in (name, name + ".0"):
                os.symlink(real.name, staging / alias)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)  # whole or not at all: a half-copied build is never found
    build_kernels(target, log)
    log(f"ggml for this CPU is in {target}")
    return target


def _parent(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent


def _extract_ggml(archive: Path, destination: Path) -> Path:
    """Only ggml's folder of the source distribution, refusing any path that leaves it."""
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) > 1 and "/".join(parts[1:]).startswith(GGML_IN_SOURCE + "/"):
                if member.issym() or member.islnk() or ".." in parts:
                    continue
                members.append(member)
        if not members:
            raise BuildError(f"no {GGML_IN_SOURCE} in {archive.name}")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(destination, members=members, filter="data")
        else:  # Pythons before the filters; the members were checked above
            tar.extractall(destination, members=members)
    roots = {Path(m.name).parts[0] for m in members}
    return destination / roots.pop() / GGML_IN_SOURCE


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise BuildError(f"{what} failed:\n{tail}")


class BuildError(RuntimeError):
    """A native build step failed; the message says which and why."""
