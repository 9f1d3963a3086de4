"""Create refuses a model no engine can run (hook ``check_model``), before anything is stored:
each bad file is a 400 naming what is wrong, the store is byte-for-byte unchanged, nothing is
stored under the name, and the server goes on answering."""

from __future__ import annotations

import numpy as np
import pytest

from ollamakit.hookspecs import hookimpl
from ollamakit.errors import InvalidModelFile
from ollamakit.testing.gguf_factory import make_gguf

from model_store_helpers import create, snapshot, tiny_gguf, tiny_tensors, upload

BASE = {
    "general.architecture": "llama",
    "llama.block_count": 1,
    "llama.context_length": 64,
    "llama.embedding_length": 32,
    "llama.feed_forward_length": 32,
    "llama.attention.head_count": 2,
    "llama.attention.head_count_kv": 1,
}


def variant(path, metadata=None, tensors=None, drop=()):
    meta = {**BASE, **(metadata or {})}
    meta = {k: v for k, v in meta.items() if v is not None}
    weights = tiny_tensors() if tensors is None else tensors
    weights = {k: v for k, v in weights.items() if k not in drop}
    make_gguf(path, meta, weights, types={"llama.attention.layer_norm_rms_epsilon": 6})  # FLOAT32
    return path.read_bytes()


CASES = [
    # (id, metadata, tensors, dropped tensors, message)
    ("no_tensors", None, {}, (), '"m.gguf": model file has no tensors'),
    (
        "block_count_one_too_many",
        {"llama.block_count": 2},
        None,
        (),
        '"m.gguf": model file lacks tensor blk.1.attn_norm.weight',
    ),
    (
        "block_count_one_too_few",
        None,
        tiny_tensors(n_layers=2),
        (),
        '"m.gguf": tensor blk.1.attn_norm.weight is beyond the model\'s block count of 1',
    ),
    (
        "heads_do_not_divide_width",
        {"llama.attention.head_count": 3, "llama.attention.head_count_kv": 3},
        None,
        (),
        '"m.gguf": llama: width 32 does not split into 3 heads',
    ),
    (
        "kv_heads_do_not_divide_heads",
        {"llama.attention.head_count": 4, "llama.attention.head_count_kv": 3},
        None,
        (),
        '"m.gguf": llama: 4 query heads cannot share 3 key/value heads evenly',
    ),
    (
        "negative_rms_eps",
        {"llama.attention.layer_norm_rms_epsilon": -1.0},
        None,
        (),
        '"m.gguf": llama.attention.layer_norm_rms_epsilon = -1.0 must be positive',
    ),
    (
        "zero_rms_eps",
        {"llama.attention.layer_norm_rms_epsilon": 0.0},
        None,
        (),
        '"m.gguf": llama.attention.layer_norm_rms_epsilon = 0.0 must be positive',
    ),
    (
        "missing_hyperparameter",
        {"llama.feed_forward_length": None},
        None,
        (),
        '"m.gguf": model metadata lacks llama.feed_forward_length',
    ),
    (
        "missing_tensor",
        None,
        None,
        ("blk.0.ffn_up.weight",),
        '"m.gguf": model file lacks tensor blk.0.ffn_up.weight',
    ),
    (
        "no_embedding",
        None,
        None,
        ("token_embd.weight",),
        '"m.gguf": tensor token_embd.weight is missing or not (32, vocab)',
    ),
    (
        "misshapen_tensor",
        None,
        {**tiny_tensors(), "blk.0.ffn_up.weight": np.zeros((16, 32), np.float16)},
        (),
        '"m.gguf": tensor blk.0.ffn_up.weight has shape [32, 16], expected [32, 32]',
    ),
    (
        "unknown_architecture",
        {"general.architecture": "mamba"},
        None,
        (),
        "\"m.gguf\": unsupported model architecture 'mamba'",
    ),
    (
        "no_architecture",
        {"general.architecture": None},
        None,
        (),
        '"m.gguf": unsupported model architecture (none given)',
    ),
]


@pytest.fixture
def existing(client, tmp_path):
    create(
        client,
        model="existing",
        files={"m.gguf": upload(client, tiny_gguf(tmp_path / "good.gguf"))},
    )


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nostream"])
@pytest.mark.parametrize(
    ("metadata", "tensors", "drop", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_create_refuses_what_cannot_run(
    client, models_dir, tmp_path, existing, metadata, tensors, drop, message, stream
):
    digest = upload(client, variant(tmp_path / "bad.gguf", metadata, tensors, drop))
    before = snapshot(models_dir)
    response = client.simulate_post(
        "/api/create", json={"model": "broken", "files": {"m.gguf": digest}, "stream": stream}
    )
    assert response.status_code == 400, response.text
    assert response.json == {"error": message}
    assert snapshot(models_dir) == before
    assert client.simulate_get("/api/tags").json["models"][0]["name"] == "existing:latest"
    assert client.simulate_post("/api/show", json={"model": "broken"}).status_code == 404


def test_a_sound_file_is_accepted_with_optional_tensors(client, tmp_path):
    tensors = {
        **tiny_tensors(),
        "blk.0.attn_q.bias": np.zeros(32, np.float16),
        "blk.0.attn_k.bias": np.zeros(16, np.float16),
        "blk.0.attn_v.bias": np.zeros(16, np.float16),
        "output.weight": np.zeros((8, 32), np.float16),
    }
    digest = upload(
        client,
        variant(tmp_path / "ok.gguf", {"llama.attention.layer_norm_rms_epsilon": 1e-6}, tensors),
    )
    assert create(client, model="ok", files={"m.gguf": digest})[-1] == {"status": "success"}


def test_adapters_are_not_held_to_a_model_s_requirements(client, tmp_path):
    """Only the model's own weights must be a whole model; an adapter holds a few tensors (and
    is checked against the model it is created with)."""
    base = upload(client, tiny_gguf(tmp_path / "base.gguf"))
    lora = {
        "blk.0.attn_q.weight.lora_a": np.zeros((2, 32), np.float32),
        "blk.0.attn_q.weight.lora_b": np.zeros((32, 2), np.float32),
    }
    adapter = upload(
        client,
        variant(tmp_path / "lora.gguf", {"general.type": "adapter", "adapter.type": "lora"}, lora),
    )
    assert create(client, model="m", files={"m.gguf": base}, adapters={"a.gguf": adapter})[-1] == {
        "status": "success"
    }


class MambaEngine:
    """A third-party engine declaring its own architecture through the same hook."""

    @hookimpl
    def check_model(self, kernel, header):
        if header.architecture != "mamba":
            return None
        if "mamba.ssm.state_size" not in header.metadata:
            raise InvalidModelFile("model metadata lacks mamba.ssm.state_size")
        return True


def test_a_third_party_engine_declares_its_architecture(client, kernel, tmp_path):
    kernel.pm.register(MambaEngine(), name="mamba-engine")
    weights = {"a": np.zeros((4, 32), np.float16)}
    lacking = upload(
        client, variant(tmp_path / "a.gguf", {"general.architecture": "mamba"}, weights)
    )
    response = client.simulate_post(
        "/api/create", json={"model": "m1", "files": {"m.gguf": lacking}}
    )
    assert response.status_code == 400 and response.json == {
        "error": '"m.gguf": model metadata lacks mamba.ssm.state_size'
    }
    sound = upload(
        client,
        variant(
            tmp_path / "b.gguf",
            {"general.architecture": "mamba", "mamba.ssm.state_size": 16},
            weights,
        ),
    )
    assert create(client, model="m2", files={"m.gguf": sound})[-1] == {"status": "success"}


@pytest.mark.parametrize("name", ["deepseek2", "deepseek2-lite"])
def test_deepseek2_is_accepted_and_a_variant_it_cannot_run_is_named(client, tmp_path, name):
    """deepseek2 (latent attention; the lite fixture in the older attn_kv_b form) is created;
    a deepseek2 file with multi-token-prediction layers is a 400 naming them."""
    from ollamakit.lib.gguf import GGUFFile
    from ollamakit.testing import architectures as fixtures

    path = fixtures.build(name, tmp_path / "ds.gguf")
    digest = upload(client, path.read_bytes())
    assert create(client, model="ds", files={"m.gguf": digest})[-1] == {"status": "success"}

    raw = path.read_bytes()
    with GGUFFile.open(path) as gguf:
        meta = {**gguf.metadata, "deepseek2.nextn_predict_layers": 1}
        tensors = {
            t.name: (raw[t.offset : t.offset + t.nbytes], t.ggml_type, tuple(t.shape))
            for t in gguf.tensors
        }
    make_gguf(tmp_path / "mtp.gguf", meta, tensors, types=fixtures.value_types(meta))
    response = client.simulate_post(
        "/api/create",
        json={
            "model": "mtp",
            "files": {"m.gguf": upload(client, (tmp_path / "mtp.gguf").read_bytes())},
        },
    )
    assert response.status_code == 400
    assert response.json == {
        "error": '"m.gguf": deepseek2: multi-token-prediction layers are not supported'
    }
