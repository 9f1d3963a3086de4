"""PyTorch checkpoints (``torch.save``'s zip archive, as PEFT writes ``adapter_model.bin``) read
without PyTorch and without running the pickle.

A checkpoint is a zip of ``<root>/data.pkl``, a pickle of the state dict, and one
``<root>/data/<key>`` entry of raw little-endian elements per storage. Unpickling may call any
function the pickle names, so this unpickler resolves exactly the names a state dict of tensors
needs and refuses every other, and runs only after a scan of its opcodes (``pickletools``, which
reads without running) finds none beyond those ``torch.save`` writes (no out-of-band buffers,
no BUILD, no object creation but the calls below): ``torch._utils._rebuild_tensor_v2`` (here a function that builds
a numpy array from a storage, checked against its bounds), the storage types of the float dtypes
(markers only) and ``collections.OrderedDict``. Storages come from ``persistent_load``, each
checked to be a stored (uncompressed) entry of exactly its element count; nothing else in the
archive is read. The result must be a dict of names to tensors.

    with TorchFile.open(path, label) as checkpoint:
        checkpoint.tensors        # name -> TensorInfo (dtype as safetensors names it, shape)
        checkpoint.raw(name)      # the elements in their own dtype (BF16 as uint16 bits)
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import pickletools
import zipfile
from pathlib import Path

import numpy as np

from ollamakit.errors import InvalidModelFile

from .reader import DTYPES, TensorInfo, to_float32

MAX_PICKLE = 16 * 1024 * 1024  # a state dict's pickle is names and small tuples
# The opcodes of torch.save's pickle (protocol 2, and protocol 4's framing and memo forms)
OPCODES = frozenset(
    "PROTO FRAME STOP MARK POP POP_MARK DUP NONE NEWTRUE NEWFALSE BININT BININT1 BININT2 LONG1 "
    "BINFLOAT BINUNICODE SHORT_BINUNICODE BINUNICODE8 EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 "
    "EMPTY_LIST APPEND APPENDS LIST EMPTY_DICT DICT SETITEM SETITEMS GLOBAL STACK_GLOBAL REDUCE "
    "BINPERSID BINGET LONG_BINGET BINPUT LONG_BINPUT MEMOIZE".split()
)
MAX_ENTRIES = 1 << 16
MAX_DIMS = 8
# torch's storage types (torch.FloatStorage, ...) as the dtype names safetensors uses
STORAGES = {
    "FloatStorage": "F32",
    "HalfStorage": "F16",
    "BFloat16Storage": "BF16",
    "DoubleStorage": "F64",
}


class _Sealed:
    """What the unpickler hands the pickle: its BUILD opcode cannot change one (no
    ``__dict__``, and ``__setstate__`` refuses)."""

    __slots__ = ("dtype", "values")

    def __init__(self, dtype: str, values=None):
        self.dtype = dtype
        self.values = values

    def __setstate__(self, state):
        raise InvalidModelFile("the checkpoint's pickle changes an object it did not make")


class _StorageType(_Sealed):
    __slots__ = ()


class _Storage(_Sealed):
    __slots__ = ()  # values: the elements, flat


class _Tensor(_Sealed):
    __slots__ = ()


def _count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidModelFile(f"{what} is not a count")
    return value


def _rebuild_tensor(storage, offset, size, stride, *rest):
    """``torch._utils._rebuild_tensor_v2``: a view of ``storage`` (a copy of it, here), after
    every number is checked to stay inside the storage."""
    if not isinstance(storage, _Storage):
        raise InvalidModelFile("a tensor is not built on a storage of the checkpoint")
    if not isinstance(size, tuple) or not isinstance(stride, tuple) or len(size) != len(stride):
        raise InvalidModelFile("a tensor's size and stride do not match")
    if len(size) > MAX_DIMS or len(rest) > 3:
        raise InvalidModelFile("a tensor has too many dimensions or arguments")
    offset = _count(offset, "a tensor's offset")
    size = tuple(_count(n, "a tensor's size") for n in size)
    stride = tuple(_count(n, "a tensor's stride") for n in stride)
    values = storage.values
    if math.prod(size) == 0:
        return _Tensor(storage.dtype, np.zeros(size, values.dtype))
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= values.size:
        raise InvalidModelFile("a tensor reaches past the end of its storage")
    item = values.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        values[offset:], shape=size, strides=tuple(s * item for s in stride), writeable=False
    )
    return _Tensor(storage.dtype, np.ascontiguousarray(view))


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, root: str, label: str, budget: int):
        super().__init__(io.BytesIO(data))
        self.archive = archive
        self.root = root
        self.label = label
        self.storages: dict[str, _Storage] = {}
        self.budget = budget  # bytes of storage left to read: no more than the archive holds

    def find_class(self, module: str, name: str):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in STORAGES:
            return _StorageType(STORAGES[name])
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise InvalidModelFile(
            f"{self.label}: the checkpoint names {module}.{name}, which a state dict of float "
            "tensors does not need; it is not loaded"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise InvalidModelFile(f"{self.label}: the checkpoint refers to an unknown object")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _StorageType):
            raise InvalidModelFile(f"{self.label}: a storage of a type that is not a float")
        if not isinstance(key, str) or not key.isdigit():
            raise InvalidModelFile(f"{self.label}: a storage key is not a number")
        numel = _count(numel, "a storage's size")
        if key not in self.storages:
            self.storages[key] = _Storage(kind.dtype, self._read(key, kind.dtype, numel))
        storage = self.storages[key]
        if storage.dtype != kind.dtype or storage.values.size != numel:
            raise InvalidModelFile(f"{self.label}: storage {key} is named with two types")
        return storage

    def _read(self, key: str, dtype: str, numel: int) -> np.ndarray:
        try:
            entry = self.archive.getinfo(f"{self.root}/data/{key}")
        except KeyError:
            raise InvalidModelFile(f"{self.label}: storage {key} is missing") from None
        element = DTYPES[dtype][0]
        if entry.compress_type != zipfile.ZIP_STORED or entry.file_size != numel * element.itemsize:
            raise InvalidModelFile(
                f"{self.label}: storage {key} is not {numel} stored {dtype} elements"
            )
        self.budget -= entry.file_size
        if self.budget < 0:  # entries that overlap in the file, read again and again
            raise InvalidModelFile(f"{self.label}: the storages add up to more than the file")
        return np.frombuffer(self.archive.read(entry), dtype=element)


class TorchFile:
    """A checkpoint's tensors, loaded (a PEFT adapter is small); the same reading interface as
    ``reader.SafetensorsFile``."""

    def __init__(self, arrays: dict[str, tuple[str, np.ndarray]], label: str):
        self.label = label
        self._arrays = arrays
        self.tensors = {
            name: TensorInfo(name, dtype, tuple(values.shape), 0, values.nbytes)
            for name, (dtype, values) in arrays.items()
        }

    @classmethod
    def open(cls, path: Path, label: str) -> TorchFile:
        try:
            with zipfile.ZipFile(path) as archive:
                return cls(_load(archive, label, Path(path).stat().st_size), label)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError):
            raise InvalidModelFile(
                f"{label} is not a PyTorch checkpoint (torch.save's zip format)"
            ) from None

    def raw(self, name: str) -> np.ndarray:
        return self._arrays[name][1]

    def array(self, name: str) -> np.ndarray:
        dtype, values = self._arrays[name]
        return to_float32(values, dtype, f"{self.label}: tensor {name!r}")

    def close(self) -> None:
        self._arrays = {}

    def __enter__(self) -> TorchFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _load(archive: zipfile.ZipFile, label: str, size: int) -> dict[str, tuple[str, np.ndarray]]:
    entries = archive.infolist()
    if len(entries) > MAX_ENTRIES:
        raise InvalidModelFile(f"{label} has {len(entries)} entries, more than a checkpoint has")
    pickles = [
        e for e in entries if e.filename.count("/") == 1 and e.filename.endswith("/data.pkl")
    ]
    if len(pickles) != 1:
        raise InvalidModelFile(f"{label} is not a PyTorch checkpoint: it has no one data.pkl")
    entry = pickles[0]
    if entry.file_size > MAX_PICKLE:
        raise InvalidModelFile(f"{label}: data.pkl is {entry.file_size} bytes, more than allowed")
    data = archive.read(entry)
    _check_opcodes(data, label)
    root = entry.filename.split("/")[0]
    if f"{root}/byteorder" in archive.namelist() and archive.read(f"{root}/byteorder") != b"little":
        raise InvalidModelFile(f"{label} was saved big-endian; only little-endian ones are read")
    unpickler = _Unpickler(data, archive, root, label, size)
    try:
        state = unpickler.load()
    except InvalidModelFile:
        raise
    except Exception:  # any malformed pickle: a 400 that names the file, not a 500
        raise InvalidModelFile(f"{label}: data.pkl is not a readable state dict") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, _Tensor) and isinstance(v.values, np.ndarray)
        for k, v in state.items()
    ):
        raise InvalidModelFile(f"{label} does not hold a state dict of tensors")
    return {name: (tensor.dtype, tensor.values) for name, tensor in state.items()}


def _check_opcodes(data: bytes, label: str) -> None:
    try:
        for opcode, _arg, _position in pickletools.genops(data):
            if opcode.name not in OPCODES:
                raise InvalidModelFile(
                    f"{label}: data.pkl uses the pickle opcode {opcode.name}, which torch.save "
                    "does not write; it is not loaded"
                )
    except InvalidModelFile:
        raise
    except Exception:  # an opcode pickletools cannot read: not a pickle
        raise InvalidModelFile(f"{label}: data.pkl is not a readable state dict") from None
