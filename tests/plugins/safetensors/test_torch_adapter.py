"""PEFT adapters saved as ``adapter_model.bin`` (``torch.save``): read without torch and without
running their pickle. A real checkpoint written by torch (``tests/reference/peft-adapter.bin``,
``record_torch_adapter.py``) gives the tensors it was made from, views included, and the same
model as its safetensors twin; pickles that name anything beyond a state dict's tensors are a
400 and run nothing."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import pytest

from hf_export import folder_files
from peft_folders import decoder_folder, peft_adapter
from record_torch_adapter import MODULES
from test_create_from_folder import store_state, upload
from test_peft_adapter import create, layer_path, logits

from ollamakit import manifest as mf
from ollamakit.testing.reference import REFERENCE_DIR

engine = pytest.importorskip("ollamakit_engine")
CHECKPOINT = REFERENCE_DIR / "peft-adapter.bin"


@pytest.fixture
def adapter(tmp_path):
    """The tiny qwen2 folder, its adapter as safetensors, and the same adapter as torch wrote it."""
    model = decoder_folder("qwen2", tmp_path / "qwen2")
    tensors = peft_adapter(model, tmp_path / "lora", modules=MODULES)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "adapter_model.bin").write_bytes(CHECKPOINT.read_bytes())
    config = (tmp_path / "lora" / "adapter_config.json").read_text()
    (tmp_path / "bin" / "adapter_config.json").write_text(config)
    return model, tmp_path / "lora", tmp_path / "bin", tensors


def test_a_torch_checkpoint_reads_as_it_was_saved(adapter):
    from ollamakit_safetensors.torch_pickle import TorchFile

    *_, folder, tensors = adapter
    with TorchFile.open(folder / "adapter_model.bin", "adapter_model.bin") as checkpoint:
        assert set(checkpoint.tensors) == set(tensors)
        for name, values in tensors.items():
            assert checkpoint.tensors[name].dtype == "F32"
            np.testing.assert_array_equal(checkpoint.raw(name), values)


def test_a_bin_adapter_makes_the_same_model_as_its_safetensors_twin(client, kernel, adapter):
    model, lora, binary, _ = adapter
    create(client, "base", files=upload(client, folder_files(model)))
    create(client, "st", **{"from": "base", "adapters": upload(client, folder_files(lora))})
    create(client, "bin", **{"from": "base", "adapters": upload(client, folder_files(binary))})
    from_st, from_bin = layer_path(kernel, "st", mf.ADAPTER), layer_path(kernel, "bin", mf.ADAPTER)
    assert from_st.read_bytes() == from_bin.read_bytes()  # the very same GGUF adapter
    base = layer_path(kernel, "bin", mf.MODEL)
    assert np.abs(logits(base, [from_bin]) - logits(base)).max() > 0.1


def _global_pickle(module: str, name: str, args: tuple) -> bytes:
    """Protocol-2 opcodes for ``module.name(*args)``, written by hand (the callable need not
    exist here, and must never run)."""
    body = pickle.dumps(args, protocol=2)[2:-1]  # the args tuple's opcodes
    return b"\x80\x02" + b"c" + f"{module}\n{name}\n".encode() + body + b"R" + b"."


def _checkpoint(path, data_pkl: bytes, storages=None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("adapter_model/data.pkl", data_pkl)
        archive.writestr("adapter_model/byteorder", "little")
        for key, raw in (storages or {}).items():
            archive.writestr(f"adapter_model/data/{key}", raw)
        archive.writestr("adapter_model/version", "3\n")
    return path


def _state_dict_with(extra: bytes) -> bytes:
    """A one-entry dict whose value is the object ``extra``'s opcodes make (no PROTO/STOP)."""
    return b"\x80\x02}" + b"X\x01\x00\x00\x00k" + extra + b"s."


HOSTILE = {
    "os.system": (("os", "system", ("touch {marker}",)), "names os.system"),
    "posix.system": (("posix", "system", ("touch {marker}",)), "names posix.system"),
    "exec": (("builtins", "exec", ("open('{marker}', 'w')",)), "names builtins.exec"),
    "Popen inside a state dict": (
        _state_dict_with(b"csubprocess\nPopen\n(X\x05\x00\x00\x00touchtR"),
        "names subprocess.Popen",
    ),
    "torch.load": (("torch", "load", ("x",)), "names torch.load"),
    "numpy": (("numpy", "frombuffer", ("abcd",)), "names numpy.frombuffer"),
    "an empty dict": (("collections", "OrderedDict", ()), "the adapter has no LoRA tensors"),
    "a storage type called": (("torch", "FloatStorage", ()), "not a readable state dict"),
    "INST": (b"(ios\nsystem\nX\x01\x00\x00\x00x.", "uses the pickle opcode INST"),
    "out-of-band buffer": (b"\x80\x05\x97.", "uses the pickle opcode NEXT_BUFFER"),
    "not a pickle": (b"not a pickle at all", "data.pkl is not a readable state dict"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_pickles_are_refused_and_run_nothing(client, models_dir, tmp_path, adapter, case):
    made, message = HOSTILE[case]
    marker = tmp_path / "ran"
    if isinstance(made, tuple):
        module, name, args = made
        args = tuple(a.replace("{marker}", str(marker)) for a in args)
        data_pkl = _global_pickle(module, name, args)
    else:
        data_pkl = made
    model, *_ = adapter
    create(client, "base", files=upload(client, folder_files(model)))
    folder = tmp_path / "hostile"
    folder.mkdir()
    _checkpoint(folder / "adapter_model.bin", data_pkl)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    digests = upload(client, folder_files(folder))
    before = store_state(models_dir)
    reply = client.simulate_post(
        "/api/create", json={"model": "tuned", "from": "base", "adapters": digests}
    )
    assert reply.status_code == 400, reply.text
    assert message in reply.json["error"] and "Traceback" not in reply.json["error"]
    assert not marker.exists()
    assert store_state(models_dir) == before


def _tensor_pickle(offset: int, size: tuple, stride: tuple, numel: int, build=b"") -> bytes:
    """A state dict of one tensor as torch pickles it, with the numbers given."""

    def ints(values):
        return b"(" + b"".join(b"K" + bytes([v]) for v in values) + b"t"

    storage = (
        b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK"
        + bytes([numel])
        + b"tQ"
    )
    rebuild = (
        b"ctorch._utils\n_rebuild_tensor_v2\n("
        + storage
        + b"K"
        + bytes([offset])
        + ints(size)
        + ints(stride)
        + b"\x89ccollections\nOrderedDict\n)RtR"
        + build
    )
    return _state_dict_with(rebuild)


def test_the_tensor_rebuild_is_checked_against_its_storage(tmp_path):
    from ollamakit_safetensors.torch_pickle import TorchFile

    from ollamakit.errors import InvalidModelFile

    values = np.arange(12, dtype="<f4")
    ok = _checkpoint(
        tmp_path / "ok.bin", _tensor_pickle(2, (2, 3), (1, 2), 12), {"0": values.tobytes()}
    )
    with TorchFile.open(ok, "ok.bin") as checkpoint:  # a transposed view, from element 2 on
        np.testing.assert_array_equal(checkpoint.raw("k"), [[2, 4, 6], [3, 5, 7]])
    cases = {
        "past.bin": (_tensor_pickle(8, (2, 3), (1, 2), 12), values, "past the end of its storage"),
        "short.bin": (_tensor_pickle(0, (2, 3), (3, 1), 12), values[:6], "not 12 stored F32"),
        "build.bin": (
            _tensor_pickle(0, (2, 3), (3, 1), 12, build=b"}X\x06\x00\x00\x00valuesK\x01sb"),
            values,
            "uses the pickle opcode BUILD",
        ),
    }
    for name, (data_pkl, storage, message) in cases.items():
        path = _checkpoint(tmp_path / name, data_pkl, {"0": storage.tobytes()})
        with pytest.raises(InvalidModelFile, match=message):
            TorchFile.open(path, name)
    with pytest.raises(InvalidModelFile, match="not a PyTorch checkpoint"):
        TorchFile.open(CHECKPOINT.parent / "README.md", "README.md")
