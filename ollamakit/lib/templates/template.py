"""A parsed Ollama prompt template and the facts Ollama reads from its tree: which variables it
uses, its capabilities, its thinking tags and its tool-call tag."""

from __future__ import annotations

import copy

from ollamakit.errors import BadRequest

from .executor import Executor
from .functions import FUNCTIONS
from .lexer import TemplateSyntaxError
from .nodes import (
    ActionNode,
    BranchNode,
    CommandNode,
    FieldNode,
    IfNode,
    ListNode,
    PipeNode,
    RangeNode,
    TemplateNode,
    TextNode,
    VariableNode,
    WithNode,
)
from .parser import parse

DEFAULT_TEMPLATE = "{{ .Prompt }}"


class Template:
    """A Go template as Ollama uses it (``missingkey=zero``, Ollama's extra functions)."""

    def __init__(self, text: str):
        try:
            root, defined = parse(text, FUNCTIONS)
        except TemplateSyntaxError as err:
            raise BadRequest(f"template error: {err}") from None
        except RecursionError:
            raise BadRequest("template error: template is nested too deeply") from None
        self.raw = text
        self.root = root
        self.defined = defined
        self._vars = _collect_vars(root, defined)
        if "messages" not in self._vars and "response" not in self._vars:
            # Ollama appends {{ .Response }} so a prompt-only template still frames the answer.
            response = ActionNode(
                PipeNode([], [CommandNode([FieldNode(["Response"], pos=len(text))])]), pos=len(text)
            )
            self.root.nodes.append(response)

    def __str__(self) -> str:
        return self.raw

    def __repr__(self) -> str:
        return f"Template({self.raw!r})"

    @property
    def vars(self) -> list[str]:
        """Field and variable names the template mentions, lower-cased and sorted."""
        return sorted(self._vars)

    @property
    def uses_messages(self) -> bool:
        return "messages" in self._vars

    def contains(self, text: str) -> bool:
        return text in self.raw

    def execute(self, data) -> str:
        """Run the template; :class:`TemplateExecutionError` (a 500) if it fails."""
        return Executor(self.raw, self.defined).run(self.root, data)

    def execute_until_response(self, data) -> str:
        """Run the template with everything after the first ``.Response`` removed, as Ollama
        does for the final turn of a legacy template so generation continues from there."""
        return Executor(self.raw, self.defined).run(cut_after_response(self.root), data)

    def capabilities(self) -> set[str]:
        caps = set()
        if "tools" in self._vars:
            caps.add("tools")
        if "suffix" in self._vars:
            caps.add("insert")
        opening, closing = self.thinking_tags()
        if opening and closing:
            caps.add("thinking")
        return caps

    def thinking_tags(self) -> tuple[str, str]:
        return infer_thinking_tags(self.root)

    def tool_call_tag(self) -> str:
        return tool_call_tag(self.root)


def parse_template(text: str) -> Template:
    """Parse a Go template; raise ``BadRequest("template error: ...")`` if it is invalid."""
    if not isinstance(text, str):
        raise BadRequest("template error: template must be a string")
    return Template(text)


def template_capabilities(text: str | Template) -> set[str]:
    """The subset of {'tools', 'insert', 'thinking'} a Go template offers (empty if it does not
    parse, as Ollama ignores a broken template here)."""
    if isinstance(text, Template):
        return text.capabilities()
    try:
        return Template(text).capabilities()
    except BadRequest:
        return set()


# -- variables ---------------------------------------------------------------------------------


def _collect_vars(root: ListNode, defined: dict) -> set[str]:
    names: list[str] = []
    for tree in [root, *defined.values()]:
        _identifiers(tree, names)
    return {n.lower() for n in names}


def _identifiers(node, out: list):
    # Mirrors Ollama's walk: fields and variables count, chains and function names do not.
    if isinstance(node, ListNode):
        for child in node.nodes:
            _identifiers(child, out)
    elif isinstance(node, (ActionNode, TemplateNode)):
        if node.pipe is not None:
            _identifiers(node.pipe, out)
    elif isinstance(node, BranchNode):
        _identifiers(node.pipe, out)
        _identifiers(node.list, out)
        if node.else_list is not None:
            _identifiers(node.else_list, out)
    elif isinstance(node, PipeNode):
        for cmd in node.cmds:
            for arg in cmd.args:
                _identifiers(arg, out)
    elif isinstance(node, (FieldNode, VariableNode)):
        out.extend(node.ident)


# -- the legacy cut ----------------------------------------------------------------------------


def cut_after_response(root: ListNode) -> ListNode:
    """A copy of the tree without anything that follows the first ``.Response`` field."""
    state = {"cut": False}

    def gone(node) -> bool:
        if isinstance(node, FieldNode) and "Response" in node.ident:
            state["cut"] = True
            return False
        return state["cut"]

    def walk(node):
        if gone(node):
            return None
        if isinstance(node, ListNode):
            node.nodes = [n for n in (walk(c) for c in node.nodes) if n is not None]
        elif isinstance(node, BranchNode):
            # The branch's own pipeline is not searched: {{ if .Response }} does not cut.
            node.list = walk(node.list) or ListNode([])
            if node.else_list is not None:
                node.else_list = walk(node.else_list) or ListNode([])
        elif isinstance(node, ActionNode):
            pipe = walk(node.pipe)
            if pipe is None:
                return None
            node.pipe = pipe
        elif isinstance(node, PipeNode):
            commands = []
            for cmd in node.cmds:
                args = [a for a in (walk(x) for x in cmd.args) if a is not None]
                if not args:
                    return None
                cmd.args = args
                commands.append(cmd)
            node.cmds = commands
        return node

    return walk(copy.deepcopy(root)) or ListNode([])


# -- thinking and tool-call tags -------------------------------------------------------------


def infer_thinking_tags(root: ListNode) -> tuple[str, str]:
    """Ollama's heuristic: a ``.Thinking`` inside ``range .Messages``; the nearest enclosing
    list's first and last text nodes are the opening and closing tags."""
    found = {"open": "", "close": ""}
    ancestors: list = []

    def visit(node):
        if node is None:
            return
        ancestors.append(node)
        if isinstance(node, FieldNode) and node.ident and node.ident[0] == "Thinking":
            rng = next((a for a in reversed(ancestors) if isinstance(a, RangeNode)), None)
            if rng is not None and _pipe_uses_field(rng.pipe, "Messages"):
                lst = next((a for a in reversed(ancestors) if isinstance(a, ListNode)), None)
                if lst is not None and lst.nodes:
                    if isinstance(lst.nodes[0], TextNode):
                        found["open"] = lst.nodes[0].text.strip()
                    if isinstance(lst.nodes[-1], TextNode):
                        found["close"] = lst.nodes[-1].text.strip()
        for child in _visit_children(node):
            visit(child)
        ancestors.pop()

    visit(root)
    return found["open"], found["close"]


def _visit_children(node) -> list:
    if isinstance(node, ListNode):
        return node.nodes
    if isinstance(node, BranchNode):
        return [node.pipe, node.list, node.else_list]
    if isinstance(node, (ActionNode, TemplateNode)):
        return [node.pipe]
    if isinstance(node, PipeNode):
        return node.cmds
    if isinstance(node, CommandNode):
        return node.args
    return []  # leaves, and chains, which Ollama's walk does not enter


def _pipe_uses_field(pipe, name: str) -> bool:
    hit = False

    def visit(node):
        nonlocal hit
        if node is None:
            return
        if isinstance(node, FieldNode) and node.ident[0] == name:
            hit = True
        for child in _visit_children(node):
            visit(child)

    visit(pipe)
    return hit


def tool_call_tag(root: ListNode) -> str:
    """The text a model writes before a tool call: the first non-blank text inside the
    ``{{ if .ToolCalls }}`` block, cut at any "{", or "{" when there is none."""
    node = _find_tool_calls_if(root.nodes)
    text = _first_text(node.list.nodes) if node is not None else None
    if text is None:
        return "{"
    tag = text.replace("\r\n", "\n").split("{", 1)[0].strip()
    return tag or "{"


def _find_tool_calls_if(nodes):
    for node in nodes:
        if isinstance(node, IfNode):
            if any(
                isinstance(a, FieldNode) and "ToolCalls" in a.ident
                for c in node.pipe.cmds
                for a in c.args
            ):
                return node
        if isinstance(node, ListNode):
            hit = _find_tool_calls_if(node.nodes)
            if hit is not None:
                return hit
        elif isinstance(node, (IfNode, RangeNode, WithNode)):
            for branch in (node.list, node.else_list):
                if branch is not None:
                    hit = _find_tool_calls_if(branch.nodes)
                    if hit is not None:
                        return hit
    return None


def _first_text(nodes):
    for node in nodes:
        if isinstance(node, TextNode):
            if node.text.strip():
                return node.text
        elif isinstance(node, ListNode):
            hit = _first_text(node.nodes)
            if hit is not None:
                return hit
        elif isinstance(node, (IfNode, RangeNode, WithNode)):
            for branch in (node.list, node.else_list):
                if branch is not None:
                    hit = _first_text(branch.nodes)
                    if hit is not None:
                        return hit
            return None
        elif isinstance(node, ActionNode):
            return None
    return None


__all__ = ["Template", "parse_template", "template_capabilities", "DEFAULT_TEMPLATE"]
