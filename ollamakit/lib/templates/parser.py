"""Builds the parse tree from tokens, with the checks Go's parser makes: functions and
variables must be defined, ``{{break}}``/``{{continue}}`` only inside ``range``, every
control structure closed by ``{{end}}``."""

from __future__ import annotations

from .gofmt import go_quote
from .lexer import Lexer, TemplateSyntaxError, Token
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


class _End:
    def __init__(self, token: Token):
        self.token = token


class _Else:
    def __init__(self, token: Token, chained: str | None):
        self.token = token
        self.chained = chained  # "if" or "with" for {{else if}} / {{else with}}


def parse(source: str, functions) -> tuple[ListNode, dict[str, ListNode]]:
    """Parse ``source``; return the main tree and the templates it defines."""
    return Parser(source, functions).parse()


class Parser:
    def __init__(self, source: str, functions):
        self.lexer = Lexer(source)
        self.tokens = self.lexer.run()
        self.i = 0
        self.functions = functions
        self.vars = ["$"]
        self.range_depth = 0
        self.defined: dict[str, ListNode] = {}

    # -- token helpers ------------------------------------------------------------------------

    def fail(self, message: str, token: Token | None = None):
        token = token or self.tokens[min(self.i, len(self.tokens) - 1)]
        raise TemplateSyntaxError(message, self.lexer.line_of(token.pos))

    def next(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "eof":
            self.i += 1
        return token

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next_non_space(self) -> Token:
        token = self.next()
        while token.kind == "space":
            token = self.next()
        return token

    def peek_non_space(self) -> Token:
        j = self.i
        while self.tokens[j].kind == "space":
            j += 1
        return self.tokens[j]

    def skip_space(self):
        while self.peek().kind == "space":
            self.i += 1

    def expect(self, kind: str, context: str) -> Token:
        token = self.next_non_space()
        if token.kind != kind:
            self.unexpected(token, context)
        return token

    def unexpected(self, token: Token, context: str):
        if token.kind == "eof":
            self.fail(f"unexpected EOF in {context}", token)
        self.fail(f"unexpected {describe(token)} in {context}", token)

    # -- structure ----------------------------------------------------------------------------

    def parse(self):
        root = ListNode([], pos=0)
        while self.peek().kind != "eof":
            token = self.peek()
            if token.kind == "left" and self._peek_after_left() == "define":
                self.next()
                self.next_non_space()
                self.definition()
                continue
            node = self.text_or_action()
            if isinstance(node, (_End, _Else)):
                self.fail(
                    f"unexpected {{{{{'end' if isinstance(node, _End) else 'else'}}}}}", node.token
                )
            if node is not None:
                root.nodes.append(node)
        return root, self.defined

    def _peek_after_left(self):
        j = self.i + 1
        while self.tokens[j].kind == "space":
            j += 1
        token = self.tokens[j]
        return token.value if token.kind == "keyword" else None

    def definition(self):
        name = self.expect("string", "define clause")
        self.expect("right", "define clause")
        saved, self.vars = self.vars, ["$"]
        body, end = self.item_list()
        if isinstance(end, _Else):
            self.fail("unexpected {{else}} in define clause", end.token)
        self.vars = saved
        self._add_definition(name.string, body)

    def _add_definition(self, name: str, body: ListNode):
        # Like Go's AddParseTree: a definition replaces an earlier one unless it is empty.
        if name not in self.defined or any(
            not (isinstance(n, TextNode) and not n.text.strip()) for n in body.nodes
        ):
            self.defined[name] = body

    def item_list(self):
        nodes = ListNode([], pos=self.peek().pos)
        while self.peek().kind != "eof":
            node = self.text_or_action()
            if isinstance(node, (_End, _Else)):
                return nodes, node
            if node is not None:
                nodes.nodes.append(node)
        self.fail("unexpected EOF")

    def text_or_action(self):
        token = self.next()
        if token.kind == "text":
            return TextNode(token.string, pos=token.pos)
        if token.kind == "left":
            return self.action(token)
        self.unexpected(token, "input")

    def action(self, left: Token):
        save = self.i
        token = self.next_non_space()
        if token.kind == "keyword":
            word = token.value
            if word == "end":
                self.expect("right", "end")
                return _End(token)
            if word == "else":
                after = self.peek_non_space()
                if after.kind == "keyword" and after.value in ("if", "with"):
                    self.next_non_space()
                    return _Else(token, after.value)
                self.expect("right", "else")
                return _Else(token, None)
            if word in ("if", "range", "with"):
                return self.control(word, token)
            if word in ("break", "continue"):
                if self.range_depth == 0:
                    self.fail(f"{{{{{word}}}}} outside {{{{range}}}}", token)
                after = self.next_non_space()
                if after.kind != "right":
                    self.unexpected(after, f"{{{{{word}}}}}")
                return BreakNode(pos=token.pos) if word == "break" else ContinueNode(pos=token.pos)
            if word in ("template", "block"):
                return self.template_call(word, token)
            self.fail(f"unexpected <{word}> in command", token)
        self.i = save
        pipe = self.pipeline("command", "right")
        return ActionNode(pipe, pos=left.pos)

    def control(self, context: str, token: Token):
        depth = len(self.vars)
        pipe = self.pipeline(context, "right")
        if context == "range":
            self.range_depth += 1
        body, end = self.item_list()
        if context == "range":
            self.range_depth -= 1
        else_list = None
        if isinstance(end, _Else):
            if end.chained and end.chained == context:
                # {{else if x}} is {{else}}{{if x}}...{{end}}; the inner {{end}} closes both.
                else_list = ListNode([self.control(context, end.token)], pos=end.token.pos)
            elif end.chained:
                self.fail(f"unexpected <{end.chained}> in else", end.token)
            else:
                else_list, end = self.item_list()
                if not isinstance(end, _End):
                    self.fail("expected end; found {{else}}", end.token)
        del self.vars[depth:]
        cls = {"if": IfNode, "range": RangeNode, "with": WithNode}[context]
        return cls(pipe, body, else_list, pos=token.pos)

    def template_call(self, word: str, token: Token):
        context = f"{word} clause"
        name = self.next_non_space()
        if name.kind != "string":
            self.unexpected(name, context)
        pipe = None
        if self.peek_non_space().kind != "right":
            pipe = self.pipeline(context, "right")
        else:
            self.next_non_space()
        if word == "block":
            saved, self.vars = self.vars, ["$"]
            body, end = self.item_list()
            self.vars = saved
            if not isinstance(end, _End):
                self.fail("unexpected {{else}} in block clause", end.token)
            self._add_definition(name.string, body)
        return TemplateNode(name.string, pipe, pos=token.pos)

    # -- pipelines ----------------------------------------------------------------------------

    def pipeline(self, context: str, end: str) -> PipeNode:
        start = self.peek_non_space()
        pipe = PipeNode([], [], pos=start.pos)
        self._declarations(pipe, context)
        while True:
            token = self.next_non_space()
            if token.kind == end:
                self._check_pipeline(pipe, context, token)
                return pipe
            if token.kind in (
                "bool",
                "string",
                "number",
                "nil",
                "dot",
                "field",
                "variable",
                "ident",
                "lparen",
            ):
                self.i -= 1
                pipe.cmds.append(self.command())
            elif token.kind == "pipe" and pipe.cmds:
                continue
            elif token.kind == "right" and end == "rparen":
                self.fail("unclosed left paren", token)
            else:
                self.unexpected(token, context)

    def _declarations(self, pipe: PipeNode, context: str):
        while True:
            token = self.peek_non_space()
            if token.kind != "variable":
                return
            save = self.i
            self.next_non_space()
            after = self.peek_non_space()
            if after.kind in ("declare", "assign"):
                self.next_non_space()
                pipe.is_assign = after.kind == "assign"
                pipe.decl.append(VariableNode([token.value], pos=token.pos))
                self.vars.append(token.string)
                return
            if after.kind == "comma":
                self.next_non_space()
                pipe.decl.append(VariableNode([token.value], pos=token.pos))
                self.vars.append(token.string)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().kind in ("variable", "right", "rparen"):
                        continue
                    self.fail("range can only initialize variables", after)
                self.fail(f"too many declarations in {context}", after)
            self.i = save
            return

    def _check_pipeline(self, pipe: PipeNode, context: str, token: Token):
        if not pipe.cmds:
            self.fail(f"missing value for {context}", token)
        for n, cmd in enumerate(pipe.cmds[1:], start=2):
            if isinstance(cmd.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                self.fail(f"non executable command in pipeline stage {n}", token)

    def command(self) -> CommandNode:
        cmd = CommandNode([], pos=self.peek_non_space().pos)
        while True:
            self.skip_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            token = self.next()
            if token.kind == "space":
                continue
            if token.kind in ("right", "rparen"):
                self.i -= 1
            elif token.kind != "pipe":
                self.unexpected(token, "operand")
            break
        if not cmd.args:
            self.fail("empty command")
        return cmd

    def operand(self):
        node = self.term()
        if node is None:
            return None
        if self.peek().kind == "field":
            fields = []
            while self.peek().kind == "field":
                fields.append(self.next().value)
            if isinstance(node, FieldNode):
                return FieldNode(node.ident + fields, pos=node.pos)
            if isinstance(node, VariableNode):
                return VariableNode(node.ident + fields, pos=node.pos)
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                self.fail(f"unexpected . after term {describe_node(node)!r}")
            return ChainNode(node, fields, pos=node.pos)
        return node

    def term(self):
        token = self.next_non_space()
        kind = token.kind
        if kind == "ident":
            if token.value not in self.functions:
                self.fail(f'function "{token.value}" not defined', token)
            return IdentifierNode(token.string, pos=token.pos)
        if kind == "dot":
            return DotNode(pos=token.pos)
        if kind == "nil":
            return NilNode(pos=token.pos)
        if kind == "variable":
            if token.value not in self.vars:
                self.fail(f'undefined variable "{token.value}"', token)
            return VariableNode([token.value], pos=token.pos)
        if kind == "field":
            return FieldNode([token.value], pos=token.pos)
        if kind == "bool":
            return BoolNode(token.text == "true", pos=token.pos)
        if kind == "number":
            return NumberNode(token.value, token.text, pos=token.pos)
        if kind == "string":
            return StringNode(token.string, token.text, pos=token.pos)
        if kind == "lparen":
            return self.pipeline("parenthesized pipeline", "rparen")
        self.i -= 1
        return None


def describe(token: Token) -> str:
    """A token as Go's errors show it: keywords in angle brackets, the rest quoted."""
    if token.kind == "keyword":
        return f"<{token.value}>"
    if token.kind == "eof":
        return "EOF"
    fixed = {
        "right": "}}",
        "left": "{{",
        "rparen": ")",
        "lparen": "(",
        "pipe": "|",
        "comma": ",",
        "declare": ":=",
        "assign": "=",
        "space": " ",
    }
    text = fixed.get(token.kind) or token.text or str(token.value)
    return go_quote(text)


def describe_node(node) -> str:
    return getattr(node, "quoted", None) or getattr(node, "text", None) or type(node).__name__
