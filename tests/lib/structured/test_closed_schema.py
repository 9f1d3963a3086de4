"""Schemas read as llama.cpp reads them: an object without ``additionalProperties`` admits only its
declared properties, required ones first, in declaration order. Checked twice: on the rewritten
schema, and on what the compiled grammar accepts, byte by byte."""

from __future__ import annotations

import json

import pytest

from ollamakit.errors import BadRequest
from ollamakit_scheduler.testing import FakeTokenizer, VOCAB
from ollamakit.lib.structured import Constraint, parse_format
from ollamakit.lib.structured.closed_schema import close_schema


def accepts(schema, text: str) -> bool:
    """Whether ``format: schema`` admits exactly ``text`` (bytes are tokens of the fake tokenizer)."""
    constraint = Constraint(parse_format(schema), FakeTokenizer(), VOCAB)
    for byte in text.encode():
        if not constraint.allowed()[byte]:
            return False
        constraint.advance(byte)
    return constraint.accepting


PET = {
    "type": "object",
    "properties": {
        "nickname": {"type": "string"},
        "name": {"type": "string"},
        "age": {"type": "integer"},
    },
    "required": ["name", "age"],
}


def test_an_object_without_additional_properties_is_closed_and_required_first():
    closed = close_schema(PET)
    assert closed["additionalProperties"] is False
    assert list(closed["properties"]) == ["name", "age", "nickname"]
    assert closed["required"] == ["name", "age"]
    assert (
        "additionalProperties" not in PET and list(PET["properties"])[0] == "nickname"
    )  # input untouched


def test_the_grammar_admits_only_declared_properties_in_llama_cpp_order():
    assert accepts(PET, '{"name": "Rex", "age": 3}')
    assert accepts(PET, '{"name": "Rex", "age": 3, "nickname": "R"}')
    assert not accepts(PET, '{"nickname": "R", "name": "Rex", "age": 3}')  # optional ones come last
    assert not accepts(PET, '{"age": 3, "name": "Rex"}')
    assert not accepts(PET, '{"name": "Rex", "age": 3, "owner": "Ann"}')
    assert not accepts(PET, '{"name": "Rex"}')


def test_optional_properties_any_subset_in_declaration_order():
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "integer"},
            "c": {"type": "integer"},
        },
    }
    for text in ("{}", '{"a": 1}', '{"b": 2}', '{"a": 1, "c": 3}', '{"a": 1, "b": 2, "c": 3}'):
        assert accepts(schema, text), text
    assert not accepts(schema, '{"c": 3, "a": 1}')
    assert not accepts(schema, '{"d": 4}')


def test_an_explicit_additional_properties_keeps_its_meaning():
    open_ = {**PET, "additionalProperties": True}
    closed = close_schema(open_)
    assert closed["additionalProperties"] is True and list(closed["properties"]) == list(
        PET["properties"]
    )
    assert accepts(open_, '{"nickname": "R", "name": "Rex", "age": 3, "owner": "Ann"}')
    typed = {**PET, "additionalProperties": {"type": "integer"}}
    assert list(close_schema(typed)["properties"]) == list(PET["properties"])
    assert accepts(typed, '{"name": "Rex", "age": 3, "legs": 4}')
    assert not accepts(typed, '{"name": "Rex", "age": 3, "owner": "Ann"}')


def test_format_json_and_a_bare_object_still_admit_any_object():
    assert close_schema({"type": "object"}) == {"type": "object"}
    assert accepts("json", '{"anything": [1, {"goes": true}]}')
    assert accepts({"type": "object"}, '{"x": 1}')


def test_nested_objects_and_arrays_of_objects_are_closed():
    schema = {
        "type": "object",
        "properties": {
            "owner": {
                "type": "object",
                "properties": {"email": {"type": "string"}, "name": {"type": "string"}},
                "required": ["name"],
            },
            "pets": {
                "type": "array",
                "items": {"properties": {"kind": {"enum": ["cat", "dog"]}}, "required": ["kind"]},
            },
            "pair": {
                "type": "array",
                "prefixItems": [{"type": "object", "properties": {"x": {"type": "integer"}}}],
            },
        },
        "required": ["owner", "pets"],
    }
    closed = close_schema(schema)
    owner = closed["properties"]["owner"]
    assert owner["additionalProperties"] is False and list(owner["properties"]) == ["name", "email"]
    assert (
        closed["properties"]["pets"]["items"]["additionalProperties"] is False
    )  # no "type": still an object
    assert closed["properties"]["pair"]["prefixItems"][0]["additionalProperties"] is False
    assert list(closed["properties"]) == ["owner", "pets", "pair"]
    assert accepts(schema, '{"owner": {"name": "Ann", "email": "a@b"}, "pets": [{"kind": "cat"}]}')
    assert not accepts(schema, '{"owner": {"name": "Ann", "age": 40}, "pets": []}')
    assert not accepts(schema, '{"owner": {"name": "Ann"}, "pets": [{"kind": "cat", "lives": 9}]}')


def test_defs_and_refs_are_closed_where_they_are_defined():
    schema = {
        "$defs": {
            "Point": {
                "type": "object",
                "properties": {"y": {"type": "integer"}, "x": {"type": "integer"}},
                "required": ["x", "y"],
            }
        },
        "type": "object",
        "properties": {
            "start": {"$ref": "#/$defs/Point"},
            "end": {"$ref": "#/$defs/Point", "description": "where"},
        },
        "required": ["start"],
    }
    closed = close_schema(schema)
    assert closed["$defs"]["Point"]["additionalProperties"] is False
    assert list(closed["$defs"]["Point"]["properties"]) == [
        "y",
        "x",
    ]  # all required: declaration order
    assert (
        closed["properties"]["end"] == schema["properties"]["end"]
    )  # a $ref node is what it names
    assert accepts(schema, '{"start": {"y": 2, "x": 1}}')
    assert not accepts(schema, '{"start": {"y": 2, "x": 1, "z": 3}}')
    assert not accepts(schema, '{"start": {"x": 1, "y": 2}}')


def test_any_of_alternatives_are_closed_one_by_one():
    schema = {
        "anyOf": [
            {
                "type": "object",
                "properties": {"kind": {"const": "circle"}, "r": {"type": "number"}},
                "required": ["kind", "r"],
            },
            {
                "type": ["object", "null"],
                "properties": {"kind": {"const": "square"}, "side": {"type": "number"}},
            },
        ]
    }
    closed = close_schema(schema)
    assert all(alt["additionalProperties"] is False for alt in closed["anyOf"])
    assert accepts(schema, '{"kind": "circle", "r": 1}')
    assert accepts(schema, '{"kind": "square"}')
    assert accepts(schema, "null")
    assert not accepts(schema, '{"kind": "circle", "r": 1, "side": 2}')


def test_one_of_is_read_as_any_of():
    schema = {
        "oneOf": [{"type": "integer"}, {"type": "number"}]
    }  # overlapping: llguidance alone refuses it
    assert accepts(schema, "3")


def test_all_of_objects_merge_into_one_closed_object():
    schema = {
        "$defs": {"Named": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "allOf": [
            {"$ref": "#/$defs/Named"},
            {"type": "object", "properties": {"age": {"type": "integer"}}},
            {"anyOf": [{"type": "object", "properties": {"tag": {"type": "string"}}}]},
        ],
    }
    closed = close_schema(schema)
    assert "allOf" not in closed and closed["additionalProperties"] is False
    assert list(closed["properties"]) == ["name", "age", "tag"]
    assert closed["required"] == ["name", "age"]  # a plain component's properties are all required
    assert accepts(schema, '{"name": "Ann", "age": 3}')
    assert accepts(schema, '{"name": "Ann", "age": 3, "tag": "x"}')
    assert not accepts(schema, '{"name": "Ann"}')
    assert not accepts(schema, '{"name": "Ann", "age": 3, "other": 1}')


def test_all_of_that_is_not_objects_is_left_to_the_intersection():
    schema = {"allOf": [{"type": "string"}, {"maxLength": 3}]}
    assert close_schema(schema) == schema
    assert accepts(schema, '"abc"') and not accepts(schema, '"abcd"')


def test_integers_have_llama_cpps_bounds():
    assert accepts({"type": "integer"}, "9" * 16) and accepts({"type": "integer"}, "-" + "9" * 16)
    assert not accepts({"type": "integer"}, "1" * 17)  # a sampled integer cannot run on
    assert accepts({"type": "integer", "minimum": 0}, str(2**63 - 1))
    assert not accepts({"type": "integer", "minimum": 0}, str(2**63))
    assert accepts({"type": "integer", "maximum": 5}, str(-(2**63) + 1024)) and not accepts(
        {"type": "integer", "maximum": 5}, "6"
    )
    assert close_schema({"type": "integer", "minimum": 1, "maximum": 3}) == {
        "type": "integer",
        "minimum": 1,
        "maximum": 3,
    }
    nested = close_schema({"type": "object", "properties": {"n": {"type": ["integer", "null"]}}})
    assert nested["properties"]["n"]["maximum"] == 10**16 - 1
    assert close_schema({"type": ["integer", "number"]}) == {
        "type": ["integer", "number"]
    }  # would bound numbers too


def test_required_names_that_are_not_declared_are_not_asked_for():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a", "ghost"],
    }
    assert close_schema(schema)["required"] == ["a"]
    assert accepts(schema, '{"a": 1}')


def test_a_pydantic_schema_is_closed_at_every_level():
    import pydantic

    class Toy(pydantic.BaseModel):
        name: str

    class Pet(pydantic.BaseModel):
        species: str
        toy: Toy | None = None
        name: str
        age: int

    schema = Pet.model_json_schema()
    assert "additionalProperties" not in json.dumps(schema)
    closed = close_schema(schema)
    assert list(closed["properties"]) == ["species", "name", "age", "toy"]
    assert closed["$defs"]["Toy"]["additionalProperties"] is False
    assert accepts(schema, '{"species": "cat", "name": "Tom", "age": 3, "toy": {"name": "ball"}}')
    assert accepts(schema, '{"species": "cat", "name": "Tom", "age": 3, "toy": null}')
    assert not accepts(schema, '{"species": "cat", "name": "Tom", "age": 3, "color": "grey"}')


def test_ref_loops_through_all_of_still_end_or_are_refused():
    loop = {"$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}
    close_schema(loop)  # terminates
    with pytest.raises(BadRequest):
        parse_format(
            {"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["next"]}
        )
