"""From a Modelfile to an /api/create request: paths, folders, hashes and names."""

import hashlib

import pytest
from ollamakit_cli.files import create_plan, expand_path, model_files, request_file_names
from ollamakit_cli.modelfile import ModelfileError, parse


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def plan_for(text, base_dir, warn=None):
    return create_plan(parse(text), base_dir, warn)


def test_from_a_name_sends_from(tmp_path):
    plan = plan_for("FROM llama3.2:1b\nSYSTEM hi\n", tmp_path)
    assert plan.request == {"from": "llama3.2:1b", "system": "hi"}
    assert plan.uploads == []


def test_from_a_gguf_file_hashes_it_and_uses_its_base_name(tmp_path):
    (tmp_path / "sub").mkdir()
    model = tmp_path / "sub" / "tiny.gguf"
    model.write_bytes(b"GGUF" + bytes(100))
    plan = plan_for("FROM ./sub/tiny.gguf\n", tmp_path)
    assert plan.request == {"files": {"tiny.gguf": sha(model.read_bytes())}}
    [upload] = plan.uploads
    assert upload.path == model and upload.size == 104 and upload.digest == sha(model.read_bytes())


def test_absolute_and_home_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert expand_path("~/m.gguf", tmp_path / "elsewhere") == tmp_path / "m.gguf"
    assert expand_path(str(tmp_path / "m.gguf"), tmp_path / "x") == tmp_path / "m.gguf"
    assert expand_path("m.gguf", tmp_path) == tmp_path / "m.gguf"
    plan = plan_for("FROM ~/m.gguf\n", tmp_path / "elsewhere")
    assert plan.request["files"] == {"m.gguf": sha(b"GGUF")}


def make_safetensors_folder(root):
    root.mkdir()
    for name, data in {
        "model.safetensors": b"weights",
        "config.json": b"{}",
        "tokenizer.json": b'{"t":1}',
        "vocab.txt": b"a\nb",
        "README.md": b"# readme",
        "1_Pooling/config.json": b'{"pool":1}',
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_from_a_safetensors_folder_sends_weights_and_side_files(tmp_path):
    folder = make_safetensors_folder(tmp_path / "minilm")
    plan = plan_for("FROM minilm\n", tmp_path)
    assert plan.request["files"] == {
        "model.safetensors": sha(b"weights"),
        "config.json": sha(b"{}"),
        "tokenizer.json": sha(b'{"t":1}'),
        "1_Pooling/config.json": sha(b'{"pool":1}'),
    }
    assert {u.path for u in plan.uploads} == {folder / n for n in plan.request["files"]}


def test_folder_weight_preference_and_nothing_found(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    with pytest.raises(ModelfileError, match="no Modelfile or safetensors files found"):
        model_files(folder)
    (folder / "a.bin").write_bytes(b"1")
    assert [p.name for p in model_files(folder)] == ["a.bin"]
    (folder / "b.gguf").write_bytes(b"2")
    assert [p.name for p in model_files(folder)] == ["b.gguf"]  # .gguf is preferred over .bin


def test_folder_symlink_leading_outside_is_refused(tmp_path):
    folder = make_safetensors_folder(tmp_path / "m")
    (tmp_path / "secret.json").write_text("{}")
    (folder / "leak.json").symlink_to(tmp_path / "secret.json")
    with pytest.raises(ModelfileError, match="insecure path"):
        model_files(folder)


def test_request_file_names():
    assert request_file_names([]) == {}
    from pathlib import Path

    a, b = Path("/x/y/a.gguf"), Path("/x/z/b.gguf")
    assert request_file_names([a]) == {a: "a.gguf"}
    assert request_file_names([a, b]) == {a: "y/a.gguf", b: "z/b.gguf"}


def test_adapters_and_draft(tmp_path):
    (tmp_path / "base.gguf").write_bytes(b"base")
    (tmp_path / "lora.gguf").write_bytes(b"lora")
    (tmp_path / "draft.gguf").write_bytes(b"draft")
    plan = plan_for("FROM base.gguf\nADAPTER lora.gguf\nDRAFT draft.gguf\n", tmp_path)
    assert plan.request["adapters"] == {"lora.gguf": sha(b"lora")}
    assert plan.request["draft_files"] == {"draft.gguf": sha(b"draft")}
    assert len(plan.uploads) == 3
    with pytest.raises(
        ModelfileError, match=r"\(line 2\): DRAFT must not reference the same local path as FROM"
    ):
        plan_for("FROM base.gguf\nDRAFT ./base.gguf\n", tmp_path)
    with pytest.raises(
        ModelfileError, match=r"\(line 2\): DRAFT must not reference the same local path as FROM"
    ):
        plan_for("DRAFT base.gguf\nFROM base.gguf\n", tmp_path)


def test_missing_adapter_is_an_error_with_its_line(tmp_path):
    with pytest.raises(ModelfileError, match=r"\(line 3\): ADAPTER missing.gguf: no such file"):
        plan_for("FROM base\n\nADAPTER missing.gguf\n", tmp_path)


def test_same_file_twice_is_hashed_and_uploaded_once(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"same")
    plan = plan_for("FROM m.gguf\nFROM ./m.gguf\n", tmp_path)
    assert plan.request["files"] == {"m.gguf": sha(b"same")}
    assert len(plan.uploads) == 1


def test_text_fields_lists_and_typed_parameters(tmp_path):
    warnings = []
    text = (
        "FROM base\nTEMPLATE {{ .Prompt }}\nSYSTEM be brief\nLICENSE MIT\nLICENSE Apache-2.0\n"
        "MESSAGE user hi\nMESSAGE assistant hello\nREQUIRES v0.14.0\nRENDERER r\nPARSER p\n"
        "PARAMETER stop a\nPARAMETER stop b\nPARAMETER num_ctx 2048\nPARAMETER use_mlock true\n"
    )
    plan = plan_for(text, tmp_path, warnings.append)
    assert plan.request == {
        "from": "base",
        "template": "{{ .Prompt }}",
        "system": "be brief",
        "license": ["MIT", "Apache-2.0"],
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        "requires": "0.14.0",
        "renderer": "r",
        "parser": "p",
        "parameters": {"stop": ["a", "b"], "num_ctx": 2048},
    }
    assert warnings == ["warning: parameter use_mlock is deprecated"]


def test_bad_requires_has_its_line(tmp_path):
    with pytest.raises(ModelfileError, match=r"^\(line 2\): requires must be a valid semver"):
        plan_for("FROM base\nREQUIRES soon\n", tmp_path)


def test_unknown_home_folder_is_a_modelfile_error(tmp_path):
    with pytest.raises(ModelfileError, match="cannot find the home folder"):
        plan_for("FROM ~no_such_user_here_xyz/m.gguf\n", tmp_path)


def test_a_second_from_adds_the_projector_file(tmp_path):
    """``FROM model.gguf`` then ``FROM mmproj.gguf``: both go in ``files``; the server tells the
    projector from the model by its metadata."""
    model, projector = tmp_path / "model.gguf", tmp_path / "mmproj.gguf"
    model.write_bytes(b"GGUF" + bytes(100))
    projector.write_bytes(b"GGUF" + bytes(50))
    plan = plan_for("FROM ./model.gguf\nFROM ./mmproj.gguf\n", tmp_path)
    assert plan.request == {
        "files": {"model.gguf": sha(model.read_bytes()), "mmproj.gguf": sha(projector.read_bytes())}
    }
