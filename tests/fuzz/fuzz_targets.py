"""Fuzz targets: hostile GGUF files, safetensors files, PyTorch checkpoints and request bodies,
and the rule every
case must keep. Used by ``test_fuzz.py`` (a short seeded run) and ``benchmarks/bench_fuzz.py``
(a long one).

Each target is a hypothesis strategy of cases and a ``check(case)`` that runs one case and
returns a ``Finding`` or None. A case passes when it parses (or answers) or fails with a clean
4xx: an ``OllamaError`` below 500 whose message holds no traceback, exception class name or
file path. Anything else is a finding: another exception, a 5xx, a case over ``CASE_SECONDS``
(a hang), or the process growing by more than ``MEMORY_LIMIT`` bytes.

Hypothesis rather than atheris: it installs from PyPI as a pure-Python wheel on any Python the
project supports, runs inside pytest with a fixed seed, and its strategies build structured
inputs (a GGUF's fields, a request's keys) that reach past the first check, where random bytes
from a coverage-guided byte fuzzer would mostly die at the magic number or the JSON parser.
"""

from __future__ import annotations

import json
import math
import re
import resource
import signal
import struct
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from ollamakit.errors import OllamaError

CASE_SECONDS = 5.0  # a case running longer has hung
MEMORY_LIMIT = 1 << 30  # growth of the process's peak resident memory that counts as a blow-up
# What a client must never read: a traceback, an exception's class name, a file path.
LEAK = re.compile(
    r"Traceback|File \"|\b[A-Z]\w*(Error|Exception)\b|\.py\b|/tmp/|/home/|/work/|/root/|/usr/"
)


@dataclass
class Finding:
    target: str
    kind: str  # "exception", "5xx", "leak", "hang", "memory"
    detail: str
    case: str

    def signature(self) -> str:
        """Findings with the same signature are one bug found many times."""
        return f"{self.target}:{self.kind}:{re.sub(r'[0-9]+', 'N', self.detail)[:160]}"


class Hang(BaseException):
    """Raised in the fuzzing thread when a case passes ``CASE_SECONDS`` (BaseException, so no
    ``except Exception`` in the code under test swallows it)."""


@contextmanager
def bounded(seconds: float = CASE_SECONDS):
    """Raise ``Hang`` in this (the main) thread after ``seconds``. A timer already set (as
    pytest-timeout sets one) is put back afterwards with what was left of it."""

    def expire(signum, frame):
        raise Hang()

    previous = signal.signal(signal.SIGALRM, expire)
    started = time.monotonic()
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:
            signal.setitimer(signal.ITIMER_REAL, max(0.001, outer - (time.monotonic() - started)))


def leaks(message: str, case) -> bool:
    """Whether ``message`` shows internals: a match of ``LEAK`` that the case itself did not
    supply (echoing a client's own model name or a file's own key is no leak)."""
    data = case[-1] if isinstance(case, tuple) else case
    supplied = (
        data.decode("utf-8", "replace") + data.decode("latin-1")
        if isinstance(data, bytes)
        else str(data)
    )
    return any(match.group(0) not in supplied for match in LEAK.finditer(message))


def peak_memory() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def brief(value, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Target:
    """One thing to fuzz: ``strategy`` makes cases, ``run`` runs one and raises or returns a
    message list to check for leaks."""

    name = "target"

    def __init__(self):
        self.baseline = peak_memory()
        self.errors: list[str] = []  # the server log's errors during the current case

    def check(self, case) -> Finding | None:
        try:
            with bounded():
                messages = self.run(case)
        except Hang:
            return Finding(self.name, "hang", f"over {CASE_SECONDS} s", brief(case))
        except OllamaError as exc:
            if exc.status >= 500:
                return Finding(self.name, "5xx", f"{exc.status} {exc.message}", brief(case))
            messages = [exc.message]
        except Exception as exc:  # noqa: BLE001 - exactly what the fuzzer looks for
            return Finding(
                self.name, "exception", f"{type(exc).__name__}: {exc}"[:300], brief(case)
            )
        for message in messages:
            if leaks(message, case):
                return Finding(self.name, "leak", message[:300], brief(case))
        if peak_memory() - self.baseline > MEMORY_LIMIT:
            self.baseline = peak_memory()
            return Finding(
                self.name,
                "memory",
                f"peak resident memory grew past {MEMORY_LIMIT >> 20} MiB",
                brief(case),
            )
        return None

    def run(self, case) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        pass


# -- GGUF -------------------------------------------------------------------------------------

U32, U64 = struct.Struct("<I"), struct.Struct("<Q")
SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY = 8, 9
KEYS = [
    "general.architecture",
    "general.alignment",
    "general.type",
    "general.name",
    "general.file_type",
    "general.license",
    "general.parameter_count",
    "llama.block_count",
    "llama.context_length",
    "llama.embedding_length",
    "llama.feed_forward_length",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.attention.layer_norm_rms_epsilon",
    "llama.rope.freq_base",
    "llama.vision.block_count",
    "tokenizer.ggml.model",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.scores",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.chat_template",
    "bert.pooling_type",
]
BOUNDARY = [
    0,
    1,
    2,
    31,
    32,
    255,
    256,
    0x7FFFFFFF,
    0xFFFFFFFF,
    1 << 32,
    (1 << 62),
    (1 << 63) - 1,
    1 << 63,
    (1 << 64) - 1,
]
count = st.one_of(st.integers(0, 40), st.sampled_from(BOUNDARY))
coin = st.booleans()
u32_any = st.integers(0, (1 << 32) - 1)
# Strategies are built once, here: hypothesis validates each new strategy object, which costs
# far more than drawing from it.


def gguf_string(content):
    """A length-prefixed string whose length is true or any count."""
    return st.tuples(content, st.one_of(st.none(), count)).map(
        lambda t: U64.pack(len(t[0]) if t[1] is None else t[1]) + t[0]
    )


utf8 = st.text(max_size=24).map(lambda s: s.encode("utf-8", "surrogatepass"))
key_bytes = st.one_of(st.sampled_from(KEYS).map(str.encode), utf8, st.binary(max_size=12))
string_value = gguf_string(utf8 | st.binary(max_size=16))
ELEMENT_TYPES = [*SCALAR_SIZES, STRING, ARRAY, 13, 1 << 31]


def _scalar(size: int):
    boundary = st.sampled_from([(n % (1 << 64)).to_bytes(8, "little")[:size] for n in BOUNDARY])
    return st.one_of(st.binary(min_size=size, max_size=size), boundary)


def _values(depth: int) -> dict:
    """Value strategies by GGUF type; arrays hold values one level deeper (three at most)."""
    table = {t: _scalar(n) for t, n in SCALAR_SIZES.items()}
    table[STRING] = string_value
    if depth < 3:
        inner = _values(depth + 1)

        @st.composite
        def array(draw):
            element = draw(st.sampled_from(ELEMENT_TYPES))
            items = draw(st.lists(inner.get(element, st.binary(max_size=8)), max_size=6))
            stated = len(items) if draw(coin) else draw(count)
            return U32.pack(element) + U64.pack(stated % (1 << 64)) + b"".join(items)

        table[ARRAY] = array()
    return table


VALUES = _values(0)
value_types = st.one_of(st.sampled_from([*SCALAR_SIZES, STRING, ARRAY]), u32_any)
other_value = st.binary(max_size=8)
dims_list = st.lists(st.one_of(st.integers(0, 64), st.sampled_from(BOUNDARY)), max_size=5)
ggml_types = st.one_of(st.sampled_from([0, 1, 2, 8, 12, 14, 30, 39]), u32_any)
offsets = st.one_of(st.integers(0, 8).map(lambda n: 32 * n), st.sampled_from(BOUNDARY))
tensor_names = gguf_string(
    st.sampled_from([b"token_embd.weight", b"blk.0.attn_q.weight", b"output.weight"]) | utf8
)
key_strings = gguf_string(key_bytes)


@st.composite
def gguf_kv(draw) -> bytes:
    value_type = draw(value_types)
    return draw(key_strings) + U32.pack(value_type) + draw(VALUES.get(value_type, other_value))


@st.composite
def gguf_tensor_info(draw) -> bytes:
    dims = draw(dims_list)
    n_dims = len(dims) if draw(coin) else draw(u32_any)
    name, ggml_type, offset = draw(tensor_names), draw(ggml_types), draw(offsets)
    return (
        name
        + U32.pack(n_dims)
        + b"".join(U64.pack(d % (1 << 64)) for d in dims)
        + U32.pack(ggml_type)
        + U64.pack(offset)
    )


kv_lists, info_lists = st.lists(gguf_kv(), max_size=6), st.lists(gguf_tensor_info(), max_size=4)
magics = st.sampled_from([b"GGUF"] * 8 + [b"GGUG", b"FUGG"])
versions = st.sampled_from([3, 3, 3, 2, 1, 4, 0x03000000])
tails = st.binary(max_size=512)


@st.composite
def crafted_gguf(draw) -> bytes:
    """A GGUF assembled field by field, any field lying."""
    kvs, infos = draw(kv_lists), draw(info_lists)
    magic, version = draw(magics), draw(versions)
    n_tensors = len(infos) if draw(coin) else draw(count)
    n_kv = len(kvs) if draw(coin) else draw(count)
    head = (
        magic
        + U32.pack(version)
        + U64.pack(n_tensors)
        + U64.pack(n_kv)
        + b"".join(kvs)
        + b"".join(infos)
    )
    return head + bytes(-len(head) % 32) + draw(tails)


def seed_ggufs(folder: Path) -> list[bytes]:
    """Valid files to mutate: a tiny llama and a file with every kind of metadata value."""
    import numpy as np

    from ollamakit.testing.gguf_factory import make_gguf, tiny_llama

    llama = tiny_llama(
        folder / "seed-llama.gguf", n_layers=1, n_embd=8, n_heads=2, n_kv_heads=1, n_ff=16
    )
    kinds = make_gguf(
        folder / "seed-kinds.gguf",
        {
            "general.architecture": "llama",
            "general.name": "x",
            "llama.block_count": 1,
            "general.license": ["a", "b"],
            "tokenizer.ggml.scores": [0.5, -1.0],
            "nested": [[1, 2], [3]],
            "flag": True,
            "ratio": 0.25,
        },
        {"w": np.arange(8, dtype=np.float32).reshape(2, 4)},
    )
    return [llama.read_bytes(), kinds.read_bytes()]


MUTATIONS = st.sampled_from(["byte", "u32", "u64", "cut", "insert", "delete"])
bytes_values, boundary_values = st.integers(0, 255), st.sampled_from(BOUNDARY)
inserts, mutation_counts, deletions = (
    st.binary(min_size=1, max_size=16),
    st.integers(1, 4),
    st.integers(1, 64),
)


def mutated(seeds: list[bytes]):
    """A valid seed with a few byte-level changes, most of them in the header."""
    seed_files = st.sampled_from(seeds)

    @st.composite
    def mutate(draw) -> bytes:
        data = bytearray(draw(seed_files))
        for _ in range(draw(mutation_counts)):
            limit = len(data) if draw(coin) else min(len(data), 4096)
            at = draw(st.integers(0, max(0, limit - 1)))
            op = draw(MUTATIONS)
            if op == "byte":
                data[at : at + 1] = bytes([draw(bytes_values)])
            elif op in ("u32", "u64"):
                size = 4 if op == "u32" else 8
                data[at : at + size] = (draw(boundary_values) % (1 << (8 * size))).to_bytes(
                    size, "little"
                )
            elif op == "cut":
                del data[at:]
            elif op == "insert":
                data[at:at] = draw(inserts)
            else:
                del data[at : at + draw(deletions)]
        return bytes(data)

    return mutate()


class GGUFTarget(Target):
    """The strict reader, the header every part reads through the kernel (hook
    ``read_model_header``), what create decides from it (the GGUF source's layer kind, the
    engines' ``check_model``), and every tensor's bytes."""

    name = "gguf"

    def __init__(self):
        super().__init__()
        from ollamakit.config import Settings
        from ollamakit.kernel import make_kernel

        self.folder = Path(tempfile.mkdtemp(prefix="fuzz-gguf-", dir=_scratch()))
        self.path = self.folder / "case.gguf"
        self.kernel = make_kernel(Settings(models_dir=self.folder / "models"))
        self.strategy = st.one_of(crafted_gguf(), mutated(seed_ggufs(self.folder)))

    def run(self, data: bytes) -> list[str]:
        from ollamakit.create import CreateContext, CreateRequest
        from ollamakit.headers import read_header
        from ollamakit.lib.gguf import GGUFFile

        self.path.write_bytes(data)
        header = read_header(self.kernel, self.path, "case.gguf")
        if header is None:
            return []  # not a GGUF: no reader claims it
        header.file_type, header.parameter_count, header.architecture, header.chat_template  # noqa: B018
        header.float32_keys  # noqa: B018 - derived values
        self.create_from(data, CreateRequest, CreateContext)
        with GGUFFile.open(self.path) as opened:
            for info in opened.tensors[:16]:
                opened.raw(info.name)
        return []

    def create_from(self, data: bytes, request_type, context_type) -> None:
        """The case as an uploaded file of a create: the model source that takes it builds its
        layers (and asks the engines), nothing is written."""
        store = self.kernel.store
        digest, _ = store.add_bytes(data)
        request = request_type.from_body({"model": "fuzz", "files": {"case.gguf": digest}})
        ctx = context_type(self.kernel, request)
        try:
            source = self.kernel.hook.resolve_model_source(request=request, kernel=self.kernel)
            for _ in source.build(ctx):
                pass
        finally:
            for blob in {digest, *ctx.created}:
                self.kernel.storage.delete_blob(blob)

    def close(self):
        import shutil

        self.kernel.close()
        shutil.rmtree(self.folder, ignore_errors=True)


# -- safetensors ------------------------------------------------------------------------------

DTYPE_NAMES = ["F32", "F16", "BF16", "I64", "U8", "BOOL", "F8_E4M3", "F64", "Q4", "", "f32"]
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 70), 1 << 70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def safetensors_file(draw) -> bytes:
    """A header of tensors whose fields are right, wrong or of the wrong type, a data section
    that may or may not match, and a length prefix that may lie."""
    header, offset = {}, 0
    for index in range(draw(st.integers(0, 4))):
        shape = draw(st.lists(st.integers(0, 6), max_size=3))
        dtype = draw(st.sampled_from(DTYPE_NAMES))
        size = 4 * math.prod(shape)
        entry = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
        for field in draw(
            st.lists(st.sampled_from(["dtype", "shape", "data_offsets", "extra"]), max_size=2)
        ):
            entry[field] = draw(json_value)
        if draw(st.integers(0, 9)) == 0:
            del entry["dtype"]
        header[draw(st.one_of(st.just(f"t{index}.weight"), st.text(max_size=6)))] = entry
    if draw(st.booleans()):
        header["__metadata__"] = draw(
            st.one_of(
                st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3), json_value
            )
        )
    raw = json.dumps(header).encode() if draw(st.integers(0, 7)) else draw(st.binary(max_size=64))
    raw += b" " * draw(st.integers(0, 8))
    stated = draw(st.one_of(st.just(len(raw)), count))
    data = bytes(offset) if draw(st.integers(0, 3)) else draw(st.binary(max_size=64))
    return U64.pack(stated % (1 << 64)) + raw + data


class SafetensorsTarget(Target):
    """The strict reader, and each tensor read as an array and as float32."""

    name = "safetensors"

    def __init__(self):
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="fuzz-st-", dir=_scratch()))
        self.path = self.folder / "case.safetensors"
        self.strategy = safetensors_file()

    def run(self, data: bytes) -> list[str]:
        from ollamakit_safetensors.reader import SafetensorsFile, to_float32

        self.path.write_bytes(data)
        with SafetensorsFile.open(self.path, "case.safetensors") as st_file:
            for name, info in list(st_file.tensors.items())[:8]:
                array = st_file.array(name)
                if info.dtype in ("F32", "F16", "BF16"):
                    to_float32(array, info.dtype, name)
        return []

    def close(self):
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


# -- PyTorch checkpoints (a PEFT adapter_model.bin) -------------------------------------------

# Pickle opcodes a state dict of tensors is made of, the names it may and may not use, and
# numbers; a case strings some of them together, or fills a well-formed tensor's numbers.
PICKLE_PIECES = [
    b"ctorch._utils\n_rebuild_tensor_v2\n",
    b"ctorch\nFloatStorage\n",
    b"ctorch\nBFloat16Storage\n",
    b"ccollections\nOrderedDict\n",
    b"cos\nsystem\n",
    b"cbuiltins\ngetattr\n",
    b"cnumpy\nndarray\n",
    *(bytes([op]) for op in b"(t)}]RQbsuaeN\x88\x89\x85\x86\x87\x94\x930201"),
    b"K\x00",
    b"K\x07",
    b"J\xff\xff\xff\x7f",
    b"J\xff\xff\xff\xff",
    b"X\x01\x00\x00\x000",
    b"X\x07\x00\x00\x00storage",
    b"X\x03\x00\x00\x00cpu",
    b"X\x01\x00\x00\x00k",
    b"q\x00",
    b"h\x00",
]


def _ints(values) -> bytes:
    return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"


def tensor_pickle(offset: int, size, stride, numel: int) -> bytes:
    """A state dict of one tensor as torch pickles it, with these numbers."""
    storage = (
        b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuJ"
        + struct.pack("<i", numel)
        + b"tQ"
    )
    return (
        b"\x80\x02}X\x01\x00\x00\x00kctorch._utils\n_rebuild_tensor_v2\n("
        + storage
        + b"J"
        + struct.pack("<i", offset)
        + _ints(size)
        + _ints(stride)
        + b"\x89ccollections\nOrderedDict\n)RtRs."
    )


@st.composite
def torch_checkpoint(draw) -> bytes:
    """A zip with a data.pkl (a tensor with numbers that may not fit its storage, a string of
    opcodes and names, or bytes) and a storage entry of some size, stored or compressed."""
    import io
    import zipfile

    small = st.integers(-2, 40)
    kind = draw(st.integers(0, 2))
    elements = draw(st.integers(0, 40))
    if kind == 0:
        dims = draw(st.integers(0, 3))
        numel = draw(st.one_of(st.just(elements), small))
        pickle_bytes = tensor_pickle(
            draw(small),
            draw(st.lists(small, min_size=dims, max_size=dims)),
            draw(st.lists(st.integers(-1, 6), min_size=dims, max_size=dims)),
            numel,
        )
    elif kind == 1:
        pieces = draw(st.lists(st.sampled_from(PICKLE_PIECES), max_size=24))
        pickle_bytes = b"\x80\x02" + b"".join(pieces) + b"."
    else:
        pickle_bytes = draw(st.binary(max_size=64))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        name = draw(st.sampled_from(["a/data.pkl"] * 6 + ["data.pkl", "a/b/data.pkl"]))
        archive.writestr(name, pickle_bytes)
        compress = zipfile.ZIP_DEFLATED if draw(st.integers(0, 9)) == 0 else zipfile.ZIP_STORED
        archive.writestr("a/data/0", bytes(4 * elements), compress_type=compress)
        if draw(st.integers(0, 3)) == 0:
            archive.writestr("a/byteorder", draw(st.sampled_from([b"little", b"big"])))
    data = out.getvalue()
    if draw(st.integers(0, 19)) == 0:  # a cut archive
        data = data[: draw(st.integers(0, len(data)))]
    return data


class TorchCheckpointTarget(Target):
    """The restricted reader of PyTorch checkpoints, and each tensor it yields as float32."""

    name = "torch-checkpoint"

    def __init__(self):
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="fuzz-pt-", dir=_scratch()))
        self.path = self.folder / "adapter_model.bin"
        self.strategy = torch_checkpoint()

    def run(self, data: bytes) -> list[str]:
        from ollamakit_safetensors.torch_pickle import TorchFile

        self.path.write_bytes(data)
        with TorchFile.open(self.path, "adapter_model.bin") as checkpoint:
            for name in checkpoint.tensors:
                checkpoint.array(name)
        return []

    def close(self):
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def _scratch() -> str | None:
    """Case files go to memory when the machine has a tmpfs: thousands of writes a second."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


def fuzz(target: Target, examples: int, seed: int, on_finding, shrink: bool = False) -> int:
    """Run ``examples`` cases of ``target`` from ``seed``; ``on_finding(finding)`` for each
    finding (raise there to stop; with ``shrink``, hypothesis then looks for the smallest case
    that still fails). Returns the number of cases run."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as with_seed

    ran = 0

    @with_seed(seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,
        phases=[Phase.generate, Phase.shrink] if shrink else [Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(target.strategy)
    def one(case):
        nonlocal ran
        ran += 1
        finding = target.check(case)
        if finding is not None:
            on_finding(finding)

    one()
    return ran
