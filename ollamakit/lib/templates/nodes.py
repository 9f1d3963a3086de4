"""The parse tree of a Go template. Node names follow text/template/parse, so the heuristics
Ollama runs over its trees (variables used, thinking tags, the legacy ``.Response`` cut) read
the same here."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Node:
    pos: int = field(default=0, kw_only=True)


@dataclass
class ListNode(Node):
    nodes: list


@dataclass
class TextNode(Node):
    text: str


@dataclass
class FieldNode(Node):
    ident: list  # [".A", ".B"] -> ["A", "B"]


@dataclass
class VariableNode(Node):
    ident: list  # ["$x", "Field", ...]


@dataclass
class ChainNode(Node):
    node: Node
    fields: list


@dataclass
class IdentifierNode(Node):
    name: str


@dataclass
class DotNode(Node):
    pass


@dataclass
class NilNode(Node):
    pass


@dataclass
class BoolNode(Node):
    value: bool


@dataclass
class NumberNode(Node):
    value: object
    text: str


@dataclass
class StringNode(Node):
    value: str
    quoted: str


@dataclass
class CommandNode(Node):
    args: list


@dataclass
class PipeNode(Node):
    decl: list  # VariableNodes
    cmds: list  # CommandNodes
    is_assign: bool = False


@dataclass
class ActionNode(Node):
    pipe: PipeNode


@dataclass
class BranchNode(Node):
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None


@dataclass
class IfNode(BranchNode):
    pass


@dataclass
class RangeNode(BranchNode):
    pass


@dataclass
class WithNode(BranchNode):
    pass


@dataclass
class TemplateNode(Node):
    name: str
    pipe: PipeNode | None


@dataclass
class BreakNode(Node):
    pass


@dataclass
class ContinueNode(Node):
    pass


def children(node: Node) -> list:
    """The direct sub-nodes of a node, in source order (pipelines before bodies)."""
    if isinstance(node, ListNode):
        return list(node.nodes)
    if isinstance(node, ActionNode):
        return [node.pipe]
    if isinstance(node, BranchNode):
        return [n for n in (node.pipe, node.list, node.else_list) if n is not None]
    if isinstance(node, TemplateNode):
        return [node.pipe] if node.pipe is not None else []
    if isinstance(node, PipeNode):
        return list(node.cmds)
    if isinstance(node, CommandNode):
        return list(node.args)
    if isinstance(node, ChainNode):
        return [node.node]
    return []
