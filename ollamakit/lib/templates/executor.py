"""Runs a parsed template against data with Go's semantics: truth, scoping of variables,
``range`` over lists, maps (sorted keys) and integers, ``missingkey=zero`` for maps, and errors
worded as text/template words them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from ollamakit.errors import OllamaError

from .functions import FUNCTIONS, ArityError, FuncError
from .nodes import (
    ActionNode,
    BoolNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    IfNode,
    ListNode,
    NilNode,
    NumberNode,
    PipeNode,
    RangeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
    WithNode,
)
from .values import Struct, format_v, is_int, truth, type_name

MAX_TEMPLATE_DEPTH = 100
# Templates come from users (TEMPLATE lines, request fields): bound the work one may ask for.
MAX_STEPS = 2_000_000
MAX_OUTPUT = 64 << 20


class TemplateExecutionError(OllamaError):
    """A template failed while running; the API reports it as a 500, like Ollama."""

    status = 500


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Fail(Exception):
    def __init__(self, message: str, node=None):
        super().__init__(message)
        self.message, self.node = message, node


class Executor:
    def __init__(self, source: str, defined: dict, name: str = ""):
        self.source = source
        self.defined = defined
        self.name = name
        self.out: list[str] = []
        self.size = 0
        self.steps = 0
        self.depth = 0
        self.vars: list[list] = []

    # -- entry ----------------------------------------------------------------------------------

    def run(self, root: ListNode, data) -> str:
        self.vars = [["$", data]]
        try:
            self.walk(data, root)
        except _Fail as failure:
            raise TemplateExecutionError(self._describe(failure)) from None
        except RecursionError:
            raise TemplateExecutionError("template: exceeded maximum template depth") from None
        return "".join(self.out)

    def _describe(self, failure: _Fail) -> str:
        node = failure.node
        if node is None:
            return f"template: {self.name}: {failure.message}"
        line = self.source.count("\n", 0, node.pos) + 1
        col = node.pos - (self.source.rfind("\n", 0, node.pos) + 1)
        return f'template: {self.name}:{line}:{col}: executing "{self.name}" at <{self._snippet(node)}>: {failure.message}'

    def _snippet(self, node) -> str:
        text = self.source[node.pos : node.pos + 60]
        end = text.find("}}")
        return (text[:end] if end >= 0 else text).strip().lstrip("-").strip()

    def emit(self, text: str):
        self.size += len(text)
        if self.size > MAX_OUTPUT:
            raise _Fail("template output exceeds the size limit")
        self.out.append(text)

    def tick(self, node):
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise _Fail("template execution exceeds the step limit", node)

    # -- statements -----------------------------------------------------------------------------

    def walk(self, dot, node):
        self.tick(node)
        if isinstance(node, ListNode):
            for child in node.nodes:
                self.walk(dot, child)
        elif isinstance(node, TextNode):
            self.emit(node.text)
        elif isinstance(node, ActionNode):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.emit("<no value>" if value is None else format_v(value))
        elif isinstance(node, IfNode):
            self.walk_if_with(dot, node, is_with=False)
        elif isinstance(node, WithNode):
            self.walk_if_with(dot, node, is_with=True)
        elif isinstance(node, RangeNode):
            self.walk_range(dot, node)
        elif isinstance(node, TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, BreakNode):
            raise _Break()
        elif isinstance(node, ContinueNode):
            raise _Continue()
        else:  # pragma: no cover - the parser builds no other statements
            raise _Fail(f"unknown node {type(node).__name__}", node)

    def walk_if_with(self, dot, node, is_with: bool):
        mark = len(self.vars)
        value = self.eval_pipeline(dot, node.pipe)
        if truth(value):
            self.walk(value if is_with else dot, node.list)
        elif node.else_list is not None:
            self.walk(dot, node.else_list)
        del self.vars[mark:]

    def walk_range(self, dot, node: RangeNode):
        mark = len(self.vars)
        value = self.eval_pipeline(dot, node.pipe)
        decl = node.pipe.decl
        pairs: Iterator[tuple[object, object]]
        if isinstance(value, dict):
            pairs = ((k, value[k]) for k in sorted(value, key=_map_key))
        elif isinstance(value, (list, tuple)):
            pairs = enumerate(list(value))
        elif is_int(value):
            if len(decl) > 1:
                raise _Fail(f"can't use {value} to iterate over more than one variable", node)
            pairs = ((i, i) for i in range(max(value, 0)))  # lazily: the step budget bounds it
        elif value is None:
            pairs = iter(())
        else:
            raise _Fail(f"range can't iterate over {format_v(value)}", node)
        inner = len(self.vars)
        broke = ran = False
        for key, elem in pairs:
            ran = True
            self.tick(node)
            if decl:
                if node.pipe.is_assign:
                    self.set_var(decl[-1].ident[0], elem, node)
                    if len(decl) > 1:
                        self.set_var(decl[0].ident[0], key, node)
                else:
                    self.vars[inner - 1][1] = elem
                    if len(decl) > 1:
                        self.vars[inner - 2][1] = key
            try:
                self.walk(elem, node.list)
            except _Continue:
                pass
            except _Break:
                broke = True
            del self.vars[inner:]
            if broke:
                break
        if not ran and node.else_list is not None:
            self.walk(dot, node.else_list)
        del self.vars[mark:]

    def walk_template(self, dot, node: TemplateNode):
        body = self.defined.get(node.name)
        if body is None:
            raise _Fail(f'template "{node.name}" not defined', node)
        if self.depth >= MAX_TEMPLATE_DEPTH:
            raise _Fail(f"exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})", node)
        new_dot = self.eval_pipeline(dot, node.pipe) if node.pipe is not None else None
        saved, self.vars = self.vars, [["$", new_dot]]
        self.depth += 1
        try:
            self.walk(new_dot, body)
        finally:
            self.depth -= 1
            self.vars = saved

    # -- variables ------------------------------------------------------------------------------

    def set_var(self, name: str, value, node):
        for slot in reversed(self.vars):
            if slot[0] == name:
                slot[1] = value
                return
        raise _Fail(f"undefined variable: {name}", node)

    def var_value(self, name: str, node):
        for slot in reversed(self.vars):
            if slot[0] == name:
                return slot[1]
        raise _Fail(f"undefined variable: {name}", node)

    # -- expressions ----------------------------------------------------------------------------

    def eval_pipeline(self, dot, pipe: PipeNode):
        value = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value, var)
            else:
                self.vars.append([var.ident[0], value])
        return value

    def eval_command(self, dot, cmd: CommandNode, final):
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            return self.eval_fields(dot, dot, first.ident, cmd, final, first)
        if isinstance(first, ChainNode):
            receiver = self.eval_arg(dot, first.node)
            return self.eval_fields(dot, receiver, first.fields, cmd, final, first)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, final)
        if isinstance(first, VariableNode):
            value = self.var_value(first.ident[0], first)
            if len(first.ident) == 1:
                self._no_args(cmd, final, first)
                return value
            return self.eval_fields(dot, value, first.ident[1:], cmd, final, first)
        if isinstance(first, PipeNode):
            self._no_args(cmd, final, first)
            return self.eval_pipeline_scoped(dot, first)
        if isinstance(first, NilNode):
            raise _Fail("nil is not a command", first)
        self._no_args(cmd, final, first)
        return self.eval_arg(dot, first)

    def eval_pipeline_scoped(self, dot, pipe: PipeNode):
        mark = len(self.vars)
        value = self.eval_pipeline(dot, pipe)
        del self.vars[mark:]
        return value

    def _no_args(self, cmd: CommandNode, final, node):
        if len(cmd.args) > 1 or final is not _MISSING:
            raise _Fail(
                f"can't give argument to non-function {self._snippet(node) or type(node).__name__}",
                node,
            )

    def eval_fields(self, dot, receiver, idents, cmd: CommandNode, final, node):
        for n, name in enumerate(idents):
            last = n == len(idents) - 1
            if last and (len(cmd.args) > 1 or final is not _MISSING):
                raise _Fail(f"{name} has arguments but cannot be invoked as function", node)
            receiver = self.field(receiver, name, node)
        return receiver

    def field(self, receiver, name: str, node):
        if isinstance(receiver, Struct):
            if name in receiver.fields:
                return receiver.fields[name]
            raise _Fail(f"can't evaluate field {name} in type {type_name(receiver)}", node)
        if isinstance(receiver, dict):
            return receiver.get(name)  # missingkey=zero: an absent key is the zero value, nil
        if receiver is None:
            raise _Fail(f"nil pointer evaluating interface {{}}.{name}", node)
        raise _Fail(f"can't evaluate field {name} in type {type_name(receiver)}", node)

    def eval_function(self, dot, ident: IdentifierNode, cmd: CommandNode, final):
        name = ident.name
        function = FUNCTIONS[name]
        arg_nodes = cmd.args[1:]
        if function is None:  # "and", "or"
            if not arg_nodes and final is _MISSING:
                raise _Fail(f"wrong number of args for {name}: want at least 1 got 0", ident)
            value = None
            thunks: list[Callable[[], object]] = [partial(self.eval_arg, dot, n) for n in arg_nodes]
            if final is not _MISSING:
                thunks.append(lambda: final)
            for thunk in thunks:
                value = thunk()
                if truth(value) == (name == "or"):
                    return value
            return value
        args = [self.eval_arg(dot, n) for n in arg_nodes]
        if final is not _MISSING:
            args.append(final)
        try:
            return function(*args)
        except ArityError as err:
            raise _Fail(str(err), ident) from None
        except FuncError as err:
            raise _Fail(f"error calling {name}: {err}", ident) from None

    def eval_arg(self, dot, node):
        self.tick(node)
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, NilNode):
            return None
        if isinstance(node, (BoolNode, NumberNode, StringNode)):
            return node.value
        if isinstance(node, FieldNode):
            return self.eval_fields(dot, dot, node.ident, _ONE_ARG, _MISSING, node)
        if isinstance(node, VariableNode):
            value = self.var_value(node.ident[0], node)
            return (
                self.eval_fields(dot, value, node.ident[1:], _ONE_ARG, _MISSING, node)
                if len(node.ident) > 1
                else value
            )
        if isinstance(node, ChainNode):
            receiver = self.eval_arg(dot, node.node)
            return self.eval_fields(dot, receiver, node.fields, _ONE_ARG, _MISSING, node)
        if isinstance(node, PipeNode):
            return self.eval_pipeline_scoped(dot, node)
        if isinstance(node, IdentifierNode):
            return self.eval_function(dot, node, CommandNode([node], pos=node.pos), _MISSING)
        raise _Fail(f"can't handle {type(node).__name__} as an argument", node)  # pragma: no cover


class _Missing:
    def __repr__(self):  # pragma: no cover
        return "<missing>"


_MISSING = _Missing()
_ONE_ARG = CommandNode([None])


def _map_key(k):
    return (0, k, "") if is_int(k) or isinstance(k, float) else (1, 0, str(k))
