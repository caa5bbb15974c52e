"""Recursive-descent parser for the bpftrace language, producing :mod:`undertow.lang.ir`.

Grammar (what bpftrace 0.17 accepts, see docs/bpftrace.md)::

    program    := [config] probe*
    config     := 'config' '=' '{' (IDENT '=' (INT|STRING|IDENT) ';')* '}'
    probe      := spec (',' spec)* ['/' expr '/'] block
    block      := '{' (stmt (';' | after a '}'))* '}'
    stmt       := 'if' '(' expr ')' block ['else' ('if' ... | block)]
                | 'unroll' '(' INT ')' block | 'while' '(' expr ')' block
                | 'return' | 'break' | 'continue'
                | lvalue ('=' | '+=' | '-=' | ... ) expr  |  lvalue ('++'|'--')  |  ('++'|'--') lvalue
                | '@map[...]' '=' AGG '(' args ')'
                | expr                                  (printf/print/clear/delete/exit... or a ternary of them)
    expr       := C expressions with C precedence: ?: || && | ^ & == != < <= > >= << >> + - * / %,
                  unary ! ~ - * and casts '(' type ')', postfix -> . [] and calls.

Names in the IR keep their sigil as written: ``Var("$x")``, ``Assign(var="$x")``,
``MapRead("@start")``, ``MapUpdate(map="@")`` for the anonymous map.
``$x++``, ``$x += e``, ``@m[k]++`` are desugared into :class:`ir.Assign` and
:class:`ir.MapUpdate` (``agg="assign"``) of a :class:`ir.Binary`.
Positional parameters ``$1``.. and ``$#`` are replaced by constants from the
``positional`` list (a parameter made only of digits is a number, others are
strings; a missing one is 0, or ``""`` inside ``str()``, as in bpftrace).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from ...errors import ParseError, Span, did_you_mean
from .. import ir
from ..printf import conversions
from .lexer import _IDENT_CHARS, Lexer, Tok
from .preprocess import KNOWN_MACROS, preprocess
from .probes import parse_spec

__all__ = ["parse_program", "BUILTINS", "FUNCTIONS", "MAP_AGGREGATIONS", "check_format"]

#: Builtin variables (bpftrace reference guide, "Variables / Builtins").
BUILTINS = (
    "pid", "tid", "uid", "gid", "nsecs", "elapsed", "numaid", "cpu", "comm", "kstack", "ustack",
    "func", "probe", "curtask", "rand", "cgroup", "cpid", "username", "jiffies", "ctx", "args",
    "retval",
)

#: Aggregation functions: only valid as ``@map[...] = f(...)``; name -> (min args, max args).
MAP_AGGREGATIONS: Dict[str, Tuple[int, int]] = {
    "count": (0, 0), "sum": (1, 1), "avg": (1, 1), "min": (1, 1), "max": (1, 1),
    "stats": (1, 1), "hist": (1, 1), "lhist": (4, 4),
}

_MANY = 1 << 30

#: Functions: name -> (min args, max args).
FUNCTIONS: Dict[str, Tuple[int, int]] = {
    "printf": (1, _MANY), "time": (0, 1), "join": (1, 2), "str": (1, 2), "buf": (1, 2),
    "ksym": (1, 1), "usym": (1, 1), "kaddr": (1, 1), "uaddr": (1, 1), "reg": (1, 1),
    "system": (1, _MANY), "exit": (0, 0), "cgroupid": (1, 1), "kstack": (0, 2), "ustack": (0, 2),
    "ntop": (1, 2), "pton": (1, 1), "cat": (1, _MANY), "signal": (1, 1), "strncmp": (3, 3),
    "strcontains": (2, 2), "override": (1, 1), "sizeof": (1, 1), "offsetof": (2, 2),
    "print": (1, 3), "strftime": (2, 2), "path": (1, 1), "uptr": (1, 1), "kptr": (1, 1),
    "macaddr": (1, 1), "bswap": (1, 1), "cgroup_path": (1, 2), "strerror": (1, 1),
    "delete": (1, 2), "clear": (1, 1), "zero": (1, 1), "len": (1, 1),
}
FUNCTIONS.update(MAP_AGGREGATIONS)

#: Functions that are statements: they have no value.
VOID_FUNCTIONS = frozenset(("printf", "time", "join", "system", "exit", "cat", "signal", "override",
                            "print", "delete", "clear", "zero"))

#: Functions that need ``--unsafe`` in bpftrace (listed in ``Program.settings["unsafe_calls"]``).
UNSAFE_FUNCTIONS = frozenset(("system", "signal", "override"))

#: Functions whose argument must be a string literal.
_STRING_ARG = {"kaddr", "uaddr", "reg", "cgroupid", "time", "strftime", "cat", "system"}

#: Integer type names a cast may use (bpftrace's own, then C spellings of them).
INT_TYPES = frozenset((
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64",
    "__u8", "__u16", "__u32", "__u64", "__s8", "__s16", "__s32", "__s64",
    "int8_t", "int16_t", "int32_t", "int64_t", "uint8_t", "uint16_t", "uint32_t", "uint64_t",
    "size_t", "ssize_t", "pid_t", "uid_t", "gid_t", "bool", "_Bool", "void",
    "char", "short", "int", "long", "unsigned", "signed",
))
_C_WORDS = frozenset(("char", "short", "int", "long", "unsigned", "signed", "const", "volatile"))
_RECORD_WORDS = frozenset(("struct", "union", "enum"))
_KEYWORDS = frozenset(("if", "else", "unroll", "while", "for", "return", "break", "continue", "config"))

#: Binary operators and their precedence (C's; higher binds tighter).
_BINARY = {
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6,
    "<": 7, "<=": 7, ">": 7, ">=": 7, "<<": 8, ">>": 8, "+": 9, "-": 9, "*": 10, "/": 10, "%": 10,
}
_COMPOUND = {"+=": "+", "-=": "-", "*=": "*", "/=": "/", "%=": "%", "&=": "&", "|=": "|", "^=": "^",
             "<<=": "<<", ">>=": ">>"}

_CONVERSIONS = "diouxXcsp" + "r"
_ASCII_DIGITS = frozenset("0123456789")


def _is_decimal(text: str) -> bool:
    """``-?[0-9]+`` (ASCII digits only: ``str.isdigit`` also takes other scripts' digits)."""
    digits = text[1:] if text.startswith("-") else text
    return digits != "" and all(c in _ASCII_DIGITS for c in digits)
#: bpftrace's limits: lhist() buckets, and how often one statement may be emitted by nested
#: unroll() (each repeats its body; nested ones multiply) and by macro expansion (a macro
#: using another twice doubles at each level): past them the compiler would grow for minutes
_LHIST_BUCKETS = 1000
_MAX_WIDTH = 4096  # printf field widths and precisions (Python's % refuses huge ones at run time)
_MAX_UNROLLED = 10_000
_MAX_EXPANSIONS = 10_000
_DEPTH_HINT = "keep a part in a $variable: $t = (struct task_struct *)curtask; ... $t->mm"
_BLOCK_HINT = "keep a condition in a $variable, or return early"


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


class _Parser:
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
        self.blocks = 0  # if/while/unroll statements open around the current one
        self.unrolled = 1  # how many times the current statement is emitted (nested unroll())
        self.expansions = [0]  # macro expansions so far (shared with macro sub-parsers)
        self.in_filter = False
        self.loop_depth = 0
        self.expanding: List[str] = []
        self.missing_pos: Set[int] = set()
        self.unsafe: List[Tuple[str, Span]] = []
        self.maps: Dict[str, ir.MapDecl] = {}
        self.map_spans: Dict[str, Span] = {}

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

    def enter_block(self, tok: Tok) -> None:
        """One ``if``/``while``/``unroll`` deeper (``else if`` nests too)."""
        self.blocks += 1
        if self.blocks > ir.MAX_BLOCK_DEPTH:
            raise self.err(f"blocks nested too deeply (limit {ir.MAX_BLOCK_DEPTH} levels)", tok.span, _BLOCK_HINT)

    # ------------------------------------------------------------------ program

    def program(self) -> ir.Program:
        probes: List[ir.Probe] = []
        settings: Dict[str, object] = {}
        if self.tok.kind == "ident" and self.tok.text == "config" and self.peek().is_op("="):
            settings["config"] = self.config()
        while self.tok.kind != "eof":
            probes.append(self.probe())
        if not probes:
            raise self.err("no probes in the program", Span(0, max(1, min(len(self.source), 1))),
                           "a program looks like: BEGIN { printf(\"hello\\n\"); }")
        settings["frontend"] = "bt"
        settings["unsafe_calls"] = list(self.unsafe)
        if self.pp.structs:
            settings["c_structs"] = dict(self.pp.structs)
        if self.pp.defines:
            settings["defines"] = dict(self.pp.defines)
        if self.pp.includes:
            settings["includes"] = list(self.pp.includes)
        prog = ir.Program(probes, dict(self.maps), settings, source=self.source, origin=self.origin)
        return prog

    def config(self) -> Dict[str, object]:
        self.advance()
        self.expect("=")
        self.expect("{")
        out: Dict[str, object] = {}
        while not self.tok.is_op("}"):
            if self.tok.is_op(";"):
                self.advance()
                continue
            if self.tok.kind != "ident":
                raise self.unexpected("a config key")
            key = self.advance().text
            self.expect("=")
            if self.tok.kind not in ("int", "str", "ident"):
                raise self.unexpected("a number, a string or a name")
            out[key] = self.advance().value
            if not self.tok.is_op("}"):
                self.expect(";")
        self.advance()
        return out

    # ------------------------------------------------------------------ probes

    def read_spec(self, i: int) -> Tuple[str, int, int]:
        """Read one attach-point spec from the raw text at ``i``: (text, start, end)."""
        t = self.text
        n = len(t)
        start = i
        while i < n and t[i] in _IDENT_CHARS:
            i += 1
        head = t[start:i]
        path_field = head in ("uprobe", "uretprobe", "usdt", "u", "ur", "U")
        field = 0
        while i < n:
            c = t[i]
            if c == ":":
                field += 1
                i += 1
                continue
            if path_field and field == 1:
                if c in " \t\r\n,{}":
                    break
                i += 1
                continue
            if c in _IDENT_CHARS or c in ".*?+-$#[]":
                i += 1
                continue
            break
        return t[start:i], start, i

    def substitute_spec(self, spec: str, start: int) -> str:
        def repl(m: "re.Match[str]") -> str:
            if m.group(0) == "$#":
                return str(len(self.positional))
            k = int(m.group(0)[1:])
            if k < 1:
                raise self.err("positional parameters start at $1",
                               Span(start + m.start(), start + m.end()))
            return self.positional[k - 1] if k <= len(self.positional) else ""
        if "$" not in spec:
            return spec
        import re  # only specs with positional parameters: compiling costs start-up

        return re.sub(r"\$(?:#|\d+)", repl, spec)

    def probe(self) -> ir.Probe:
        tok = self.tok
        if tok.kind != "ident":
            raise self.err(f"unexpected {tok.describe()}, expected a probe",
                           None, "a probe looks like BEGIN, tracepoint:syscalls:sys_enter_openat or kprobe:vfs_read")
        start = tok.start
        attach: List[ir.AttachPoint] = []
        names: List[str] = []
        while True:
            spec, s, e = self.read_spec(self.tok.start)
            if not spec:
                raise self.unexpected("a probe")
            text = self.substitute_spec(spec, s) if "$" in spec else spec
            try:
                ap, name = parse_spec(text, s, self.source, self.origin)
            except ParseError as ex:
                if text != spec:
                    ex.span = Span(s, e)
                raise
            ap.span = Span(s, e)
            attach.append(ap)
            names.append(name)
            self.prev_end = e
            self.tok = self.lex.next(e)
            if self.tok.is_op(","):
                self.advance()
                if self.tok.kind != "ident":
                    raise self.unexpected("another probe after ','")
                continue
            break
        filt: Optional[ir.Expr] = None
        if self.tok.is_op("/"):
            self.advance()
            self.in_filter = True
            try:
                filt = self.value(self.expr())
            finally:
                self.in_filter = False
            if not self.tok.is_op("/"):
                raise self.unexpected("'/' to end the filter")
            self.advance()
        if not self.tok.is_op("{"):
            hint = ""
            if self.tok.kind in ("ident", "int") and attach:
                hint = "separate several probes with ',' (probe1, probe2 { ... })"
            raise self.unexpected("'{' or a filter /.../", hint)
        actions = self.block()
        return ir.Probe(attach, filt, actions, name=",".join(names), span=self.span_from(start),
                        source=self.source, origin=self.origin)

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
            if not 1 <= n.value <= 100:
                raise self.err("unroll() count must be between 1 and 100", n.span)
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
        """One statement; the flag says it ended with a block (no ';' needed)."""
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
        e = self.unary()
        if self.tok.kind == "op" and (self.tok.text == "=" or self.tok.text in _COMPOUND):
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
            op = _COMPOUND[optok.text]
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
        if self.tok.kind == "op" and self.tok.text in _BINARY or self.tok.is_op("?"):
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
        while self.tok.kind == "op" and self.tok.text in _BINARY:
            op = self.tok.text
            prec = _BINARY[op]
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
            raise self.err(f"'{t.text}' is only supported as a statement ($x{t.text}; or @m{t.text};)", t.span)
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
        return self.postfix(self.primary())

    def try_type(self, tok: Tok, ends: Tuple[str, ...]) -> Optional[Tuple[str, int]]:
        """If a type name starts at ``tok`` and one of ``ends`` follows it: (type text, end of that token).

        Types: ``struct|union|enum NAME``, integer types (``uint32``, ``unsigned long``),
        or a typedef name followed by ``*``; then ``*``s and an optional ``[N]``.
        """
        if tok.kind != "ident":
            return None
        words: List[str] = []
        t = tok
        if t.text in _RECORD_WORDS:
            nt = self.lex.next(t.end)
            if nt.kind != "ident":
                return None
            words = [t.text, nt.text]
            t = self.lex.next(nt.end)
        elif t.text in INT_TYPES or t.text in _C_WORDS:
            while t.kind == "ident" and (t.text in INT_TYPES or t.text in _C_WORDS):
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

    def postfix(self, e: ir.Expr) -> ir.Expr:
        while True:
            t = self.tok
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
        if _is_decimal(v):
            n = int(v)
            if not -(1 << 63) <= n < 1 << 64:
                raise self.err(f"positional parameter ${k} ({v}) does not fit in 64 bits", t.span)
            return ir.Const(n).at(t.span)
        return ir.Const(v).at(t.span)

    def identifier(self) -> ir.Expr:
        t = self.advance()
        name = t.text
        if self.tok.is_op("("):
            return self.call(t)
        if name in _KEYWORDS:
            raise self.err(f"'{name}' cannot be used in an expression", t.span)
        if name == "retval":
            return ir.Retval().at(t.span)
        if name.startswith("arg") and _is_decimal(name[3:]):  # the lexer's names start with no '-'
            return ir.Arg(int(name[3:])).at(t.span)
        if (name.startswith("sarg") and _is_decimal(name[4:])) or name in BUILTINS:
            return ir.Builtin(name).at(t.span)
        if name in self.pp.defines:
            return self.expand_macro(name, t)
        if name in KNOWN_MACROS:
            return ir.Const(KNOWN_MACROS[name]).at(t.span)
        if name in FUNCTIONS:
            raise self.err(f"'{name}' is a function", t.span, f"did you mean {name}()?")
        if name in INT_TYPES or name in _RECORD_WORDS:
            raise self.err(f"unexpected type name '{name}'", t.span,
                           f"a cast is written ({name} ...)expr" if name not in _RECORD_WORDS
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
        sub = _Parser.__new__(_Parser)
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
        elif hi >= _MANY:
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
        if name in _STRING_ARG or name == "printf":
            a0 = args[0] if args else None
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


def _deepcopy(x: object) -> Any:
    return ir.clone(x)


def parse_program(text: str, origin: str = "<stdin>", positional: Sequence[str] = ()) -> ir.Program:
    """Parse a bpftrace program into an unresolved :class:`ir.Program`.

    ``origin`` names the text in messages (a file name or ``<stdin>``);
    ``positional`` are the values of ``$1``.. (``$#`` is their count). Every
    probe's ``source`` is the whole text, so spans are offsets into it.

    ``Program.settings`` gets ``unsafe_calls`` (``[(name, Span)]`` of
    ``system``/``signal``/``override``, for the CLI's ``--unsafe`` check) and,
    when present, ``c_structs`` (script-defined structs, ``"struct NAME"`` ->
    :class:`~undertow.lang.bt.preprocess.CStructDef`), ``defines``, ``includes``
    and ``config``. ``Program.maps`` records each map whose aggregation is
    evident (``agg`` = ``count``/``hist``/... or ``assign``).

    Raises :class:`undertow.errors.ParseError` (and nothing else) for bad input.
    """
    if not isinstance(text, str):
        raise ParseError(f"a program is text, not {type(text).__name__}", origin=origin)
    try:
        return _Parser(text, origin, positional).program()
    except RecursionError:
        raise ParseError("program nested too deeply", source=text, span=Span(0, 1), origin=origin) from None
