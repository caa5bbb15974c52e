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

The parser is layered: :mod:`.expressions` (the token cursor, errors and expressions),
:mod:`.statements` (blocks and statements) and this module (the program: config,
probes); the language's names are in :mod:`.language`, attach-point specs in
:mod:`.probes` and the preprocessing (comments, ``#define``, script structs) in
:mod:`.preprocess`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Sequence, Tuple

from ...errors import ParseError, Span
from .. import ir
from .expressions import check_format
from .language import BUILTINS, FUNCTIONS, MAP_AGGREGATIONS
from .lexer import _IDENT_CHARS
from .probes import parse_spec
from .statements import StmtParser

# the language's tables and check_format live in .language and .expressions (issue 15)
__all__ = ["parse_program", "BUILTINS", "FUNCTIONS", "MAP_AGGREGATIONS", "check_format"]


class _Parser(StmtParser):
    """A whole program: the config block, probes (attach-point specs, filter, block)."""

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
            if c == '"' and field:
                # a quoted field (bpftrace: uprobe:/bin/bash:"echo_builtin"+0,
                # usdt:PATH:PROVIDER:"\"name\""): taken whole, backslash escapes included
                j = i + 1
                while j < n and t[j] not in '"\n':
                    j += 2 if t[j] == "\\" else 1
                if j >= n or t[j] != '"':
                    raise self.err("unterminated quoted name in a probe", Span(i, min(j, n)))
                i = j + 1
                continue
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
