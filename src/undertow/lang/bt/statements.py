"""The statements of the bpftrace language: blocks, ``if``/``else``, ``while`` and
``unroll`` loops, ``return``/``break``/``continue``, assignments to ``$variables`` and
``@maps`` (``=``, compound ``+=``..., ``++``/``--``), map aggregations (``@m[k] = count()``)
and expressions in statement position (``printf()``, ``print()``, ``delete()``...).

``$x++``, ``$x += e``, ``@m[k]++`` are desugared into :class:`ir.Assign` and
:class:`ir.MapUpdate` (``agg="assign"``) of a :class:`ir.Binary`; every map used gets an
:class:`ir.MapDecl` with the aggregation it holds (one per map across the program).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Tuple

from ...errors import Span
from .. import ir
from .expressions import ExprParser
from .language import BINARY, COMPOUND, MAP_AGGREGATIONS, VOID_FUNCTIONS
from .lexer import Tok

__all__ = ["StmtParser"]

#: bpftrace's limits: lhist() buckets, and how often one statement may be emitted by nested
#: unroll() (each repeats its body; nested ones multiply): past them the compiler would grow
#: for minutes
_LHIST_BUCKETS = 1000
_MAX_UNROLLED = 10_000
_BLOCK_HINT = "keep a condition in a $variable, or return early"


def _deepcopy(x: object) -> Any:
    return ir.clone(x)


class StmtParser(ExprParser):
    """:class:`ExprParser` plus statements and blocks (:meth:`block`)."""

    def __init__(self, source: str, origin: str, positional: Sequence[str]) -> None:
        super().__init__(source, origin, positional)
        self.blocks = 0  # if/while/unroll statements open around the current one
        self.unrolled = 1  # how many times the current statement is emitted (nested unroll())
        self.loop_depth = 0
        self.last_hoisted: List[ir.Action] = []
        self.maps: Dict[str, ir.MapDecl] = {}
        self.map_spans: Dict[str, Span] = {}

    def enter_block(self, tok: Tok) -> None:
        """One ``if``/``while``/``unroll`` deeper (``else if`` nests too)."""
        self.blocks += 1
        if self.blocks > ir.MAX_BLOCK_DEPTH:
            raise self.err(f"blocks nested too deeply (limit {ir.MAX_BLOCK_DEPTH} levels)", tok.span, _BLOCK_HINT)

    # ------------------------------------------------------------------ statements

    def block(self) -> List[ir.Action]:
        self.expect("{")
        out: List[ir.Action] = []
        while not self.tok.is_op("}"):
            if self.tok.kind == "eof":
                raise self.unexpected("'}'", "every '{' needs a matching '}'")
            if self.tok.is_op(";"):
                self.advance()
                continue
            act, compound = self.statement()
            out.extend(self.last_hoisted)  # increments used as values run first
            if act is not None:
                out.append(act)
            if compound:
                continue
            if self.tok.is_op(";"):
                self.advance()
            elif not self.tok.is_op("}"):
                raise self.unexpected("';'")
        self.advance()
        return out

    def loop_stmt(self, t: Tok) -> ir.Action:
        """``unroll (N) { ... }`` or ``while (cond) { ... }``."""
        start = self.advance().start
        self.expect("(")
        if t.text == "unroll":
            nt = self.tok
            n = self.value(self.expr())
            if not isinstance(n, ir.Const) or not isinstance(n.value, int):
                raise self.err("unroll() needs an integer constant", nt.span)
            if not 1 <= n.value <= 100:  # bpftrace's words
                raise self.err("unroll maximum value is 100" if n.value > 100 else "unroll minimum value is 1",
                               n.span, "unroll() repeats its block 1 to 100 times")
            if self.unrolled * n.value > _MAX_UNROLLED:
                raise self.err(f"nested unroll() repeats this body {self.unrolled * n.value} times "
                               f"(limit {_MAX_UNROLLED})", n.span, "use a while loop for one of them")
            self.expect(")")
            outer, self.unrolled = self.unrolled, self.unrolled * n.value
            try:
                body = self.block()
            finally:
                self.unrolled = outer
            return ir.While(None, body, n.value).at(self.span_from(start))
        cond = self.value(self.expr())
        self.expect(")")
        self.loop_depth += 1
        try:
            body = self.block()
        finally:
            self.loop_depth -= 1
        return ir.While(cond, body, 0).at(self.span_from(start))

    def statement(self) -> Tuple[Optional[ir.Action], bool]:
        """One statement; the flag says it ended with a block (no ';' needed). The
        increments it uses as values (``printf("%d", $x++)``) are left in
        :attr:`last_hoisted`, to run before it."""
        outer = self.hoisted
        self.hoisted = None
        try:
            act, compound = self._statement()
            self.last_hoisted = self.hoisted or []
            return act, compound
        finally:
            self.hoisted = outer

    def _statement(self) -> Tuple[Optional[ir.Action], bool]:
        t = self.tok
        if t.kind == "ident" and t.text in ("if", "while", "unroll"):
            self.enter_block(t)
            try:
                return (self.if_stmt() if t.text == "if" else self.loop_stmt(t)), True
            finally:
                self.blocks -= 1
        start = t.start
        if t.kind == "ident":
            if t.text in ("return", "break", "continue"):
                self.advance()
                if t.text != "return" and self.loop_depth == 0:
                    raise self.err(f"'{t.text}' outside a while loop", t.span)
                cls = {"return": ir.Return, "break": ir.Break, "continue": ir.Continue}[t.text]
                return cls().at(t.span), False
            if t.text == "for":
                raise self.err("'for' loops are not part of bpftrace 0.17", t.span,
                               "use while (cond) { ... } or unroll(N) { ... }")
            if t.text == "else":
                raise self.err("'else' without 'if'", t.span)
        if t.is_op("++", "--"):
            self.advance()
            target_tok = self.tok
            target = self.unary()
            return self.increment(target, target_tok, "+" if t.text == "++" else "-", start), False
        if t.is_op("{"):
            raise self.err("a block needs if, while or unroll in front of it", t.span)
        first = self.tok
        self.hoisted = []
        self.at_head = True
        try:
            e = self.unary()
        finally:
            self.at_head = False
        if self.tok.kind == "op" and (self.tok.text == "=" or self.tok.text in COMPOUND):
            return self.assignment(e, first, start), False
        if self.tok.is_op("++", "--"):
            op = "+" if self.advance().text == "++" else "-"
            return self.increment(e, first, op, start), False
        e = self.binary_rest(e, 1)
        e = self.ternary_rest(e)
        return self.to_action(e), False

    def if_stmt(self) -> ir.Action:
        start = self.advance().start
        self.expect("(", "write if (condition) { ... }")
        cond = self.value(self.expr())
        self.expect(")")
        then = self.block()
        other: List[ir.Action] = []
        if self.tok.kind == "ident" and self.tok.text == "else":
            self.advance()
            if self.tok.kind == "ident" and self.tok.text == "if":
                self.enter_block(self.tok)
                try:
                    other = [self.if_stmt()]
                finally:
                    self.blocks -= 1
            else:
                other = self.block()
        return ir.If(cond, then, other).at(self.span_from(start))

    def lvalue_kind(self, e: ir.Expr, tok: Tok) -> str:
        if isinstance(e, ir.Var) and tok.kind == "var":
            return "var"
        if isinstance(e, ir.MapRead) and tok.kind == "map":
            return "map"
        if tok.kind == "pos":
            raise self.err("positional parameters cannot be assigned", e.span or tok.span)
        raise self.err("only $variables and @maps can be assigned", e.span or tok.span,
                       "write $name = ... or @name[key] = ...")

    def increment(self, e: ir.Expr, tok: Tok, op: str, start: int) -> ir.Action:
        kind = self.lvalue_kind(e, tok)
        span = self.span_from(start)
        one = ir.Const(1).at(span)
        if kind == "var":
            assert isinstance(e, ir.Var)
            return ir.Assign(e.name, ir.Binary(op, e, one).at(span)).at(span)
        assert isinstance(e, ir.MapRead)
        read = ir.MapRead(e.map, _deepcopy(e.key)).at(e.span)
        return self.map_update(e, "assign", ir.Binary(op, read, one).at(span), [], span)

    def assignment(self, e: ir.Expr, first: Tok, start: int) -> ir.Action:
        kind = self.lvalue_kind(e, first)
        optok = self.advance()
        if optok.text == "=" and self.tok.kind == "ident" and self.tok.text in MAP_AGGREGATIONS:
            name_tok = self.tok
            if self.peek().is_op("("):
                if kind != "map":
                    raise self.err(f"{name_tok.text}() can only be assigned to a map", name_tok.span,
                                   f"write @name = {name_tok.text}(...)")
                return self.aggregation(e, start)
            raise self.err(f"'{name_tok.text}' is a map function", name_tok.span,
                           f"did you mean {name_tok.text}()?")
        value = self.value(self.expr())
        if optok.text != "=":
            op = COMPOUND[optok.text]
            if isinstance(e, ir.Var):
                value = ir.Binary(op, ir.Var(e.name).at(e.span), value).at(self.span_from(start))
            else:
                assert isinstance(e, ir.MapRead)
                read = ir.MapRead(e.map, _deepcopy(e.key)).at(e.span)
                value = ir.Binary(op, read, value).at(self.span_from(start))
        span = self.span_from(start)
        if kind == "var":
            assert isinstance(e, ir.Var)
            return ir.Assign(e.name, value).at(span)
        assert isinstance(e, ir.MapRead)
        return self.map_update(e, "assign", value, [], span)

    def aggregation(self, target: ir.Expr, start: int) -> ir.Action:
        assert isinstance(target, ir.MapRead)
        ntok = self.advance()
        name = ntok.text
        self.expect("(")
        args = self.call_args(name)
        lo, hi = MAP_AGGREGATIONS[name]
        self.check_arity(name, args, lo, hi, ntok)
        value = args[0] if args else None
        extra = args[1:]
        if name == "lhist":
            for a in extra:
                if not isinstance(a, ir.Const) or not isinstance(a.value, int):
                    raise self.err("lhist() min, max and step must be integer constants", a.span)
            lo_v, hi_v, step = (a.value for a in extra)  # type: ignore[union-attr]
            if step <= 0:  # type: ignore[operator]
                raise self.err("lhist() step must be positive", extra[2].span)
            if hi_v <= lo_v:  # type: ignore[operator]
                raise self.err("lhist() max must be greater than min", extra[1].span)
            if lo_v < 0:  # type: ignore[operator]
                raise self.err(f"lhist() min must be non-negative (provided min {lo_v})", extra[0].span)
            buckets = (hi_v - lo_v) // step  # type: ignore[operator]
            if buckets > _LHIST_BUCKETS:
                raise self.err(f"lhist() too many buckets, will exceed {_LHIST_BUCKETS} buckets "
                               f"(provided min {lo_v}, max {hi_v} and step {step})", extra[2].span,
                               "a larger step, or hist() for log2 buckets")
        if self.tok.kind == "op" and self.tok.text in BINARY or self.tok.is_op("?"):
            raise self.err(f"{name}() must be assigned alone, not used in an expression", self.tok.span)
        return self.map_update(target, name, value, list(extra), self.span_from(start))

    def map_update(self, target: ir.MapRead, agg: str, value: Optional[ir.Expr],
                   agg_args: List[ir.Expr], span: Span) -> ir.Action:
        name = target.map
        prev = self.maps.get(name)
        if agg != "assign":
            if prev is not None and prev.agg not in (agg, "assign"):
                where = self.map_spans[name]
                line = self.source.count("\n", 0, where.start) + 1
                raise self.err(f"{name} already holds {prev.agg}() (line {line}); it cannot also hold {agg}()",
                               span, "use another map name for the second aggregation")
            args = tuple(a.value for a in agg_args if isinstance(a, ir.Const) and isinstance(a.value, int))
            self.maps[name] = ir.MapDecl(name, agg=agg, agg_args=args)  # type: ignore[arg-type]
            self.map_spans[name] = span
        elif prev is None:
            self.maps[name] = ir.MapDecl(name, agg="assign")
            self.map_spans[name] = span
        return ir.MapUpdate(name, list(target.key), agg, value, agg_args).at(span)

    def to_action(self, e: ir.Expr) -> ir.Action:
        """An expression in statement position: printf(), print(@m), a ternary of them..."""
        span = e.span
        if isinstance(e, ir.Ternary):
            return ir.If(self.value(e.cond), [self.to_action(e.then)], [self.to_action(e.other)]).at(span)
        if isinstance(e, ir.Call):
            name, args = e.name, e.args
            if name == "printf":
                assert isinstance(args[0], ir.Const)
                return ir.Printf(str(args[0].value), [self.value(a) for a in args[1:]]).at(span)
            if name == "exit":
                return ir.Exit().at(span)
            if name in ("clear", "zero"):
                m = args[0]
                if not isinstance(m, ir.MapRead) or m.key:
                    raise self.err(f"{name}() takes a map: {name}(@name)", m.span)
                return ir.MapOp(name, m.map).at(span)
            if name == "delete":
                m = args[0]
                if not isinstance(m, ir.MapRead):
                    raise self.err("delete() takes a map element: delete(@name[key])", m.span)
                key = list(m.key)
                if len(args) == 2:
                    if m.key:
                        raise self.err("delete(@map, key) takes the map without a key", m.span)
                    k = self.value(args[1])
                    key = list(k.elems) if isinstance(k, ir.TupleExpr) else [k]
                return ir.MapOp("delete", m.map, key).at(span)
            if name == "print":
                m = args[0]
                if isinstance(m, ir.MapRead) and not m.key and getattr(m, "_bare", False):
                    return ir.MapOp("print", m.map, [], [self.value(a) for a in args[1:]]).at(span)
                if len(args) > 1:
                    raise self.err("print(value) takes one argument; print(@map, top, div) takes a map",
                                   args[1].span)
                return ir.PrintValue(self.value(m)).at(span)
            if name in VOID_FUNCTIONS:
                return ir.ExprStmt(ir.Call(name, [self.value(a) for a in args]).at(span)).at(span)
        return ir.ExprStmt(self.value(e)).at(span)
