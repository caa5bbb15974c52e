"""The expressions of the bpftrace language: C's operators and precedence, casts, members,
indexes, calls of bpftrace's functions (arity, string-literal and printf format checks),
builtins, maps, ``$variables``, positional parameters and ``#define`` macros.

:class:`ExprParser` also holds what every part of the parser shares: the preprocessed
text, the token cursor and errors with a caret (:class:`undertow.errors.ParseError`).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Sequence, Set, Tuple

from ...errors import ParseError, Span, did_you_mean
from .. import ir
from ..printf import conversions
from .language import (
    BINARY, BUILTINS, C_WORDS, FUNCTIONS, INT_TYPES, KEYWORDS, MANY, MAP_AGGREGATIONS, RECORD_WORDS, STRING_ARG,
    UNSAFE_FUNCTIONS, VOID_FUNCTIONS, c_integer, is_decimal,
)
from .lexer import Lexer, Tok
from .preprocess import KNOWN_MACROS, preprocess

__all__ = ["ExprParser", "check_format"]

_CONVERSIONS = "diouxXcsp" + "r"
#: printf field widths and precisions (Python's % refuses huge ones at run time)
_MAX_WIDTH = 4096
#: macro expansions in one program (a macro using another twice doubles at each level):
#: past them the compiler would grow for minutes
_MAX_EXPANSIONS = 10_000
_DEPTH_HINT = "keep a part in a $variable: $t = (struct task_struct *)curtask; ... $t->mm"


def check_format(tok: Tok, nargs: int, fname: str, source: str, origin: str,
                 args: Sequence[ir.Expr] = ()) -> int:
    """Check a printf-style format string token against the number of arguments.

    Returns the number of conversions. Raises :class:`ParseError` with the caret
    under the bad conversion, the first extra argument, or the format string.
    """
    raw = tok.text[1:-1]
    count = 0
    for start, end, _flags, width, prec, conv in conversions(raw, star=True, required=False):
        if conv == "%":
            continue
        at = tok.start + 1 + start
        if not conv or conv not in _CONVERSIONS:
            shown = raw[start:end]
            raise ParseError(f"{fname}: unknown conversion '{shown}' in format string", source=source,
                             span=Span(at, at + len(shown)), origin=origin,
                             hints=["conversions: %d %i %u %o %x %X %c %s %p %r (buffers); %% for a percent sign"])
        if "*" in (width, prec):  # the output formats with the widths written in the format only
            shown = raw[start:end]
            raise ParseError(f"{fname}: '*' widths and precisions are not supported ('{shown}')", source=source,
                             span=Span(at, at + len(shown)), origin=origin,
                             hints=["write the number in the format: %5d, %.10s"])
        for part in (width, prec):
            if part is not None and int(part) > _MAX_WIDTH:
                shown = raw[start:end]
                raise ParseError(f"{fname}: field width or precision {part} in '{shown}' is too large "
                                 f"(limit {_MAX_WIDTH})", source=source, span=Span(at, at + len(shown)),
                                 origin=origin)
        count += 1 + (width == "*") + (prec == "*")
    if nargs > count:
        extra = args[count] if len(args) > count else None
        span = extra.span if extra is not None and extra.span is not None else tok.span
        raise ParseError(f"{fname}: too many arguments for format string ({nargs} supplied, {count} expected)",
                         source=source, span=span, origin=origin,
                         hints=["add a conversion (%d, %s, ...) for each argument or remove the extra ones"])
    if nargs < count:
        raise ParseError(f"{fname}: not enough arguments for format string ({nargs} supplied, {count} expected)",
                         source=source, span=tok.span, origin=origin,
                         hints=["give one argument per conversion, or write %% for a literal percent sign"])
    return count


class ExprParser:
    """The parser's state and its expressions (:meth:`expr`); statements and probes are
    parsed by the subclasses (:mod:`.statements`, :mod:`.parser`)."""

    def __init__(self, source: str, origin: str, positional: Sequence[str]) -> None:
        self.source = source
        self.origin = origin
        self.positional = [str(p) for p in positional]
        pp = preprocess(source, origin)
        self.pp = pp
        self.text = pp.text
        self.lex = Lexer(pp.text, source, origin)
        self.tok = self.lex.next(0)
        self.prev_end = 0
        self.depth = 0  # expressions open in the parser (recursion), see enter()
        self.expansions = [0]  # macro expansions so far (shared with macro sub-parsers)
        self.in_filter = False  # inside a probe's /filter/: a '/' before '{' ends it
        self.expanding: List[str] = []
        self.missing_pos: Set[int] = set()
        self.pos_text: Dict[int, str] = {}  # id of a numeric $N's Const -> its text
        self.unsafe: List[Tuple[str, Span]] = []

    # ------------------------------------------------------------------ helpers

    def err(self, msg: str, span: Optional[Span] = None, *hints: str) -> ParseError:
        if span is None:
            span = self.tok.span
        if span.end <= span.start:
            span = Span(span.start, span.start + 1)
        return ParseError(msg, source=self.source, span=span, origin=self.origin, hints=[h for h in hints if h])

    def advance(self) -> Tok:
        t = self.tok
        self.prev_end = t.end
        self.tok = self.lex.next(t.end)
        return t

    def peek(self) -> Tok:
        """The token after the current one."""
        return self.lex.next(self.tok.end)

    def unexpected(self, expected: str, *hints: str) -> ParseError:
        return self.err(f"unexpected {self.tok.describe()}, expected {expected}", None, *hints)

    def expect(self, op: str, hint: str = "") -> Tok:
        if not self.tok.is_op(op):
            raise self.unexpected(f"'{op}'", hint)
        return self.advance()

    def span_from(self, start: int) -> Span:
        return Span(start, max(self.prev_end, start + 1))

    def enter(self) -> None:
        """One level deeper into an expression: every recursion of the expression parser
        passes here, so nesting past :data:`ir.MAX_EXPR_DEPTH` is an error with a caret,
        never a RecursionError (see also :meth:`value` for chains built in loops)."""
        self.depth += 1
        if self.depth > ir.MAX_EXPR_DEPTH:
            raise self.err(f"expression nested too deeply (limit {ir.MAX_EXPR_DEPTH} levels)", None, _DEPTH_HINT)

    def value(self, e: ir.Expr) -> ir.Expr:
        """Check ``e`` is usable as a value: no printf()/clear()/... inside, and not nested
        past :data:`ir.MAX_EXPR_DEPTH` (chains built in loops: a->b->c..., a + b + c...)."""
        deep = ir.too_deep(e)
        if deep is not None:
            raise self.err(f"expression nested too deeply (limit {ir.MAX_EXPR_DEPTH} levels)",
                           deep.span or e.span, _DEPTH_HINT)
        for sub in e.walk():
            if isinstance(sub, ir.Call) and sub.name in VOID_FUNCTIONS:
                raise self.err(f"{sub.name}() has no value; it can only be a statement", sub.span)
        return e

    # ------------------------------------------------------------------ expressions

    def expr(self) -> ir.Expr:
        self.enter()
        try:
            e = self.binary_rest(self.unary(), 1)
            return self.ternary_rest(e)
        finally:
            self.depth -= 1

    def ternary_rest(self, cond: ir.Expr) -> ir.Expr:
        if not self.tok.is_op("?"):
            return cond
        self.advance()
        then = self.expr()
        self.expect(":", "a ternary looks like cond ? a : b")
        other = self.expr()
        span = (cond.span or then.span or Span(0, 0)).to(other.span or Span(0, 0))
        return ir.Ternary(cond, then, other).at(span)

    def binary_rest(self, left: ir.Expr, min_prec: int) -> ir.Expr:
        # a run of one logical operator (a && b && c ...) becomes a balanced tree: a filter
        # of 1,000 terms must not be 1,000 levels deep for the passes that recurse
        chain: List[ir.Expr] = []
        chain_op = ""
        while self.tok.kind == "op" and self.tok.text in BINARY:
            op = self.tok.text
            prec = BINARY[op]
            if prec < min_prec:
                break
            if op == "/" and self.in_filter and self.peek().is_op("{"):
                break  # the '/' that ends a filter
            self.advance()
            if self.tok.is_op("{", "}", ";", ")") or self.tok.kind == "eof":
                raise self.unexpected(f"an operand after '{op}'")
            # recursion is bounded by the number of precedence levels (unary() counts the rest)
            right = self.binary_rest(self.unary(), prec + 1)
            if op == chain_op:
                chain.append(right)
                continue
            if chain:
                left = ir.balanced(chain_op, chain)
            if op in ("&&", "||"):
                chain, chain_op = [left, right], op
                continue
            chain, chain_op = [], ""
            span = (left.span or Span(0, 0)).to(right.span or Span(0, 0))
            left = ir.Binary(op, left, right).at(span)
        return ir.balanced(chain_op, chain) if chain else left

    def operand(self) -> ir.Expr:
        """The operand of a prefix operator or a cast: one level deeper."""
        self.enter()
        try:
            return self.unary()
        finally:
            self.depth -= 1

    def unary(self) -> ir.Expr:
        t = self.tok
        if t.is_op("!", "~", "-", "+"):
            self.advance()
            operand = self.operand()
            span = self.span_from(t.start)
            if t.text == "+":
                return operand
            if t.text == "-" and isinstance(operand, ir.Const) and isinstance(operand.value, int) \
                    and not isinstance(operand, ir.Ident):
                return ir.Const(-operand.value).at(span)
            return ir.Unary(t.text, operand).at(span)
        if t.is_op("*"):
            self.advance()
            operand = self.operand()
            return ir.Deref(operand).at(self.span_from(t.start))
        if t.is_op("&"):
            raise self.err("the address-of operator '&' is not supported", t.span)
        if t.is_op("++", "--"):
            self.advance()
            operand = self.operand()
            return self.incdec(operand, t, post=False)
        if t.is_op("("):
            ty = self.try_type(self.peek(), (")",))
            if ty is not None:
                type_text, end = ty
                self.prev_end = end
                self.tok = self.lex.next(end)
                if self.tok.is_op(")", ";", "}", ",") or self.tok.kind == "eof":
                    raise self.unexpected(f"an expression to cast to '{type_text}'")
                operand = self.operand()
                return ir.Cast(type_text, operand).at(self.span_from(t.start))
        return self.postfix(self.primary(), t.start)

    def try_type(self, tok: Tok, ends: Tuple[str, ...]) -> Optional[Tuple[str, int]]:
        """If a type name starts at ``tok`` and one of ``ends`` follows it: (type text, end of that token).

        Types: ``struct|union|enum NAME``, integer types (``uint32``, ``unsigned long``),
        or a typedef name followed by ``*``; then ``*``s and an optional ``[N]``.
        """
        if tok.kind != "ident":
            return None
        words: List[str] = []
        t = tok
        if t.text in RECORD_WORDS:
            nt = self.lex.next(t.end)
            if nt.kind != "ident":
                return None
            words = [t.text, nt.text]
            t = self.lex.next(nt.end)
        elif t.text in INT_TYPES or t.text in C_WORDS:
            while t.kind == "ident" and (t.text in INT_TYPES or t.text in C_WORDS):
                words.append(t.text)
                t = self.lex.next(t.end)
        elif t.text not in BUILTINS and t.text not in FUNCTIONS:
            # a typedef name is only a type when a '*' follows it: (sk_buff_t *)x
            nt = self.lex.next(t.end)
            if not nt.is_op("*"):
                return None
            words = [t.text]
            t = nt
        else:
            return None
        stars = ""
        while t.is_op("*"):
            stars += "*"
            t = self.lex.next(t.end)
        dims = ""
        if t.is_op("["):
            n = self.lex.next(t.end)
            close = self.lex.next(n.end)
            if n.kind == "int" and close.is_op("]"):
                dims = f"[{n.value}]"
                t = self.lex.next(close.end)
        if t.kind != "op" or t.text not in ends:
            return None
        text = " ".join(words) + (" " + stars if stars else "") + dims
        return text, t.end

    def incdec(self, target: ir.Expr, tok: Tok, post: bool) -> ir.Expr:
        """``$x++``/``++$x``/``@m[k]--`` as a value (``tok``: the operator)."""
        if not isinstance(target, (ir.Var, ir.MapRead)):
            raise self.err(f"'{tok.text}' needs a $variable or a @map", target.span or tok.span)
        start = min(tok.start, target.span.start) if target.span else tok.start
        span = self.span_from(start)
        if isinstance(target, ir.MapRead):
            self.note_assigned(target, span)
        return ir.IncDec(target, "+" if tok.text == "++" else "-", post).at(span)

    def note_assigned(self, target: ir.MapRead, span: Span) -> None:
        """``target``'s map is assigned here (the statement parser records its maps)."""

    def postfix(self, e: ir.Expr, written: Optional[int] = None) -> ir.Expr:
        """``e`` followed by ``->m``, ``.m``, ``.N``, ``[i]``, ``++``/``--``. ``written``: where
        ``e`` starts as written, its parentheses included: ``((struct foo *)0)->a`` is at the
        first '(' (bpftrace's place for the member, e.g. in -kk's helper errors)."""
        while True:
            t = self.tok
            if t.is_op("++", "--") and isinstance(e, (ir.Var, ir.MapRead)):
                self.advance()
                e = self.incdec(e, t, post=True)
                continue
            if t.is_op("->", "."):
                self.advance()
                nt = self.tok
                if t.text == "." and nt.kind == "int":
                    self.advance()
                    e = ir.TupleIndex(e, int(nt.value)).at(self.span_from(e.span.start if e.span else t.start))  # type: ignore[arg-type]
                    continue
                if nt.kind != "ident":
                    raise self.unexpected(f"a member name after '{t.text}'")
                self.advance()
                start = e.span.start if e.span else t.start
                if t.text == "->" and written is not None:
                    start = min(start, written)
                if isinstance(e, ir.Builtin) and e.name == "args":
                    e = ir.Field(nt.text).at(self.span_from(start))
                else:
                    e = ir.Member(e, nt.text, t.text == "->").at(self.span_from(start))
                continue
            if t.is_op("["):
                self.advance()
                idx = self.value(self.expr())
                self.expect("]")
                e = ir.Index(e, idx).at(self.span_from(e.span.start if e.span else t.start))
                continue
            if t.is_op("(") and not isinstance(e, ir.Call) and e.span is not None:
                raise self.err("only functions can be called", e.span)
            return e

    def primary(self) -> ir.Expr:
        t = self.tok
        if t.kind == "int":
            self.advance()
            return ir.Const(t.value).at(t.span)
        if t.kind == "str":
            self.advance()
            return ir.Const(t.value).at(t.span)
        if t.kind == "var":
            self.advance()
            return ir.Var(t.text).at(t.span)
        if t.kind == "pos":
            self.advance()
            return self.positional_value(t)
        if t.kind == "map":
            self.advance()
            if self.tok.is_op("["):
                self.advance()
                if self.tok.is_op("]"):
                    raise self.unexpected("a key")
                keys = [self.value(self.expr())]
                while self.tok.is_op(","):
                    self.advance()
                    keys.append(self.value(self.expr()))
                self.expect("]")
                return ir.MapRead(t.text, keys).at(self.span_from(t.start))
            m = ir.MapRead(t.text, []).at(t.span)
            m._bare = True  # type: ignore[attr-defined]  # written without [...]: print(@m) prints the map
            return m
        if t.kind == "ident":
            return self.identifier()
        if t.is_op("("):
            self.advance()
            first = self.expr()
            if self.tok.is_op(","):
                elems = [first]
                while self.tok.is_op(","):
                    self.advance()
                    elems.append(self.expr())
                self.expect(")")
                return ir.TupleExpr([self.value(x) for x in elems]).at(self.span_from(t.start))
            self.expect(")")
            return first
        if t.kind == "eof":
            raise self.unexpected("an expression")
        raise self.unexpected("an expression")

    def positional_value(self, t: Tok) -> ir.Expr:
        k = int(t.value)  # type: ignore[arg-type]
        if k == -1:
            return ir.Const(len(self.positional)).at(t.span)
        if k < 1:
            raise self.err("positional parameters start at $1", t.span)
        if k > len(self.positional):
            c = ir.Const(0).at(t.span)
            self.missing_pos.add(id(c))
            return c
        v = self.positional[k - 1]
        n = c_integer(v)  # 123, 0x7b, 0173 as bpftrace reads them
        if n is not None:
            if not -(1 << 63) <= n < 1 << 64:
                raise self.err(f"positional parameter ${k} ({v}) does not fit in 64 bits", t.span)
            c = ir.Const(n).at(t.span)
            self.pos_text[id(c)] = v  # str($1) is the text as given
            return c
        return ir.Const(v).at(t.span)

    def identifier(self) -> ir.Expr:
        t = self.advance()
        name = t.text
        if self.tok.is_op("("):
            return self.call(t)
        if name in KEYWORDS:
            raise self.err(f"'{name}' cannot be used in an expression", t.span)
        if name == "retval":
            return ir.Retval().at(t.span)
        if name.startswith("arg") and is_decimal(name[3:]):  # the lexer's names start with no '-'
            return ir.Arg(int(name[3:])).at(t.span)
        if (name.startswith("sarg") and is_decimal(name[4:])) or name in BUILTINS:
            return ir.Builtin(name).at(t.span)
        if name in self.pp.defines:
            return self.expand_macro(name, t)
        if name in KNOWN_MACROS:
            return ir.Const(KNOWN_MACROS[name]).at(t.span)
        if name in FUNCTIONS:
            raise self.err(f"'{name}' is a function", t.span, f"did you mean {name}()?")
        if name in INT_TYPES or name in RECORD_WORDS:
            raise self.err(f"unexpected type name '{name}'", t.span,
                           f"a cast is written ({name} ...)expr" if name not in RECORD_WORDS
                           else f"a cast is written ({name} NAME *)expr")
        hint = did_you_mean(name, BUILTINS) if name.islower() or name.isdigit() else ""
        if hint:
            raise self.err(f"unknown identifier '{name}'", t.span, hint)
        return ir.Ident(name).at(t.span)

    def expand_macro(self, name: str, t: Tok) -> ir.Expr:
        if name in self.expanding:
            raise self.err(f"macro '{name}' expands to itself", t.span)
        if len(self.expanding) > 20:
            raise self.err("macros nested more than 20 deep", t.span)
        self.expansions[0] += 1
        if self.expansions[0] > _MAX_EXPANSIONS:
            raise self.err(f"macros expand more than {_MAX_EXPANSIONS} times", t.span,
                           "a macro that uses another one twice doubles at each level")
        body = self.pp.defines[name]
        if not body:
            raise self.err(f"macro '{name}' has no value", t.span)
        sub = object.__new__(type(self))
        sub.__dict__.update(self.__dict__)
        sub.text = body
        sub.lex = Lexer(body, self.source, self.origin)
        sub.expanding = self.expanding + [name]
        sub.depth = self.depth
        try:
            sub.tok = sub.lex.next(0)
            e = sub.expr()
            if sub.tok.kind != "eof":
                raise sub.unexpected("the end of the macro")
        except ParseError as ex:
            where = self.pp.define_spans.get(name, t.span)
            raise self.err(f"in macro '{name}': {ex.message}", where, *ex.hints) from None
        for sub_e in e.walk():
            sub_e.span = t.span
        return e

    def call_args(self, name: str) -> List[ir.Expr]:
        """Arguments up to and including ')', the '(' already consumed."""
        args: List[ir.Expr] = []
        if self.tok.is_op(")"):
            self.advance()
            return args
        while True:
            if name in ("sizeof", "offsetof") and not args:
                ty = self.try_type(self.tok, (")", ","))
                if ty is not None:
                    text, end = ty
                    start = self.tok.start
                    self.prev_end = end - 1
                    args.append(ir.TypeName(text).at(Span(start, end - 1)))
                    self.tok = self.lex.next(end - 1)
                    if self.tok.is_op(","):
                        self.advance()
                        continue
                    break
            if name == "offsetof" and len(args) == 1:
                mstart = self.tok.start
                parts = []
                while True:
                    if self.tok.kind != "ident":
                        raise self.unexpected("a member name")
                    parts.append(self.advance().text)
                    if not self.tok.is_op("."):
                        break
                    self.advance()
                args.append(ir.Const(".".join(parts)).at(self.span_from(mstart)))
            elif name in ("kstack", "ustack") and self.tok.kind == "ident" and self.tok.text in ("perf", "bpftrace", "raw"):
                mt = self.advance()
                args.append(ir.Const(mt.text).at(mt.span))
            else:
                args.append(self.expr())
            if self.tok.is_op(","):
                self.advance()
                continue
            break
        if not self.tok.is_op(")"):
            raise self.unexpected("',' or ')'")
        self.advance()
        return args

    def check_arity(self, name: str, args: List[ir.Expr], lo: int, hi: int, ntok: Tok) -> None:
        if lo <= len(args) <= hi:
            return
        if lo == hi:
            want = f"{lo} argument{'s' if lo != 1 else ''}"
        elif hi >= MANY:
            want = f"at least {lo} argument{'s' if lo != 1 else ''}"
        else:
            want = f"{lo} to {hi} arguments"
        span = args[hi].span if len(args) > hi and args[hi].span else self.span_from(ntok.start)
        raise self.err(f"{name}() takes {want}, {len(args)} given", span)

    def call(self, ntok: Tok) -> ir.Expr:
        name = ntok.text
        if name not in FUNCTIONS:
            if name in BUILTINS:
                raise self.err(f"'{name}' is a builtin variable, not a function", ntok.span,
                               f"write {name} without parentheses")
            hint = did_you_mean(name, FUNCTIONS)
            raise self.err(f"unknown function '{name}'", ntok.span, hint or
                           "functions: " + ", ".join(sorted(FUNCTIONS)))
        if name in MAP_AGGREGATIONS:
            raise self.err(f"{name}() can only be assigned to a map", ntok.span,
                           f"write @name = {name}(...) or @name[key] = {name}(...)")
        self.expect("(")
        fmt_tok = self.tok
        args = self.call_args(name)
        lo, hi = FUNCTIONS[name]
        self.check_arity(name, args, lo, hi, ntok)
        span = self.span_from(ntok.start)
        if name in UNSAFE_FUNCTIONS:
            self.unsafe.append((name, span))
        if name in STRING_ARG or name == "printf":
            a0 = args[0] if args else None
            if isinstance(a0, ir.Call) and a0.name == "str" and len(a0.args) == 1 and \
                    isinstance(a0.args[0], ir.Const) and isinstance(a0.args[0].value, str):
                a0 = args[0] = a0.args[0]  # kaddr(str($1)): the parameter's text is the literal
            if a0 is not None and not (isinstance(a0, ir.Const) and isinstance(a0.value, str)):
                raise self.err(f"{name}() needs a string literal as its first argument", a0.span)
            if name in ("printf", "system", "cat") and a0 is not None and fmt_tok.kind == "str":
                check_format(fmt_tok, len(args) - 1, name, self.source, self.origin, args[1:])
            if name in ("time",) and a0 is not None and fmt_tok.kind != "str":
                raise self.err("time() needs a string literal", a0.span)
        if name == "str" and args:
            args[0] = self.fold_str_arg(args[0])
        if name == "signal" and isinstance(args[0], ir.Const) and isinstance(args[0].value, str):
            sig = args[0].value
            import re

            if not re.match(r"^(SIG)?[A-Z0-9+]+$", sig):
                raise self.err(f"unknown signal '{sig}'", args[0].span, "write signal(\"SIGKILL\") or signal(9)")
        if name not in ("sizeof", "offsetof"):
            for a in args:
                if isinstance(a, ir.TypeName):
                    raise self.err(f"{name}() takes a value, not a type", a.span)
        return ir.Call(name, args).at(span)

    def fold_str_arg(self, a: ir.Expr) -> ir.Expr:
        """``str($1)`` of a missing parameter is ``""``; ``str($1 + 2)`` drops 2 characters."""
        if isinstance(a, ir.Const) and id(a) in self.missing_pos:
            return ir.Const("").at(a.span)
        if isinstance(a, ir.Const) and id(a) in self.pos_text:
            return ir.Const(self.pos_text[id(a)]).at(a.span)
        if isinstance(a, ir.Binary) and a.op == "+" and isinstance(a.left, ir.Const) \
                and isinstance(a.right, ir.Const) and isinstance(a.right.value, int):
            base = a.left
            if id(base) in self.missing_pos:
                base = ir.Const("").at(base.span)
            if isinstance(base.value, str):
                n = a.right.value
                if not 0 <= n <= len(base.value):
                    raise self.err("str($N + k): k must be between 0 and the parameter's length", a.right.span)
                return ir.Const(base.value[n:]).at(a.span)
        return a
