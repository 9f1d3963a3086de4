"""A Hugging Face model folder, as uploaded: ``files`` maps relative paths to stored blobs.

No folder is ever made on disk: each file is read straight from its blob, so a path cannot
escape anywhere (keys are already checked to be relative, without ``.`` or ``..`` parts).
JSON files are size-bounded before they are parsed; every safetensors file is opened with the
strict reader, and a tensor name found in two shards is an error.
"""

from __future__ import annotations

import json
from pathlib import Path

from ollamakit.errors import InvalidModelFile

from .reader import SafetensorsFile, TensorInfo

MAX_JSON = 4 * 1024 * 1024
MAX_TOKENIZER_JSON = 128 * 1024 * 1024  # large vocabularies (Gemma's 262k tokens) run to ~35 MB
MAX_TEXT = 4 * 1024 * 1024


class ModelFolder:
    def __init__(self, paths: dict[str, Path]):
        """``paths`` maps each relative file name to the local file holding its bytes."""
        self.paths = paths
        self._open: list = []  # SafetensorsFile, or a PEFT adapter's TorchFile
        self.tensors: dict[str, tuple] = {}

    # -- plain files ---------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return name in self.paths

    def text(self, name: str, limit: int = MAX_TEXT) -> str | None:
        path = self.paths.get(name)
        if path is None:
            return None
        size = path.stat().st_size
        if size > limit:
            raise InvalidModelFile(f"{name} is {size} bytes, more than the {limit} allowed")
        try:
            return path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidModelFile(f"{name} is not UTF-8 text") from None

    def json(self, name: str, limit: int = MAX_JSON, kind=dict):
        """The parsed JSON file ``name`` (None when absent); it must be of type ``kind``."""
        text = self.text(name, limit)
        if text is None:
            return None
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            raise InvalidModelFile(f"{name} is not valid JSON") from None
        if not isinstance(value, kind):
            raise InvalidModelFile(
                f"{name} must hold a JSON {'object' if kind is dict else 'array'}"
            )
        return value

    # -- tensors -------------------------------------------------------------------------------

    def open_tensors(self) -> None:
        """Open and validate every ``*.safetensors`` file; index the tensors by name."""
        names = sorted(n for n in self.paths if n.lower().endswith(".safetensors"))
        if not names:
            raise InvalidModelFile("no .safetensors file was given")
        for name in names:
            st = SafetensorsFile.open(self.paths[name], label=name)
            self._open.append(st)
            for tensor, info in st.tensors.items():
                if tensor in self.tensors:
                    other = self.tensors[tensor][0].label
                    raise InvalidModelFile(f"tensor {tensor!r} appears in both {other} and {name}")
                self.tensors[tensor] = (st, info)
        self._check_index()

    def open_checkpoint(self, name: str) -> None:
        """Take the tensors from the PyTorch checkpoint ``name`` instead (a PEFT adapter saved
        as ``adapter_model.bin``), read without running its pickle (``torch_pickle``)."""
        from .torch_pickle import TorchFile

        checkpoint = TorchFile.open(self.paths[name], name)
        self._open.append(checkpoint)
        self.tensors = {tensor: (checkpoint, info) for tensor, info in checkpoint.tensors.items()}

    def _check_index(self) -> None:
        """A shard index, when present, must agree with the shards that were given."""
        index = self.json("model.safetensors.index.json", MAX_TOKENIZER_JSON)
        if index is None:
            return
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict):
            raise InvalidModelFile("model.safetensors.index.json has no weight_map object")
        for tensor, shard in weight_map.items():
            if tensor not in self.tensors:
                raise InvalidModelFile(
                    f"model.safetensors.index.json names tensor {tensor!r}, which no file holds"
                )
            if self.tensors[tensor][0].label != shard and not str(shard).endswith(
                "/" + self.tensors[tensor][0].label
            ):
                where = self.tensors[tensor][0].label
                raise InvalidModelFile(
                    f"tensor {tensor!r} is in {where}, not in {shard!r} as the index says"
                )

    def info(self, name: str) -> TensorInfo:
        return self.tensors[name][1]

    def raw(self, name: str):
        st, _ = self.tensors[name]
        return st.raw(name)

    def array(self, name: str):
        st, _ = self.tensors[name]
        return st.array(name)

    def close(self) -> None:
        for st in self._open:
            st.close()
        self._open.clear()

    def __enter__(self) -> ModelFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
