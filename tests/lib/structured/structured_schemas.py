"""JSON Schemas whose answers are short by construction (bounded strings, enums, small arrays),
so a sampled answer always ends on its own; shared by the structured-output tests."""

SHORT = {"type": "string", "maxLength": 16}

SCHEMAS = {
    "boolean_flag": {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    },
    "person": {
        "type": "object",
        "properties": {"name": SHORT, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
        "required": ["name", "age"],
        "additionalProperties": False,
    },
    "color_enum": {
        "type": "object",
        "properties": {"color": {"enum": ["red", "green", "blue"]}},
        "required": ["color"],
        "additionalProperties": False,
    },
    "const_version": {
        "type": "object",
        "properties": {"version": {"const": 2}, "stable": {"type": "boolean"}},
        "required": ["version", "stable"],
        "additionalProperties": False,
    },
    "tags_array": {
        "type": "object",
        "properties": {
            "tags": {
                "type": "array",
                "items": {"type": "string", "maxLength": 10},
                "minItems": 1,
                "maxItems": 3,
            }
        },
        "required": ["tags"],
        "additionalProperties": False,
    },
    "top_level_array": {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": 9},
        "minItems": 2,
        "maxItems": 4,
    },
    "nested_object": {
        "type": "object",
        "properties": {
            "address": {
                "type": "object",
                "properties": {"city": SHORT, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                "required": ["city", "zip"],
                "additionalProperties": False,
            }
        },
        "required": ["address"],
        "additionalProperties": False,
    },
    "any_of": {
        "type": "object",
        "properties": {
            "value": {
                "anyOf": [{"type": "integer", "minimum": 0, "maximum": 99}, {"type": "boolean"}]
            }
        },
        "required": ["value"],
        "additionalProperties": False,
    },
    "refs_and_defs": {
        "$defs": {
            "point": {
                "type": "object",
                "properties": {
                    "x": {"type": "integer", "minimum": -9, "maximum": 9},
                    "y": {"type": "integer", "minimum": -9, "maximum": 9},
                },
                "required": ["x", "y"],
                "additionalProperties": False,
            }
        },
        "type": "object",
        "properties": {"start": {"$ref": "#/$defs/point"}, "end": {"$ref": "#/$defs/point"}},
        "required": ["start", "end"],
        "additionalProperties": False,
    },
    "pattern_code": {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"}},
        "required": ["code"],
        "additionalProperties": False,
    },
    "date_format": {
        "type": "object",
        "properties": {"day": {"type": "string", "format": "date"}},
        "required": ["day"],
        "additionalProperties": False,
    },
    "nullable": {
        "type": "object",
        "properties": {"note": {"type": ["string", "null"], "maxLength": 8}},
        "required": ["note"],
        "additionalProperties": False,
    },
    "enum_mixed": {
        "type": "object",
        "properties": {"level": {"enum": [1, 2, 3, "max", None]}},
        "required": ["level"],
        "additionalProperties": False,
    },
    "bounded_number": {
        "type": "object",
        "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1, "multipleOf": 0.01}},
        "required": ["score"],
        "additionalProperties": False,
    },
    "min_length_string": {
        "type": "object",
        "properties": {
            "word": {"type": "string", "minLength": 3, "maxLength": 8, "pattern": "^[a-z]+$"}
        },
        "required": ["word"],
        "additionalProperties": False,
    },
    "array_of_objects": {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "maxItems": 2,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer", "minimum": 1, "maximum": 99},
                        "done": {"type": "boolean"},
                    },
                    "required": ["id", "done"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["items"],
        "additionalProperties": False,
    },
    "one_of_shapes": {
        "oneOf": [
            {
                "type": "object",
                "properties": {
                    "kind": {"const": "circle"},
                    "r": {"type": "integer", "minimum": 1, "maximum": 9},
                },
                "required": ["kind", "r"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {
                    "kind": {"const": "square"},
                    "side": {"type": "integer", "minimum": 1, "maximum": 9},
                },
                "required": ["kind", "side"],
                "additionalProperties": False,
            },
        ]
    },
    "optional_fields": {
        "type": "object",
        "properties": {"title": SHORT, "draft": {"type": "boolean"}},
        "required": ["title"],
        "additionalProperties": False,
    },
    "recursive_tree": {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "v": {"type": "integer", "minimum": 0, "maximum": 9},
                    "kids": {"type": "array", "maxItems": 1, "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["v", "kids"],
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/node",
    },
    "pattern_properties": {
        "type": "object",
        "maxProperties": 3,
        "additionalProperties": False,
        "patternProperties": {"^[a-z]{1,8}$": {"type": "integer", "minimum": 0, "maximum": 9}},
    },
    "email_format": {
        "type": "object",
        "properties": {"email": {"type": "string", "format": "email", "maxLength": 24}},
        "required": ["email"],
        "additionalProperties": False,
    },
}

# Valid JSON Schemas the engine cannot enforce: asking for them must be a 400, never an
# unconstrained answer.
UNENFORCEABLE = {
    "not": {"not": {"type": "string"}},
    "unique_items": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
    "unknown_type": {"type": "decimal"},
    "missing_ref": {"$ref": "#/$defs/nowhere"},
    "if_then": {"if": {"type": "string"}, "then": {"maxLength": 3}},
    "property_names": {"type": "object", "propertyNames": {"maxLength": 3}},
    # $ref loops with no way out: no finite value satisfies them, so an answer could never end.
    "self_ref": {"$ref": "#"},
    "ref_cycle": {
        "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}},
        "$ref": "#/$defs/a",
    },
    "requires_itself": {
        "type": "object",
        "properties": {"next": {"$ref": "#"}},
        "required": ["next"],
    },
    "nonempty_array_of_itself": {"type": "array", "items": {"$ref": "#"}, "minItems": 1},
}
