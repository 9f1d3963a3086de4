"""A JSON Schema rewritten so that the grammar engine (llguidance, which follows the JSON Schema
specification) admits what llama.cpp's JSON-schema grammar admits, which is what Ollama users get.

llama.cpp (``common/json-schema.cpp`` and ``json-schema-to-grammar.cpp``) reads an object schema
more narrowly than the specification does:

- an object that declares ``properties`` but says nothing of ``additionalProperties`` admits only
  its declared properties (the specification admits any others too);
- the declared properties come in a fixed order: the required ones in declaration order, then any
  of the optional ones, in declaration order; a ``required`` name that is not declared is not
  asked for;
- ``allOf`` over objects is one closed object with every component's properties, all of a plain
  component's properties required and those of an ``anyOf`` component optional;
- ``oneOf`` is read as ``anyOf`` (``JSON_OPTIONS`` in ``formats.py`` sets ``coerce_one_of``);
- an integer has at most 16 digits without bounds, and stays within 64 bits with one.

Without the first rule a small model invents keys of its own and, sampling, may go on adding them
until ``num_predict`` runs out. llguidance has no option for it, so the schema itself is closed:
each such object gets ``additionalProperties: false``, its ``properties`` are reordered (llguidance
keeps the order of ``properties``) and ``required`` keeps only declared names. An object that says
anything about ``additionalProperties``, and ``{"type": "object"}`` with no properties, keep their
meaning. Integers get the bounds llama.cpp's grammar implies, so a sampled number cannot run on
digit after digit (llguidance's numbers are unbounded; a ``number``'s digits cannot be bounded
through the schema, so those stay as they are).
"""

from __future__ import annotations

from typing import Any

# Keywords whose value is one subschema, a list of them, or a name -> subschema map.
_ONE = (
    "additionalProperties",
    "items",
    "not",
    "contains",
    "if",
    "then",
    "else",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "additionalItems",
)
_LIST = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")

# llama.cpp's integer: at most 16 digits unbounded; one bound leaves the other at int64's end.
_INT_DIGITS_LIMIT = 10**16 - 1
# (llguidance reads a bound through a double and refuses int64's very end, so the lower one stops
# at the nearest double inside it, 1024 short.)
_INT64_MIN, _INT64_MAX = -(2**63) + 1024, 2**63 - 1


def close_schema(schema: dict) -> dict:
    """``schema`` with llama.cpp's object semantics made explicit (a new dict; the input is left
    as it is). Nesting depth is bounded by the caller (``json.dumps`` of it succeeded)."""
    return _Closer(schema).visit(schema)


class _Closer:
    def __init__(self, root: dict):
        self.root = root
        self.resolving: set[str] = set()  # refs being followed: a loop through allOf stops here

    def visit(self, node):
        if not isinstance(node, dict):
            return node  # true / false schemas, or malformed values llguidance will report
        out = dict(node)
        for key in _ONE:
            if isinstance(out.get(key), (dict, list)):
                out[key] = (
                    [self.visit(n) for n in out[key]]
                    if isinstance(out[key], list)
                    else self.visit(out[key])
                )
        for key in _LIST:
            if isinstance(out.get(key), list):
                out[key] = [self.visit(n) for n in out[key]]
        for key in _MAP:
            if isinstance(out.get(key), dict):
                out[key] = {name: self.visit(sub) for name, sub in out[key].items()}
        _bound_integer(out)
        if _is_plain_object(out):
            return _closed(out)
        if _is_object_all_of(out):
            merged = self._merge_all_of(out)
            if merged is not None:
                return merged
        return out

    def _merge_all_of(self, node: dict) -> dict | None:
        """llama.cpp's ``allOf``: one object holding every component's properties, or None when a
        component is not an object (then llguidance intersects the components as the
        specification says)."""
        properties: dict = {}
        required: list[str] = []
        for child in node["allOf"]:
            alternatives = child.get("anyOf") if isinstance(child, dict) else None
            components = alternatives if isinstance(alternatives, list) else [child]
            for component in components:
                target = self._resolve(component)
                if not isinstance(target, dict) or not isinstance(target.get("properties"), dict):
                    return None
                for name, sub in target["properties"].items():
                    properties[name] = sub
                    if alternatives is None and name not in required:
                        required.append(name)
        kept = {
            k: v for k, v in node.items() if k not in ("allOf", "type", "properties", "required")
        }
        return _closed({**kept, "type": "object", "properties": properties, "required": required})

    def _resolve(self, node, depth: int = 0):
        """A local ``$ref`` followed to what it names (visited, so it is closed too)."""
        ref = node.get("$ref") if isinstance(node, dict) else None
        if not isinstance(ref, str):
            return node
        if depth > 32 or not ref.startswith("#") or ref in self.resolving:
            return None
        target: Any = self.root
        for part in ref[1:].split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                return None
        self.resolving.add(ref)
        try:
            return self._resolve(self.visit(target), depth + 1)
        finally:
            self.resolving.discard(ref)


def _types(node: dict) -> list:
    kind = node.get("type")
    return kind if isinstance(kind, list) else [kind]


def _is_plain_object(node: dict) -> bool:
    """An object schema llama.cpp builds from its ``properties`` alone: ``$ref``, ``anyOf`` and
    ``oneOf`` take precedence over everything beside them there, so those nodes are left alone."""
    if any(key in node for key in ("$ref", "anyOf", "oneOf")):
        return False
    if not isinstance(node.get("properties"), dict) or "additionalProperties" in node:
        return False
    types = _types(node)
    return "object" in types or types == [None]


def _bound_integer(node: dict) -> None:
    types = _types(node)
    if (
        "integer" not in types
        or "number" in types
        or any(k in node for k in ("$ref", "anyOf", "oneOf", "enum", "const"))
    ):
        return
    low = "minimum" in node or "exclusiveMinimum" in node
    high = "maximum" in node or "exclusiveMaximum" in node
    if not low and not high:
        node["minimum"], node["maximum"] = -_INT_DIGITS_LIMIT, _INT_DIGITS_LIMIT
    elif not high:
        node["maximum"] = _INT64_MAX
    elif not low:
        node["minimum"] = _INT64_MIN


def _is_object_all_of(node: dict) -> bool:
    if any(key in node for key in ("$ref", "anyOf", "oneOf", "properties", "additionalProperties")):
        return False
    return (
        isinstance(node.get("allOf"), list)
        and bool(node["allOf"])
        and _types(node) in (["object"], [None])
    )


def _closed(node: dict) -> dict:
    properties = node["properties"]
    listed = node.get("required")
    wanted = listed if isinstance(listed, list) else []
    required = [name for name in properties if name in wanted]
    optional = [name for name in properties if name not in wanted]
    out = {
        **node,
        "properties": {name: properties[name] for name in required + optional},
        "additionalProperties": False,
    }
    if "required" in node or required:
        out["required"] = required
    return out
