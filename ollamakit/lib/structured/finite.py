"""Does a JSON Schema admit a finite value? ``{"$ref": "#"}``, or an object that requires a
property of its own type, does not: the grammar built from it has no way to end, and the
grammar engine fails mid-answer ("NoExtensionBias", a token it allowed and then refused).
Such a schema is refused up front; a recursive schema with a way out (an optional property,
an array that may be empty) is fine.

The question is a least fixed point over the schema's nodes: a node is finite when every
keyword's condition on its children holds (all ``allOf`` parts, one ``anyOf`` part, one
allowed type, ...). It is solved as a Horn problem with counters, in time linear in the size
of the schema, and without recursion, since a schema may nest as deep as the JSON parser
allowed.
"""

from __future__ import annotations

from urllib.parse import unquote

_LEAF_TYPES = ("string", "number", "integer", "boolean", "null")


class _Node:
    """A condition: ``all`` (of its children) or ``any``; true once known to hold."""

    __slots__ = ("kind", "waiting", "parents", "true")

    def __init__(self, kind: str):
        self.kind = kind
        self.waiting = 0  # children not yet true (for ``all``)
        self.parents: list[_Node] = []
        self.true = False


class _Graph:
    def __init__(self, root):
        self.root = root
        self.nodes: dict[int, _Node] = {}  # id(schema) -> its node
        self.conditions: list[_Node] = []
        self.pending: list = []  # schemas whose keywords are still to read

    def node_for(self, schema) -> _Node:
        key = id(schema)
        node = self.nodes.get(key)
        if node is None:
            node = self.nodes[key] = _Node("all")
            self.conditions.append(node)
            self.pending.append((schema, node))
        return node

    def condition(self, kind: str, children) -> _Node:
        node = _Node(kind)
        self.conditions.append(node)
        for child in children:
            self.link(node, child)
        return node

    def link(self, parent: _Node, child: _Node) -> None:
        child.parents.append(parent)
        parent.waiting += 1

    def never(self) -> _Node:
        """A condition that never holds (an ``any`` with no children)."""
        return self.condition("any", ())

    def child(self, schema) -> _Node:
        if schema is False:
            return self.never()
        if not isinstance(schema, dict):  # ``true``, or something the grammar compiler judges
            return self.condition("all", ())
        return self.node_for(schema)

    def resolve(self, ref):
        """A local JSON pointer's target, or None (the grammar compiler reports the rest)."""
        if not isinstance(ref, str) or not ref.startswith("#"):
            return None
        target = self.root
        for token in filter(None, ref[1:].split("/")):
            token = unquote(token).replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and token in target:
                target = target[token]
            elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
                target = target[int(token)]
            else:
                return None
        return target

    def read(self, schema: dict, node: _Node) -> None:
        """Link ``node`` to the conditions its keywords put on its children."""
        if "$ref" in schema:
            target = self.resolve(schema["$ref"])
            if target is not None:
                self.link(node, self.child(target))
        for keyword in ("anyOf", "oneOf"):
            options = schema.get(keyword)
            if isinstance(options, list):
                self.link(node, self.condition("any", [self.child(s) for s in options]))
        parts = schema.get("allOf")
        if isinstance(parts, list):
            for part in parts:
                self.link(node, self.child(part))
        types = schema.get("type")
        if isinstance(types, str):
            types = [types]
        if isinstance(types, list) and ("object" in types or "array" in types):
            branches = [self.condition("all", ()) for t in types if t in _LEAF_TYPES]
            if "object" in types:
                branches.append(self.condition("all", self._required(schema)))
            if "array" in types:
                branches.append(self.condition("all", self._needed_items(schema)))
            self.link(node, self.condition("any", branches))

    def _required(self, schema: dict) -> list[_Node]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        extra = schema.get("additionalProperties", True)
        required = schema.get("required")
        names = [n for n in required if isinstance(n, str)] if isinstance(required, list) else []
        return [
            self.child(properties[n] if n in properties else extra) for n in dict.fromkeys(names)
        ]

    def _needed_items(self, schema: dict) -> list[_Node]:
        least = schema.get("minItems", 0)
        least = least if isinstance(least, int) and not isinstance(least, bool) else 0
        prefix = schema.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        needed = [self.child(s) for s in prefix[:least]]
        if least > len(prefix):
            needed.append(self.child(schema.get("items", True)))
        return needed

    def solve(self) -> bool:
        root = self.child(self.root)
        while self.pending:
            schema, node = self.pending.pop()
            self.read(schema, node)
        ready = [n for n in self.conditions if n.kind == "all" and n.waiting == 0]
        while ready:
            node = ready.pop()
            if node.true:
                continue
            node.true = True
            for parent in node.parents:
                if parent.true:
                    continue
                parent.waiting -= 1
                if parent.kind == "any" or parent.waiting == 0:
                    ready.append(parent)
        return root.true


def has_finite_value(schema) -> bool:
    """Whether some finite JSON value can satisfy ``schema``'s structure."""
    return _Graph(schema).solve()
