"""Recursive-descent parser for SystemTap scripts (the SystemTap Language Reference's grammar).

::

    script   := (probe | alias | global | function | embedded C)*
    probe    := 'probe' point (',' point)* block
    alias    := 'probe' point (',' point)* ('=' | '+=') point (',' point)* block
    point    := part ('.' part)* ['?' | '!'] ['if' '(' expr ')']
    part     := NAME ['(' STRING | NUMBER ')'] | '*' | '{' part ',' ... '}'  (brace lists expand)
    global   := ['private'] 'global' NAME ['[' N ']'] ['=' literal] (',' ...)*
    function := 'function' NAME [':' type] '(' [NAME [':' type]] (',' ...)* ')' block
    stmt     := block | ';' | if | while | for | foreach | break | continue | next
              | return [expr] | delete expr | expr
    foreach  := 'foreach' '(' [NAME '='] (NAME | '[' NAME, ... ']') ['+'|'-'] 'in' NAME ['+'|'-']
                ['limit' expr] ')' stmt
    expr     := C expressions, with '.' (string concatenation, additive), '<<<' (statistics),
                'in' (membership), '$name->member[i]', '@op(...)', '$1'/'@1'.

The preprocessor's ``%( COND %? A [%: B] %)`` is resolved on the tokens first: COND compares
``kernel_v``/``kernel_vr`` (this kernel's release), ``arch``, ``systemtap_v`` (taken as
4.8), ``runtime`` (``kernel``), ``CONFIG_X`` (from /proc/config.gz or /boot, else ``""``)
and ``$#``/``@#`` with strings or numbers, joined by ``&&``/``||``.
"""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Sequence, Tuple

from ...errors import ParseError, Span
from .ast import Alias, Function, Global, N, Probe, ProbePoint, Script
from .lexer import Tok, tokenize

__all__ = ["parse_script", "ASSIGN_OPS", "STAP_VERSION"]

#: the SystemTap version whose language this front end follows (``systemtap_v``)
STAP_VERSION = "4.8"
ASSIGN_OPS = frozenset(("=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "^=", "|=", ".=", "<<<"))
#: binary operators and their precedence (stap's grammar; higher binds tighter)
_BINARY = {
    "||": 1, "&&": 2, "in": 3, "|": 4, "^": 5, "&": 6, "==": 7, "!=": 7, "=~": 7, "!~": 7,
    "<": 8, "<=": 8, ">": 8, ">=": 8, "<<": 9, ">>": 9, "+": 10, "-": 10, ".": 10,
    "*": 11, "/": 11, "%": 11,
}
_MAX_DEPTH = 60


class _Parser:
    def __init__(self, text: str, origin: str, nparams: int, params: "Optional[Sequence[str]]" = None) -> None:
        self.source, self.origin = text, origin
        self.params = None if params is None else list(params)
        self.toks = _preprocess(tokenize(text, origin), text, origin, nparams)
        self.i = 0
        self.depth = 0

    # -- cursor
    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def advance(self) -> Tok:
        t = self.toks[self.i]
        if t.kind != "eof":
            self.i += 1
        return t

    def err(self, msg: str, span: Optional[Span] = None, *hints: str) -> ParseError:
        return ParseError(msg, source=self.source, span=span or self.tok.span, origin=self.origin,
                          hints=[h for h in hints if h])

    def unexpected(self, what: str, *hints: str) -> ParseError:
        return self.err(f"unexpected {self.tok.describe()}, expected {what}", None, *hints)

    def expect(self, op: str, hint: str = "") -> Tok:
        if not self.tok.is_op(op):
            raise self.unexpected(f"'{op}'", hint)
        return self.advance()

    def name(self, what: str = "a name") -> Tok:
        if self.tok.kind != "ident":
            raise self.unexpected(what)
        return self.advance()

    def since(self, start: int) -> Span:
        prev = self.toks[self.i - 1] if self.i else self.tok
        return Span(start, max(prev.end, start + 1))

    # -- top level
    def script(self) -> Script:
        s = Script(self.source, self.origin)
        while self.tok.kind != "eof":
            t = self.tok
            if t.kind == "embedded":
                s.embedded.append(t.span)
                self.advance()
            elif t.is_word("probe"):
                self.probe(s)
            elif t.is_word("global") or (t.is_word("private") and self.peek().is_word("global")):
                if t.is_word("private"):
                    self.advance()
                self.globals(s)
            elif t.is_word("private") and self.peek().is_word("function"):
                self.advance()
                self.function(s)
            elif t.is_word("function"):
                self.function(s)
            elif t.is_op(";"):
                self.advance()
            else:
                raise self.unexpected("'probe', 'global' or 'function'",
                                      'a script looks like: probe begin { printf("hello\\n"); exit() }')
        if not s.probes and not s.embedded:
            raise self.err("no probes in the script", Span(0, 1),
                           'a script looks like: probe begin { printf("hello\\n"); exit() }')
        return s

    def probe(self, s: Script) -> None:
        start = self.advance().start
        points = self.point_list()
        if self.tok.is_op("=", "+="):
            epilogue = self.advance().text == "+="
            rhs = self.point_list()
            body = self.block()
            s.aliases.append(Alias(points, rhs, body, epilogue, self.since(start)))
            return
        body = self.block()
        s.probes.append(Probe(points, body, self.since(start)))

    def point_list(self) -> List[ProbePoint]:
        out = self.point()
        while self.tok.is_op(","):
            self.advance()
            out += self.point()
        return out

    def splice_params(self) -> None:
        """``probe $1 { }``, ``probe $1.return``: the argument's text, as tokens, in place of
        ``$1``/``@1`` in a probe point (SystemTap substitutes arguments in probe points)."""
        t = self.tok
        if t.kind not in ("pos", "atpos") or self.params is None:
            return
        k = int(t.value)  # type: ignore[arg-type]
        if not 1 <= k <= len(self.params):
            raise self.err(f"command line argument index {k} out of range [1-{len(self.params)}]", t.span,
                           "give the script's arguments after its file: undertow stap FILE ARG...")
        try:
            sub = tokenize(self.params[k - 1], f"argument {k}")[:-1]
        except ParseError as e:
            raise self.err(f"argument {k} is not a probe point: {e.message}", t.span) from None
        # the argument's tokens point at $N in the script; tokens written together in the
        # argument (function("f")) stay together (zero-width at $N) for the probe point's parser
        glued = [i + 1 < len(sub) and sub[i + 1].start == x.end for i, x in enumerate(sub)]
        for i, x in enumerate(sub):
            x.start, x.end = t.start, (t.start if glued[i] or (i and glued[i - 1]) else t.end)
        self.toks[self.i:self.i + 1] = sub

    def point(self) -> List[ProbePoint]:
        """One probe point; a brace list (``vfs.{read,write}``) gives several."""
        self.splice_params()
        start = self.tok.start
        alts: List[List[Tuple[str, object]]] = [[]]
        while True:
            choices = self.part()
            alts = [a + [c] for a in alts for c in choices]
            if self.tok.is_op(".") and (self.tok.start == self.toks[self.i - 1].end or
                                        self.peek().kind in ("pos", "atpos", "ident")):
                self.advance()
                self.splice_params()
                continue
            break
        span = self.since(start)
        optional = sufficient = False
        while self.tok.is_op("?", "!"):
            if self.advance().text == "?":
                optional = True
            else:
                sufficient = optional = True
        cond = None
        if self.tok.is_word("if") and self.peek().is_op("("):
            self.advance()
            self.advance()
            cond = self.expr()
            self.expect(")")
        out = []
        for a in alts:
            pp = ProbePoint(a, span)
            pp.optional, pp.sufficient, pp.cond = optional, sufficient, cond
            out.append(pp)
        return out

    def part(self) -> List[Tuple[str, object]]:
        t = self.tok
        if t.is_op("{"):
            self.advance()
            out = []
            while True:
                out += self.part()
                while self.tok.is_op("?", "!"):  # kernel.{trace("a")!, trace("b")}: taken as optional
                    self.advance()
                if self.tok.is_op(","):
                    self.advance()
                    continue
                self.expect("}")
                return out
        name = ""
        end = t.start
        # a component: letters, digits, '_' and '*' wildcards written together
        while (self.tok.kind in ("ident", "int") or self.tok.is_op("*")) and (not name or self.tok.start == end):
            name += self.tok.text
            end = self.advance().end
        if not name:
            raise self.unexpected("a probe point", "probe points look like begin, syscall.open, "
                                  'kernel.function("vfs_read").return or timer.s(1)')
        arg: object = None
        if self.tok.is_op("(") and self.tok.start == end:
            self.advance()
            a = self.tok
            if a.is_op("-") and self.peek().kind == "int":  # begin(-100): a priority
                self.advance()
                a = self.tok
                a = Tok("int", "-" + a.text, a.start - 1, a.end, -int(a.value))  # type: ignore[arg-type]
            if a.kind == "str":
                arg = a.value
            elif a.kind == "int":
                arg = a.value
            elif a.kind in ("pos", "atpos"):
                arg = a  # resolved against the arguments by the elaborator
            else:
                raise self.unexpected("a string or a number")
            self.advance()
            self.expect(")")
        return [(name, arg)]

    def globals(self, s: Script) -> None:
        self.advance()
        while True:
            t = self.name("a global variable's name")
            size = None
            if self.tok.is_op("%") and self.tok.start == t.end:  # wrapping array: kept as a map
                self.advance()
            if self.tok.is_op("["):
                self.advance()
                if self.tok.kind == "int":
                    size = int(self.advance().value)  # type: ignore[arg-type]
                self.expect("]")
                if self.tok.is_op("%"):
                    self.advance()
            init = None
            if self.tok.is_op("="):
                self.advance()
                init = self.unary()
                if init.kind not in ("lit",) and not (init.kind == "unary" and init.expr.kind == "lit") \
                        and init.kind not in ("pos",):
                    raise self.err("a global is initialised with a literal", init.span)
            if t.text in s.globals:
                raise self.err(f"global '{t.text}' declared twice", t.span)
            s.globals[t.text] = Global(t.text, init, t.span, size)
            if self.tok.is_op(","):
                self.advance()
                continue
            if self.tok.is_op(";"):
                self.advance()
            return

    def function(self, s: Script) -> None:
        start = self.advance().start
        t = self.name("a function name")
        rtype = ""
        if self.tok.is_op(":"):
            self.advance()
            rtype = self.name("a type (long or string)").text
        self.expect("(")
        params: List[Tuple[str, str]] = []
        while not self.tok.is_op(")"):
            p = self.name("a parameter name")
            ptype = ""
            if self.tok.is_op(":"):
                self.advance()
                ptype = self.name("a type (long or string)").text
            params.append((p.text, ptype))
            if self.tok.is_op(","):
                self.advance()
                continue
            if not self.tok.is_op(")"):
                raise self.unexpected("',' or ')'")
        self.advance()
        if self.tok.kind == "embedded":
            raise self.err(f"function {t.text}() is embedded C", self.tok.span,
                           "undertow runs no C (no kernel module): a tapset function it knows, or a script "
                           "function, instead")
        body = self.block()
        if t.text in s.functions:
            raise self.err(f"function '{t.text}' defined twice", t.span)
        s.functions[t.text] = Function(t.text, params, body, rtype, self.since(start))

    # -- statements
    def block(self) -> N:
        start = self.expect("{").start
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.err("blocks nested too deeply")
        out = []
        while not self.tok.is_op("}"):
            if self.tok.kind == "eof":
                raise self.unexpected("'}'")
            st = self.statement()
            if st is not None:
                out.append(st)
        self.advance()
        self.depth -= 1
        return N("block", self.since(start), body=out)

    def statement(self) -> Optional[N]:
        t = self.tok
        start = t.start
        if t.is_op(";"):
            self.advance()
            return None
        if t.is_op("{"):
            return self.block()
        if t.kind == "embedded":
            raise self.err("embedded C in a probe", t.span, "undertow runs no C (no kernel module)")
        if t.kind == "ident":
            w = t.text
            if w == "if":
                self.advance()
                self.expect("(")
                cond = self.expr()
                self.expect(")")
                then = self.statement_body()
                other = None
                if self.tok.is_word("else"):
                    self.advance()
                    other = self.statement_body()
                return N("if", self.since(start), cond=cond, then=then, other=other)
            if w == "while":
                self.advance()
                self.expect("(")
                cond = self.expr()
                self.expect(")")
                return N("while", self.since(start), cond=cond, body=self.statement_body())
            if w == "for":
                self.advance()
                self.expect("(")
                init = None if self.tok.is_op(";") else self.expr()
                self.expect(";")
                cond = None if self.tok.is_op(";") else self.expr()
                self.expect(";")
                step = None if self.tok.is_op(")") else self.expr()
                self.expect(")")
                return N("for", self.since(start), init=init, cond=cond, step=step, body=self.statement_body())
            if w == "foreach":
                return self.foreach()
            if w in ("break", "continue", "next"):
                self.advance()
                self.semi()
                return N(w, t.span)
            if w == "return":
                self.advance()
                value = None
                if not self.tok.is_op(";", "}"):
                    value = self.expr()
                self.semi()
                return N("return", self.since(start), value=value)
            if w == "delete":
                self.advance()
                target = self.expr()
                self.semi()
                return N("delete", self.since(start), target=target)
            if w == "try":
                self.advance()
                body = self.block()
                if not self.tok.is_word("catch"):
                    raise self.unexpected("'catch'")
                self.advance()
                var = None
                if self.tok.is_op("("):
                    self.advance()
                    var = self.name("the error message's variable").text
                    self.expect(")")
                handler = self.block()
                return N("try", self.since(start), body=body, var=var, handler=handler)
        e = self.expr()
        self.semi()
        return N("expr", self.since(start), expr=e)

    def semi(self) -> None:
        if self.tok.is_op(";"):
            self.advance()

    def statement_body(self) -> N:
        st = self.statement()
        return st if st is not None else N("block", self.tok.span, body=[])

    def foreach(self) -> N:
        start = self.advance().start
        self.expect("(")
        value_var = None
        if self.tok.kind == "ident" and self.peek().is_op("="):
            value_var = self.advance().text
            self.advance()
        keys: List[str] = []
        sort_key = None
        sort_dir = 0
        if self.tok.is_op("["):
            self.advance()
            while True:
                keys.append(self.name("a key variable").text)
                if self.tok.is_op("+", "-"):
                    sort_dir = 1 if self.advance().text == "+" else -1
                    sort_key = len(keys)
                if self.tok.is_op(","):
                    self.advance()
                    continue
                break
            self.expect("]")
        else:
            keys.append(self.name("a key variable").text)
            if self.tok.is_op("+", "-"):
                sort_dir = 1 if self.advance().text == "+" else -1
                sort_key = 1
        if not self.tok.is_word("in"):
            raise self.unexpected("'in'")
        self.advance()
        arr = self.name("an array")
        array = N("name", arr.span, name=arr.text)
        if self.tok.is_op("["):  # foreach (k in arr[*, "x"]): a slice
            raise self.err("foreach over a slice of an array is not supported", self.tok.span)
        agg = None
        if self.tok.kind == "at" and self.tok.text[1:] in ("count", "sum", "min", "max", "avg"):
            agg = self.advance().text[1:]  # foreach (k in stats @sum-): sorted by that aggregate
        if self.tok.is_op("+", "-"):
            sort_dir = 1 if self.advance().text == "+" else -1
            sort_key = 0  # by value
        limit = None
        if self.tok.is_word("limit"):
            self.advance()
            limit = self.expr()
        self.expect(")")
        body = self.statement_body()
        return N("foreach", self.since(start), keys=keys, value_var=value_var, array=array, sort_key=sort_key,
                 sort_dir=sort_dir, limit=limit, body=body, agg=agg)

    # -- expressions
    def expr(self) -> N:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.err("expression nested too deeply")
        try:
            return self.assignment()
        finally:
            self.depth -= 1

    def assignment(self) -> N:
        start = self.tok.start
        left = self.ternary()
        if self.tok.kind == "op" and self.tok.text in ASSIGN_OPS:
            op = self.advance()
            if left.kind not in ("name", "index", "target"):
                raise self.err("only variables and array elements can be assigned", left.span)
            value = self.assignment()
            return N("assign", self.since(start), op=op.text, target=left, value=value, op_span=op.span)
        return left

    def ternary(self) -> N:
        start = self.tok.start
        cond = self.binary(1)
        if self.tok.is_op("?"):
            self.advance()
            then = self.expr()
            self.expect(":")
            other = self.ternary()
            return N("ternary", self.since(start), cond=cond, then=then, other=other)
        return cond

    def binop(self) -> Optional[str]:
        t = self.tok
        if t.kind == "op" and t.text in _BINARY:
            return t.text
        if t.is_word("in"):
            return "in"
        return None

    def binary(self, min_prec: int) -> N:
        start = self.tok.start
        left = self.unary()
        while True:
            op = self.binop()
            if op is None or _BINARY[op] < min_prec:
                return left
            optok = self.advance()
            if op == "in":
                arr = self.name("an array after 'in'")
                keys = left.elems if left.kind == "tuple" else [left]
                left = N("in", self.since(start), keys=keys, array=arr.text, array_span=arr.span)
                continue
            right = self.binary(_BINARY[op] + 1)
            left = N("binary", self.since(start), op=op, left=left, right=right, op_span=optok.span)

    def unary(self) -> N:
        t = self.tok
        if t.is_op("!", "~", "-", "+"):
            self.advance()
            e = self.unary()
            if t.text == "+":
                return e
            if t.text == "-" and e.kind == "lit" and isinstance(e.value, int):
                return N("lit", self.since(t.start), value=-e.value)
            return N("unary", self.since(t.start), op=t.text, expr=e)
        if t.is_op("++", "--"):
            self.advance()
            e = self.unary()
            return N("incdec", self.since(t.start), op=t.text[0], target=e, post=False)
        if t.is_op("&"):
            self.advance()
            e = self.unary()
            return N("addr", self.since(t.start), expr=e)
        return self.postfix(self.primary())

    def postfix(self, e: N) -> N:
        while True:
            t = self.tok
            if t.is_op("++", "--"):
                self.advance()
                e = N("incdec", self.since(e.span.start), op=t.text[0], target=e, post=True)
            elif t.is_op("->") and e.kind in ("target", "at", "member", "subscript", "name", "call", "index"):
                # on a variable: SystemTap's autocast (a local keeps the type of the target
                # variable it was assigned from)
                self.advance()
                m = self.name("a member name")
                e = N("member", self.since(e.span.start), base=e, name=m.text, name_span=m.span)
            elif t.is_op("[") and e.kind in ("target", "member", "at", "subscript"):
                self.advance()
                idx = self.expr()
                self.expect("]")
                e = N("subscript", self.since(e.span.start), base=e, index=idx)
            elif t.is_op("$") or (t.kind == "op" and t.text == "$$"):
                return e
            else:
                return e

    def args(self) -> List[N]:
        self.expect("(")
        out: List[N] = []
        while not self.tok.is_op(")"):
            out.append(self.expr())
            if self.tok.is_op(","):
                self.advance()
                continue
            if not self.tok.is_op(")"):
                raise self.unexpected("',' or ')'")
        self.advance()
        return out

    def primary(self) -> N:
        t = self.tok
        if t.kind in ("int", "str"):
            self.advance()
            if t.kind == "str":  # adjacent literals join, as in C
                v = str(t.value)
                while self.tok.kind == "str":
                    v += str(self.advance().value)
                return N("lit", self.since(t.start), value=v)
            return N("lit", t.span, value=t.value)
        if t.kind in ("pos", "atpos"):
            self.advance()
            return N("pos", t.span, index=t.value, string=t.kind == "atpos")
        if t.kind == "target":
            self.advance()
            return N("target", t.span, name=t.text[1:])
        if t.kind == "at":
            self.advance()
            name = t.text[1:]
            if self.tok.is_op("("):
                args = self.args()
                return N("at", self.since(t.start), name=name, args=args, name_span=t.span)
            raise self.err(f"@{name} needs arguments", t.span, f"write @{name}(...)")
        if t.kind == "ident":
            self.advance()
            if self.tok.is_op("("):  # a call (tokens from a macro share the use's place)
                args = self.args()
                return N("call", self.since(t.start), name=t.text, args=args, name_span=t.span)
            if self.tok.is_op("["):
                self.advance()
                keys = []
                while True:
                    if self.tok.is_op("*") and self.peek().is_op(",", "]"):  # a slice: a[k, *]
                        keys.append(N("wild", self.advance().span))
                    else:
                        keys.append(self.expr())
                    if self.tok.is_op(","):
                        self.advance()
                        continue
                    break
                self.expect("]")
                return N("index", self.since(t.start), name=t.text, keys=keys, name_span=t.span)
            return N("name", t.span, name=t.text)
        if t.is_op("("):
            self.advance()
            e = self.expr()
            self.expect(")")
            return e
        if t.is_op("["):  # [a, b] in arr
            self.advance()
            elems = []
            while True:
                elems.append(self.expr())
                if self.tok.is_op(","):
                    self.advance()
                    continue
                break
            self.expect("]")
            if not self.tok.is_word("in"):
                raise self.unexpected("'in' after a key list")
            return N("tuple", self.since(t.start), elems=elems)
        raise self.unexpected("an expression")


# --------------------------------------------------------------------------- preprocessor


def _kernel_release() -> str:
    return os.uname().release


def _version_key(v: str) -> Tuple[int, ...]:
    out = []
    for part in v.replace("-", ".").split("."):
        digits = ""
        for c in part:
            if c.isdigit():
                digits += c
            else:
                break
        out.append(int(digits) if digits else 0)
    return tuple(out)


def _config(name: str) -> str:
    """``CONFIG_X``'s value in this kernel's config (``y``, ``m``, a number...) or ``""``."""
    paths = [f"/boot/config-{_kernel_release()}"]
    for p in paths:
        try:
            with open(p, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith(name + "="):
                        return line.split("=", 1)[1].strip().strip('"')
        except OSError:
            continue
    return ""


def _macros(toks: List[Tok], source: str, origin: str) -> List[Tok]:
    """``@define NAME %( BODY %)`` and ``@define NAME(a, b) %( ... @a ... %)``: definitions
    removed, every ``@NAME`` / ``@NAME(x, y)`` replaced by its body (arguments substituted)."""
    if not any(t.kind == "at" and t.text == "@define" for t in toks):
        return toks

    def err(msg: str, t: Tok) -> ParseError:
        return ParseError(msg, source=source, span=t.span, origin=origin,
                          hints=["@define NAME %( BODY %) or @define NAME(a, b) %( BODY %)"])

    defs: Dict[str, Tuple[List[str], List[Tok]]] = {}
    out: List[Tok] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if not (t.kind == "at" and t.text == "@define"):
            out.append(t)
            i += 1
            continue
        i += 1
        if toks[i].kind != "ident":
            raise err("@define needs a name", toks[i])
        name = toks[i].text
        i += 1
        params: List[str] = []
        if toks[i].is_op("("):
            i += 1
            while not toks[i].is_op(")"):
                if toks[i].kind == "ident":
                    params.append(toks[i].text)
                elif not toks[i].is_op(","):
                    raise err("a macro's parameters are names", toks[i])
                i += 1
            i += 1
        if not toks[i].is_op("%("):
            raise err("a macro's body is written %( ... %)", toks[i])
        depth, j = 0, i + 1
        while j < len(toks) and not (toks[j].is_op("%)") and depth == 0):
            if toks[j].kind == "eof":
                raise err("a macro's body without %)", t)
            depth += toks[j].is_op("%(") - toks[j].is_op("%)")
            j += 1
        defs[name] = (params, toks[i + 1:j])
        i = j + 1

    def expand(seq: List[Tok], depth: int) -> List[Tok]:
        if depth > 20:
            raise err("macros nested more than 20 deep", seq[0] if seq else toks[0])
        res: List[Tok] = []
        k = 0
        while k < len(seq):
            t = seq[k]
            name = t.text[1:] if t.kind == "at" else ""
            if name not in defs:
                res.append(t)
                k += 1
                continue
            params, body = defs[name]
            args: List[List[Tok]] = []
            k += 1
            if params:
                if k >= len(seq) or not seq[k].is_op("("):
                    raise err(f"macro @{name} takes {len(params)} argument(s)", t)
                level, cur = 0, []  # type: ignore[var-annotated]
                k += 1
                while k < len(seq):
                    x = seq[k]
                    if x.is_op("(", "[", "{"):
                        level += 1
                    elif x.is_op(")", "]", "}"):
                        if level == 0 and x.is_op(")"):
                            break
                        level -= 1
                    if x.is_op(",") and level == 0:
                        args.append(cur)
                        cur = []
                    else:
                        cur.append(x)
                    k += 1
                args.append(cur)
                k += 1
            sub = {p: a for p, a in zip(params, args)}
            body2: List[Tok] = []
            for b in body:
                if b.kind == "at" and b.text[1:] in sub:
                    body2.extend(sub[b.text[1:]])
                else:
                    body2.append(Tok(b.kind, b.text, t.start, t.end, b.value))
            res.extend(expand(body2, depth + 1))
        return res

    return expand(out, 0)


def _preprocess(toks: List[Tok], source: str, origin: str, nparams: int) -> List[Tok]:
    """The tokens with every ``%( COND %? A %: B %)`` replaced by A or B (macros first)."""
    toks = _macros(toks, source, origin)
    if not any(t.is_op("%(") for t in toks):
        return toks
    out: List[Tok] = []
    i = 0

    def err(msg: str, t: Tok, *hints: str) -> ParseError:
        return ParseError(msg, source=source, span=t.span, origin=origin, hints=hints)

    def section(i: int, stops: Sequence[str]) -> Tuple[List[Tok], int]:
        """Tokens up to one of ``stops`` at this nesting level (conditionals inside kept)."""
        got: List[Tok] = []
        depth = 0
        while i < len(toks):
            t = toks[i]
            if t.kind == "eof":
                return got, i
            if t.is_op("%("):
                depth += 1
            elif t.is_op("%)"):
                if depth == 0 and "%)" in stops:
                    return got, i
                depth -= 1
            elif depth == 0 and t.kind == "op" and t.text in stops:
                return got, i
            got.append(t)
            i += 1
        return got, i

    while i < len(toks):
        t = toks[i]
        if not t.is_op("%("):
            out.append(t)
            i += 1
            continue
        cond, j = section(i + 1, ("%?",))
        if j >= len(toks) or not toks[j].is_op("%?"):
            raise err("%( without %?", t, "write %( CONDITION %? THEN %: ELSE %)")
        then, k = section(j + 1, ("%:", "%)"))
        other: List[Tok] = []
        if k < len(toks) and toks[k].is_op("%:"):
            other, k = section(k + 1, ("%)",))
        if k >= len(toks) or not toks[k].is_op("%)"):
            raise err("%( without %)", t)
        chosen = then if _eval_cond(cond, source, origin, nparams, t) else other
        out.extend(_preprocess(chosen + [Tok("eof", "", t.end, t.end)], source, origin, nparams)[:-1])
        i = k + 1
    return out


def _eval_cond(cond: List[Tok], source: str, origin: str, nparams: int, at: Tok) -> bool:
    """A preprocessor condition: ``A OP B`` terms joined by ``&&``/``||`` (``!``, parentheses)."""
    pos = [0]

    def err(msg: str) -> ParseError:
        t = cond[pos[0]] if pos[0] < len(cond) else at
        return ParseError(msg, source=source, span=t.span, origin=origin,
                          hints=["conditions compare kernel_v, kernel_vr, arch, systemtap_v, runtime, "
                                 "CONFIG_..., $# or @# with a value"])

    def value(t: Tok) -> object:
        if t.kind == "ident":
            w = t.text
            if w in ("kernel_v", "kernel_vr"):
                rel = _kernel_release()
                return ("v", rel.split("-")[0] if w == "kernel_v" else rel)
            if w == "systemtap_v":
                return ("v", STAP_VERSION)
            if w == "arch":
                m = os.uname().machine
                return {"x86_64": "x86_64", "aarch64": "arm64"}.get(m, m)
            if w == "runtime":
                return "kernel"
            if w.startswith("CONFIG_"):
                return _config(w)
            if w == "systemtap_privilege":
                return "stapdev"
            if w == "guru_mode":
                return 0
            raise err(f"unknown preprocessor name '{w}'")
        if t.kind == "pos" and t.value == -1:
            return nparams
        if t.kind == "str":
            return t.value
        if t.kind == "int":
            return t.value
        raise err(f"unexpected {t.describe()} in a preprocessor condition")

    def take() -> Tok:
        if pos[0] >= len(cond):
            raise err("incomplete preprocessor condition")
        t = cond[pos[0]]
        pos[0] += 1
        return t

    def term() -> bool:
        t = take()
        if t.is_op("!"):
            return not term()
        if t.is_op("("):
            v = orx()
            if not take().is_op(")"):
                raise err("expected ')'")
            return v
        if t.kind == "at" and t.text == "@defined":
            raise err("@defined in a preprocessor condition is not supported")
        left = value(t)
        if pos[0] >= len(cond) or not (cond[pos[0]].kind == "op" and cond[pos[0]].text in
                                       ("==", "!=", "<", "<=", ">", ">=")):
            if isinstance(left, tuple):
                raise err("a version needs a comparison")
            return bool(left)
        op = take().text
        right = value(take())
        if isinstance(left, tuple):
            import fnmatch

            text = str(right)
            if op in ("==", "!=") and any(c in text for c in "*?["):
                m = fnmatch.fnmatchcase(left[1], text)
                return m if op == "==" else not m
            a, b = _version_key(left[1]), _version_key(text)
        elif isinstance(left, str) and isinstance(right, str) and op in ("==", "!=") and \
                any(c in right for c in "*?["):
            import fnmatch

            m = fnmatch.fnmatchcase(left, right)
            return m if op == "==" else not m
        else:
            a, b = left, right  # type: ignore[assignment]
            if type(a) is not type(b):
                a, b = str(a), str(b)  # type: ignore[assignment]
        return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]  # type: ignore[operator]

    def andx() -> bool:
        v = term()
        while pos[0] < len(cond) and cond[pos[0]].is_op("&&"):
            pos[0] += 1
            w = term()
            v = v and w
        return v

    def orx() -> bool:
        v = andx()
        while pos[0] < len(cond) and cond[pos[0]].is_op("||"):
            pos[0] += 1
            w = andx()
            v = v or w
        return v

    result = orx()
    if pos[0] != len(cond):
        raise err("unexpected text after the preprocessor condition")
    return result


def parse_script(text: str, origin: str = "<input>", nparams: int = 0,
                 params: "Optional[Sequence[str]]" = None) -> Script:
    """Parse a SystemTap script. ``nparams``: how many arguments follow it (``$#`` in
    preprocessor conditions); ``params``: the arguments themselves (``probe $1``: substituted
    in probe points). Raises :class:`ParseError` (with the place) and nothing else."""
    if params is not None:
        nparams = len(params)
    if not isinstance(text, str):
        raise ParseError(f"a script is text, not {type(text).__name__}", origin=origin)
    try:
        return _Parser(text, origin, nparams, params).script()
    except RecursionError:
        raise ParseError("script nested too deeply", source=text, span=Span(0, 1), origin=origin) from None
