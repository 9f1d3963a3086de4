"""``ollamakit.names``: Ollama's model names, and that every name it accepts is safe as the four
folder names of a manifest's path."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ollamakit.names import ModelName


@pytest.mark.parametrize(
    ("text", "parts", "scheme"),
    [
        ("llama3", ("registry.ollama.ai", "library", "llama3", "latest"), "https"),
        ("llama3:8b", ("registry.ollama.ai", "library", "llama3", "8b"), "https"),
        ("me/mine:v1.2", ("registry.ollama.ai", "me", "mine", "v1.2"), "https"),
        ("example.com/team/model", ("example.com", "team", "model", "latest"), "https"),
        (
            "localhost:5000/team/model:q4_K_M",
            ("localhost:5000", "team", "model", "q4_K_M"),
            "https",
        ),
        ("http://localhost:5000/team/model", ("localhost:5000", "team", "model", "latest"), "http"),
        (
            "Mixed_Case/Model-1.5",
            ("registry.ollama.ai", "Mixed_Case", "Model-1.5", "latest"),
            "https",
        ),
    ],
)
def test_names_fill_in_what_they_leave_out(text, parts, scheme):
    name = ModelName.parse(text)
    assert name is not None and name.parts == parts and name.scheme == scheme


@pytest.mark.parametrize(
    "text",
    [
        "",
        "model:",  # an empty tag
        ":tag",
        "team/",
        "/model",
        "a/b/c/d",  # four parts
        "model@sha256:" + "0" * 64,  # digests are not names here
        "-model",
        ".model",
        "team/.model",
        "../model",  # a path out of manifests/
        "host/../model",
        "a b",
        "model:ta/g",
        "ftp://host/team/model",
        "m" * 81,
        "model:" + "t" * 81,
        "ns" * 41 + "/model",
        "mödel",
    ],
)
def test_bad_names_are_refused(text):
    assert ModelName.parse(text) is None


@pytest.mark.parametrize("value", [None, 3, b"llama3", ["llama3"]])
def test_only_strings_are_names(value):
    assert ModelName.parse(value) is None


def test_the_longest_parts_allowed():
    assert ModelName.parse("m" * 80 + ":" + "t" * 80) is not None
    assert ModelName.parse("h" * 350 + "/" + "n" * 80 + "/m") is not None
    assert ModelName.parse("h" * 351 + "/n/m") is None


def test_names_match_without_case_and_show_as_written():
    a, b = ModelName.parse("Team/Model:Tag"), ModelName.parse("team/model:TAG")
    assert a != b and a.key() == b.key()
    assert str(a) == "Team/Model:Tag"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("llama3", "llama3:latest"),
        ("Registry.Ollama.AI/Library/llama3", "llama3:latest"),  # defaults compared without case
        ("me/mine", "me/mine:latest"),
        ("example.com/library/m:t", "example.com/library/m:t"),
    ],
)
def test_the_shortest_display_leaves_out_the_defaults(text, shown):
    name = ModelName.parse(text)
    assert name.display_shortest() == shown
    assert ModelName.parse(shown).key() == name.key()  # and means the same model


NAME_CHARACTERS = string.ascii_letters + string.digits + "_.:-/@ \\\x00"


@given(st.text(alphabet=NAME_CHARACTERS, max_size=30) | st.text(max_size=30))
def test_an_accepted_name_is_four_safe_folder_names(text):
    name = ModelName.parse(text)
    if name is None:
        return
    for part in name.parts:
        assert part and part not in (".", "..") and part[0] not in ".-"
        assert "/" not in part and "\\" not in part and "\x00" not in part and ".." != part
    assert ModelName.parse(name.display_full()) == ModelName(*name.parts)  # parsing is stable
