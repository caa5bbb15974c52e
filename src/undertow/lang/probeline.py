"""Probe lines: surftrace's one-line probe language, extended, parsed into the IR.

One line is one probe::

    p SYMBOL[+OFFSET] [NAME=EXPR | EXPR ...] [f:FILTER]      kprobe
    r SYMBOL[+OFFSET] [NAME=EXPR | EXPR ...] [f:FILTER]      kretprobe
    e GROUP/EVENT     [NAME=EXPR | FIELD ...] [f:FILTER]     tracepoint (GROUP:EVENT too;
                                                             ``*``/``?`` wildcards)
    P OBJ:SYMBOL[+OFFSET] [NAME=EXPR ...] [f:FILTER]         uprobe (OBJ: a path, a
    R OBJ:SYMBOL[+OFFSET] [NAME=EXPR ...] [f:FILTER]         command on $PATH, ``libc``)

Expressions (surftrace's, see docs/probe-lines.md): ``%0``.. arguments,
``%di``/``%x0`` registers, ``$retval``, ``$comm``, ``$stack``, ``$argN`` (1-based,
as in kprobetrace.rst), ``@symbol``, argument names from BTF (``sk``), member
chains ``->``/``.``/``[i]``, casts ``(struct sock *)%0`` (a cast binds to the
operand right after it, as in surftrace; write ``(T)(a->b)`` to cast a chain),
output prefixes ``S``/``U``/``X`` (signed, unsigned, hex) before the
expression, skb headers ``@(struct iphdr *)l3%0->saddr`` with ``l2``/``l3``/``l4``
and payload views ``cdata/sdata/ldata/qdata[i]``. Field names starting with
``ip_``, ``b16_``/``b32_``/``b64_`` or ``B16_``/``B32_``/``B64_`` pick the
output format (dotted IPv4, byte-swapped decimal, byte-swapped hex). kprobe_events'
own fetch arguments are field values too (``+0(%di):string``, ``$stack2``,
``+0x10(%di):b4@2/32``; :mod:`undertow.lang.fetchargs`), so what ``-S`` prints reads back.

The filter after ``f:`` runs to the end of the line: C-like ``&& || ! ( )``,
comparisons, arithmetic, numbers, ``"quoted"``/``'quoted'`` strings, dotted
IPv4 addresses, and bare words (a field the line defines, a tracepoint field,
``common_pid``; on the right of a comparison with a string field, a bare word
is a string: ``comm==systemd``).

Every node gets a :class:`~undertow.errors.Span` into the source text so errors
draw a caret under the user's text. Parsing needs no kernel: names are resolved
by :mod:`undertow.lang.resolve`.
"""

from __future__ import annotations

import re
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import ParseError, Span, did_you_mean
from . import ir

__all__ = ["parse_line", "parse_lines", "parse_file", "PROBE_LETTERS", "field_name_format"]

#: The most a probe or program file may hold (characters read before giving up).
MAX_FILE_CHARS = 16 << 20

#: Probe-line letter -> IR attach kind.
PROBE_LETTERS = {"p": "kprobe", "r": "kretprobe", "e": "tracepoint", "P": "uprobe", "R": "uretprobe"}

#: ``$name`` builtins a probe line accepts (besides ``$retval`` and ``$argN``).
DOLLAR_BUILTINS = ("comm", "stack", "pid", "tid", "cpu", "uid", "gid")

#: Payload views after a protocol header (element size in bytes).
PAYLOAD_VIEWS = {"cdata": 1, "sdata": 2, "ldata": 4, "qdata": 8}

# Field-name prefixes that choose the output format (surftrace 3.7).
_NAME_FORMATS = (("ip_", "ipv4"), ("b16_", "b16"), ("b32_", "b32"), ("b64_", "b64"),
                 ("B16_", "B16"), ("B32_", "B32"), ("B64_", "B64"))
_VALUE_PREFIXES = {"S": "s", "U": "u", "X": "x"}

_C_TYPE_WORDS = {"struct", "union", "enum", "unsigned", "signed", "const", "volatile", "char",
                 "short", "int", "long", "void", "_Bool", "bool"}


def field_name_format(name: str) -> Optional[str]:
    """The output format a field name's prefix asks for (``ip_src`` -> ``"ipv4"``), else ``None``."""
    for prefix, fmt in _NAME_FORMATS:
        if name.startswith(prefix) and len(name) > len(prefix):
            return fmt
    return None


# --------------------------------------------------------------------------- lexer


class Tok:
    __slots__ = ("kind", "text", "start", "end", "value")

    def __init__(self, kind: str, text: str, start: int, end: int, value: object = None) -> None:
        self.kind = kind  # ident num ip str pct dollar op end
        self.text = text
        self.start = start
        self.end = end
        self.value = value

    @property
    def span(self) -> Span:
        return Span(self.start, self.end)


_OPS = ("->", "==", "!=", "<=", ">=", "&&", "||", "<<", ">>", "=~",
        "<", ">", "!", "&", "|", "^", "~", "+", "-", "*", "/", "%", "(", ")", "[", "]",
        ".", "@", ",", "?", ":", "=")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# ASCII digits only: \d and str.isdigit() also take other scripts' digits ("²" crashed, "٣" was 3)
_IP_RE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?![\w.])", re.ASCII)
_NUM_RE = re.compile(r"0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO]?[0-7]+|\d+", re.ASCII)
_NUM_TAIL_RE = re.compile(r"[A-Za-z0-9_]")


class _Lexer:
    def __init__(self, src: str, start: int, end: int, origin: str) -> None:
        self.src, self.pos, self.end, self.origin = src, start, end, origin

    def error(self, msg: str, start: int, end: int, *hints: str) -> ParseError:
        return ParseError(msg, source=self.src, span=Span(start, end), origin=self.origin, hints=hints)

    def tokens(self) -> List[Tok]:
        out: List[Tok] = []
        s, end = self.src, self.end
        i = self.pos
        while i < end:
            c = s[i]
            if c.isspace():
                i += 1
                continue
            if c in "\"'":
                j, val = self._string(i)
                out.append(Tok("str", s[i:j], i, j, val))
                i = j
                continue
            if "0" <= c <= "9":
                m = _IP_RE.match(s, i, end)
                if m:
                    out.append(Tok("ip", m.group(), i, m.end(), m.group()))
                    i = m.end()
                    continue
                m = _NUM_RE.match(s, i, end)
                assert m is not None
                j = m.end()
                if j < end and _NUM_TAIL_RE.match(s, j):
                    k = j
                    while k < end and _NUM_TAIL_RE.match(s, k):
                        k += 1
                    raise self.error(f"bad number {s[i:k]!r}", i, k,
                                     "numbers are decimal (42), hex (0x2a), octal (052) or binary (0b101010)")
                text = m.group()
                if len(text) > 1 and text[0] == "0" and text.isdigit() and not set(text) <= set("01234567"):
                    raise self.error(f"bad number {text!r}: a leading 0 means octal", i, j,
                                     f"write {int(text)} (decimal) or {int(text):#x} (hex)")
                out.append(Tok("num", text, i, j, _int(text)))
                i = j
                continue
            if c == "_" or c.isalpha():
                m = _IDENT_RE.match(s, i, end)
                if m is None:  # a non-ASCII letter
                    raise self.error(f"unexpected character {c!r}", i, i + 1,
                                     "names are ASCII letters, digits and _")
                out.append(Tok("ident", m.group(), i, m.end()))
                i = m.end()
                continue
            if c == "\\" and i + 1 < end and (s[i + 1] in "\"'" or "0" <= s[i + 1] <= "9"):
                # kprobe_events' immediate values: \42, \0x2a, \"text" (kprobetrace.rst)
                if s[i + 1] in "\"'":
                    j, val = self._string(i + 1)
                    out.append(Tok("str", s[i:j], i, j, val))
                    i = j
                    continue
                m = _NUM_RE.match(s, i + 1, end)
                assert m is not None
                out.append(Tok("num", s[i:m.end()], i, m.end(), _int(m.group())))
                i = m.end()
                continue
            if c in "%$" and i + 1 < end and (s[i + 1] == "_" or s[i + 1].isascii() and s[i + 1].isalnum()):
                m = re.compile(r"[A-Za-z0-9_]+").match(s, i + 1, end)
                assert m is not None
                out.append(Tok("pct" if c == "%" else "dollar", m.group(), i, m.end()))
                i = m.end()
                continue
            for op in _OPS:
                if s.startswith(op, i) and i + len(op) <= end:
                    out.append(Tok("op", op, i, i + len(op)))
                    i += len(op)
                    break
            else:
                hint = "a register is written %di, a special value $retval or $comm" if c in "%$" else ""
                raise self.error(f"unexpected character {c!r}", i, i + 1, hint)
        out.append(Tok("end", "", end, end))
        return out

    def _string(self, i: int) -> Tuple[int, str]:
        s, end = self.src, self.end
        q = s[i]
        j = i + 1
        buf: List[str] = []
        while j < end:
            c = s[j]
            if c == "\\" and j + 1 < end:
                nxt = s[j + 1]
                buf.append({"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "0": "\0"}.get(nxt, "\\" + nxt))
                j += 2
                continue
            if c == q:
                return j + 1, "".join(buf)
            buf.append(c)
            j += 1
        raise self.error("unterminated string", i, end, f"close it with {q}")


def _int(text: str) -> int:
    t = text.lower()
    if t.startswith("0x"):
        return int(t[2:], 16)
    if t.startswith("0b"):
        return int(t[2:], 2)
    if t.startswith("0o"):
        return int(t[2:], 8)
    if len(t) > 1 and t.startswith("0"):
        return int(t, 8)
    return int(t)


# --------------------------------------------------------------------------- expression parser

_DEPTH_HINT = "split it into several fields, or cast once: (T)(a->b)->c"

# Binary operator precedence (higher binds tighter), as in C.
_BINARY = {
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5,
    "==": 6, "!=": 6, "~": 6, "=~": 6,
    "<": 7, "<=": 7, ">": 7, ">=": 7,
    "<<": 8, ">>": 8, "+": 9, "-": 9, "*": 10, "/": 10, "%": 10,
}


class _ExprParser:
    """Recursive descent over the tokens of one expression (a field value or a filter).

    ``names_are`` says what a bare identifier is: ``"arg"`` (p/r/P/R field values:
    a BTF argument name), ``"field"`` (tracepoint fields, filters).
    """

    def __init__(self, src: str, start: int, end: int, origin: str, names_are: str) -> None:
        self.src, self.origin, self.names_are = src, origin, names_are
        self.toks = _Lexer(src, start, end, origin).tokens()
        self.i = 0
        self.depth = 0
        #: output prefixes written before a fetch (``S%0``, ``X@(struct iphdr *)...``):
        #: id of the node -> (the node, kept alive so its id stays its own; the fmt)
        self.prefixes: Dict[int, Tuple[ir.Expr, str]] = {}
        #: kprobe_events' ``+OFFS(FETCHARG)`` dereferences: id -> the node (kept alive)
        self.fetch_derefs: Dict[int, ir.Expr] = {}

    # -- helpers
    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self) -> Tok:
        t = self.toks[self.i]
        if t.kind != "end":
            self.i += 1
        return t

    def is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def expect_op(self, op: str, what: str) -> Tok:
        if not self.is_op(op):
            raise self.error(f"expected '{op}' {what}", self.tok)
        return self.take()

    def error(self, msg: str, tok: Tok, *hints: str) -> ParseError:
        span = tok.span if tok.kind != "end" else Span(tok.start, tok.start + 1)
        if tok.kind == "end" and "end" not in msg:
            msg += " at end of expression"
        return ParseError(msg, source=self.src, span=span, origin=self.origin, hints=hints)

    def _span_from(self, start: int) -> Span:
        prev = self.toks[self.i - 1] if self.i > 0 else self.tok
        return Span(start, max(start, prev.end))

    # -- entry points
    def parse_all(self) -> ir.Expr:
        if self.tok.kind == "end":
            raise self.error("expected an expression", self.tok)
        e = self.expr(0)
        deep = ir.too_deep(e)
        if deep is not None:  # a chain built in a loop: a->b->c..., a[1][2]..., a + b + c...
            span = deep.span or Span(self.toks[0].start, self.toks[0].end)
            raise ParseError(f"expression nested too deeply (limit {ir.MAX_EXPR_DEPTH} levels)",
                             source=self.src, span=span, origin=self.origin, hints=[_DEPTH_HINT])
        if self.tok.kind != "end":
            hint = ""
            if self.tok.kind == "op" and self.tok.text == "=":
                hint = "compare with == (a single = defines a field: NAME=EXPR)"
            raise self.error(f"unexpected {self._describe(self.tok)}", self.tok, hint)
        return e

    def expr(self, min_prec: int) -> ir.Expr:
        left = self.unary()
        # a run of one logical operator (a && b && c ...) becomes a balanced tree: a filter
        # of 1,000 terms must not be 1,000 levels deep for the passes that recurse
        chain: List[ir.Expr] = []
        chain_op = ""
        while self.tok.kind == "op" and self.tok.text in _BINARY and _BINARY[self.tok.text] > min_prec:
            op_tok = self.take()
            prec = _BINARY[op_tok.text]
            if self.tok.kind == "end":
                raise self.error(f"expected an operand after '{op_tok.text}'", op_tok)
            right = self.expr(prec)
            op = "~" if op_tok.text == "=~" else op_tok.text
            if op == chain_op:
                chain.append(right)
                continue
            if chain:
                left = ir.balanced(chain_op, chain)
            if op in ("&&", "||"):
                chain, chain_op = [left, right], op
                continue
            chain, chain_op = [], ""
            node = ir.Binary(op, left, right)
            node.span = _cover(left, right)
            left = node
        if chain:
            left = ir.balanced(chain_op, chain)
        if self.is_op("?") and min_prec == 0:
            q = self.take()
            then = self.expr(0)
            self.expect_op(":", "in a ?: expression")
            other = self.expr(0)
            node = ir.Ternary(left, then, other)
            node.span = _cover(left, other)
            del q
            return node
        return left

    def unary(self) -> ir.Expr:
        return self.nested(self._unary)

    def nested(self, parse: "Callable[[], ir.Expr]") -> ir.Expr:
        """``parse()`` one level deeper: every recursion of this parser passes here, so
        input nested past :data:`ir.MAX_EXPR_DEPTH` is an error, never a RecursionError."""
        self.depth += 1
        try:
            if self.depth > ir.MAX_EXPR_DEPTH:
                raise self.error(f"expression nested too deeply (limit {ir.MAX_EXPR_DEPTH} levels)",
                                 self.tok, _DEPTH_HINT)
            return parse()
        finally:
            self.depth -= 1

    def _unary(self) -> ir.Expr:
        t = self.tok
        if t.kind == "op" and t.text in ("+", "-") and self._fetch_ahead():
            return self.postfix(self._fetch_deref())
        if t.kind == "op" and t.text in ("!", "-", "~"):
            self.take()
            inner = self.unary()
            if t.text == "-" and isinstance(inner, ir.Const) and isinstance(inner.value, int):
                inner.value = -inner.value
                inner.span = Span(t.start, inner.span.end if inner.span else t.end)
                return inner
            return ir.Unary(t.text, inner).at(self._span_from(t.start))
        if t.kind == "op" and t.text == "*":
            self.take()
            inner = self.unary()
            return ir.Deref(inner).at(self._span_from(t.start))
        # output prefix S/U/X directly before a fetch (S%0->mm, X@(struct iphdr *)...)
        if t.kind == "ident" and t.text in _VALUE_PREFIXES:
            nxt = self.peek()
            if nxt.start == t.end and (nxt.kind in ("pct", "dollar") or (nxt.kind == "op" and nxt.text in ("@", "("))):
                self.take()
                inner = self.unary()
                if id(inner) in self.prefixes:
                    raise self.error("two output prefixes", t, "use one of S (signed), U (unsigned), X (hex)")
                self.prefixes[id(inner)] = (inner, _VALUE_PREFIXES[t.text])
                return inner
        return self.postfix(self.primary())

    def _fetch_ahead(self) -> bool:
        """At ``+``/``-``: kprobe_events' ``+|-[u]OFFS(FETCHARG)`` follows (no spaces)."""
        sign, off, paren = self.tok, self.peek(), self.peek(2)
        if off.start != sign.end or paren.start != off.end or paren.kind != "op" or paren.text != "(":
            return False
        return off.kind == "num" and not off.text.startswith("\\") or \
            off.kind == "ident" and re.fullmatch(r"u(?:0[xX][0-9a-fA-F]+|\d+)", off.text) is not None

    def _fetch_deref(self) -> ir.Expr:
        from .fetchargs import fetch_deref

        sign = self.take()
        off = self.take()
        user = off.kind == "ident"
        digits = off.text[1:] if user else off.text
        if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xX" and not set(digits) <= set("01234567"):
            raise self.error(f"bad offset {digits!r}: a leading 0 means octal", off,
                             f"write {int(digits)} (decimal) or {int(digits):#x} (hex)")
        value = _int(digits) * (-1 if sign.text == "-" else 1)
        self.take()  # (
        if self.is_op(")"):
            raise self.error("expected a fetch argument inside +OFFS(...)", self.tok, "e.g. +0(%di), +8($stack)")
        inner = self.expr(0)
        self.expect_op(")", "to close +OFFS(...)")
        if isinstance(inner, ir.Builtin) and inner.name == "stack":
            inner = ir.Register("sp").at(inner.span)  # $stack inside a fetch: the stack address
        d = fetch_deref(inner, value, user, self._span_from(sign.start))
        self.fetch_derefs[id(d)] = d
        return d

    def postfix(self, e: ir.Expr) -> ir.Expr:
        start = e.span.start if e.span else self.tok.start
        while True:
            t = self.tok
            if t.kind == "op" and t.text in ("->", "."):
                self.take()
                name = self.tok
                if name.kind != "ident":
                    raise self.error(f"expected a member name after '{t.text}'", name)
                self.take()
                if name.text in PAYLOAD_VIEWS and _is_header(e):
                    idx: ir.Expr = ir.Const(0)
                    if self.is_op("["):
                        self.take()
                        idx = self.expr(0)
                        self.expect_op("]", "to close the index")
                    e = ir.Payload(e, PAYLOAD_VIEWS[name.text], idx).at(self._span_from(start))
                    continue
                m = ir.Member(e, name.text, arrow=(t.text == "->"))
                m.name_span = name.span
                e = m.at(self._span_from(start))
            elif t.kind == "op" and t.text == "[":
                self.take()
                if self.is_op("]"):
                    raise self.error("expected an index", self.tok)
                idx = self.expr(0)
                self.expect_op("]", "to close the index")
                e = ir.Index(e, idx).at(self._span_from(start))
            elif t.kind == "op" and t.text == "~" and self.peek().kind == "op" and self.peek().text == "->":
                # surftrace's old connector: %0~->comm is %0->comm
                self.take()
            else:
                return e

    def primary(self) -> ir.Expr:
        t = self.tok
        if t.kind == "num":
            self.take()
            return ir.Const(t.value).at(t.span)  # type: ignore[arg-type]
        if t.kind in ("str", "ip"):
            self.take()
            return ir.Const(t.value).at(t.span)  # type: ignore[arg-type]
        if t.kind == "pct":
            self.take()
            if t.text.isdigit():
                return ir.Arg(index=int(t.text)).at(t.span)
            if t.text[0].isdigit():
                raise self.error(f"bad argument '%{t.text}'", t, "arguments are %0, %1, ...; registers %di, %x0 ...")
            return ir.Register(t.text).at(t.span)
        if t.kind == "dollar":
            self.take()
            return self._dollar(t)
        if t.kind == "op" and t.text == "@":
            return self._at()
        if t.kind == "op" and t.text == "(":
            cast = self._try_cast()
            if cast is not None:
                return cast
            self.take()
            e = self.expr(0)
            self.expect_op(")", "to close '('")
            e.span = Span(t.start, self.toks[self.i - 1].end)
            return e
        if t.kind == "ident":
            self.take()
            if self.is_op("(") and self.tok.start == t.end and t.text in ("sizeof", "str", "ntop", "ksym"):
                return self._call(t)
            if self.names_are == "arg":
                return ir.Arg(name=t.text).at(t.span)
            return ir.Field(t.text).at(t.span)
        if t.kind == "end":
            raise self.error("expected an expression", t)
        raise self.error(f"unexpected {self._describe(t)}", t)

    def _call(self, name: Tok) -> ir.Expr:
        self.take()  # (
        args: List[ir.Expr] = []
        if not self.is_op(")"):
            while True:
                args.append(self.expr(0))
                if self.is_op(","):
                    self.take()
                    continue
                break
        self.expect_op(")", f"to close {name.text}(")
        return ir.Call(name.text, args).at(self._span_from(name.start))

    def _dollar(self, t: Tok) -> ir.Expr:
        n = t.text
        if n == "retval":
            return ir.Retval().at(t.span)
        m = re.fullmatch(r"arg(\d+)", n)
        if m:
            k = int(m.group(1))
            if k == 0:
                raise self.error("$arg numbers start at 1 ($arg1 is the first argument, like %0)", t)
            return ir.Arg(index=k - 1).at(t.span)
        if n in DOLLAR_BUILTINS:
            return ir.Builtin(n).at(t.span)
        m = re.fullmatch(r"stack(\d+)", n)
        if m:
            from .fetchargs import stack_entry

            d = stack_entry(int(m.group(1)), t.span)
            self.fetch_derefs[id(d)] = d
            return d
        known = ["retval", "argN", "stackN"] + list(DOLLAR_BUILTINS)
        raise self.error(f"unknown special value ${n}", t,
                         did_you_mean(n, known) or ("special values: $" + ", $".join(known)))

    def _at(self) -> ir.Expr:
        at = self.take()
        t = self.tok
        if t.kind == "ident" and t.start == at.end:
            self.take()
            return ir.Symbol(t.text).at(Span(at.start, t.end))
        if t.kind == "op" and t.text == "(":
            type_text, close = self._type_in_parens()
            if type_text is None:
                raise self.error("expected a header type after '@(' such as (struct iphdr *)", t)
            marker: Optional[str] = None
            nt = self.tok
            if nt.kind == "ident" and re.fullmatch(r"l\d+", nt.text) and nt.text not in ("l2", "l3", "l4") and \
                    nt.start == close.end:
                raise self.error(f"unknown layer marker '{nt.text}'", nt,
                                 "the marker says which layer skb->data points at: l2, l3 (the default) or l4")
            if nt.kind == "ident" and re.match(r"l[234]", nt.text) and nt.start == close.end:
                marker = nt.text[:2]
                rest = nt.text[2:]
                if rest:
                    # l3sk: the marker glued to a BTF argument name
                    self.toks[self.i] = Tok("ident", rest, nt.start + 2, nt.end)
                else:
                    self.take()
            if self.tok.kind == "end":
                raise self.error("expected the sk_buff after the header type, e.g. @(struct iphdr *)l3%0", self.tok)
            skb = self.nested(self.primary)
            hdr = ir.SkbHeader(skb, marker or "l3", type_text, marker)
            hdr.type_span = Span(t.start, close.end)
            return hdr.at(Span(at.start, skb.span.end if skb.span else close.end))
        raise self.error("expected a symbol name or a header type after '@'", t,
                         "@jiffies reads a kernel symbol; @(struct iphdr *)l3%0 a header of an skb")

    def _type_in_parens(self) -> Tuple[Optional[str], Tok]:
        """At '(': if a C type follows up to ')', consume it and return (text, ')' token)."""
        j = self.i + 1
        words: List[str] = []
        stars = 0
        while True:
            t = self.toks[j]
            if t.kind == "ident" and stars == 0:
                words.append(t.text)
            elif t.kind == "op" and t.text == "*":
                stars += 1
            elif t.kind == "op" and t.text == ")":
                break
            else:
                return None, t
            j += 1
        if not words:
            return None, self.toks[j]
        text = " ".join(words) + (" " + "*" * stars if stars else "")
        close = self.toks[j]
        self.i = j + 1
        return text, close

    def _try_cast(self) -> Optional[ir.Expr]:
        save = self.i
        open_tok = self.tok
        type_text, close = self._type_in_parens()
        if type_text is None:
            self.i = save
            return None
        words = type_text.replace("*", " ").split()
        nxt = self.tok
        starts_operand = nxt.kind in ("pct", "dollar", "ident", "num") or (
            nxt.kind == "op" and nxt.text in ("(", "@", "*"))
        looks_like_type = "*" in type_text or any(w in _C_TYPE_WORDS for w in words) or len(words) > 1
        if not starts_operand or not (looks_like_type or nxt.kind != "op" or nxt.text == "("):
            self.i = save
            return None
        if words[0] in ("struct", "union", "enum") and len(words) < 2:
            raise self.error(f"expected a name after '{words[0]}'", close)
        # surftrace: the cast applies to the operand right after it; members follow
        inner = self.nested(self.primary) if not (nxt.kind == "op" and nxt.text == "*") else self.unary()
        c = ir.Cast(type_text, inner)
        c.type_span = Span(open_tok.start, close.end)
        return c.at(Span(open_tok.start, inner.span.end if inner.span else close.end))

    @staticmethod
    def _describe(t: Tok) -> str:
        if t.kind == "end":
            return "end of expression"
        if t.kind == "op":
            return f"'{t.text}'"
        return f"{t.kind if t.kind != 'ident' else 'name'} '{t.text}'"


def _is_header(e: ir.Expr) -> bool:
    return isinstance(e, ir.SkbHeader) or (isinstance(e, ir.Cast) and isinstance(e.expr, ir.SkbHeader))


def _cover(a: ir.Expr, b: ir.Expr) -> Optional[Span]:
    if a.span and b.span:
        return a.span.to(b.span)
    return a.span or b.span


# --------------------------------------------------------------------------- line structure


def _words(src: str, start: int, end: int, origin: str) -> List[Tuple[int, int]]:
    """Whitespace-separated words in src[start:end], keeping (...), [...] and quotes whole.

    A word starting with ``f:`` runs to the end (the filter).
    """
    out: List[Tuple[int, int]] = []
    i = start
    while i < end:
        while i < end and src[i].isspace():
            i += 1
        if i >= end:
            break
        if src.startswith("f:", i):
            j = end
            while j > i and src[j - 1].isspace():
                j -= 1
            out.append((i, j))
            break
        j = i
        depth = 0
        opens: List[int] = []
        while j < end:
            c = src[j]
            if c in "\"'":
                k = src.find(c, j + 1, end)
                while k > 0 and src[k - 1] == "\\":
                    k = src.find(c, k + 1, end)
                if k < 0:
                    raise ParseError("unterminated string", source=src, span=Span(j, end), origin=origin,
                                     hints=[f"close it with {c}"])
                j = k + 1
                continue
            if c in "([":
                depth += 1
                opens.append(j)
            elif c in ")]":
                depth = max(0, depth - 1)
                if opens:
                    opens.pop()
            elif c.isspace() and depth == 0:
                break
            j += 1
        if depth > 0 and opens:
            o = opens[-1]
            raise ParseError(f"unclosed '{src[o]}'", source=src, span=Span(o, o + 1), origin=origin,
                             hints=[f"close it with '{')' if src[o] == '(' else ']'}'"])
        out.append((i, j))
        i = j
    return out


_NAME_EQ = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(?!=)")
_SYMBOL_RE = re.compile(r"[A-Za-z_.$][A-Za-z0-9_.$@]*")
_OFFSET_RE = re.compile(r"\+(0[xX][0-9a-fA-F]+|[0-9]+)")
_EVENT_PART_RE = re.compile(r"[A-Za-z0-9_*?\[\]\-.]+")


def _perr(msg: str, src: str, a: int, b: int, origin: str, *hints: str) -> ParseError:
    return ParseError(msg, source=src, span=Span(a, max(b, a + 1)), origin=origin, hints=hints)


def _parse_target(letter: str, src: str, a: int, b: int, origin: str) -> ir.AttachPoint:
    kind = PROBE_LETTERS[letter]
    text = src[a:b]
    span = Span(a, b)
    if kind == "tracepoint":
        sep = "/" if "/" in text else ":" if ":" in text else ""
        if not sep:
            raise _perr(f"expected GROUP/EVENT after 'e', not {text!r}", src, a, b, origin,
                        "e.g. e sched/sched_process_exec (list events with: undertow list)")
        group, _, event = text.partition(sep)
        for part, pa in ((group, a), (event, a + len(group) + 1)):
            if not part or not _EVENT_PART_RE.fullmatch(part):
                raise _perr(f"bad event name {text!r}", src, pa, pa + len(part), origin,
                            "e.g. e sched/sched_process_exec or e syscalls/sys_enter_open*")
        wild = any(c in text for c in "*?[")
        return ir.AttachPoint(kind, f"{group}:{event}", wildcard=wild, span=span)
    obj = ""
    body_start = a
    if kind in ("uprobe", "uretprobe"):
        colon = text.rfind(":")
        if colon <= 0:
            raise _perr(f"expected OBJ:SYMBOL after '{letter}', not {text!r}", src, a, b, origin,
                        f"e.g. {letter} /bin/bash:readline or {letter} libc:malloc")
        obj = text[:colon]
        body_start = a + colon + 1
    sym_text = src[body_start:b]
    m = _SYMBOL_RE.match(sym_text)
    if not m:
        what = "symbol" if sym_text else "a symbol name"
        raise _perr(f"expected {what} after '{letter}'" + (f", not {sym_text!r}" if sym_text else ""),
                    src, body_start, b, origin, "a probe line starts like: p do_sys_openat2")
    sym = m.group()
    offset = 0
    rest = sym_text[m.end():]
    if rest:
        om = _OFFSET_RE.fullmatch(rest)
        if not om:
            raise _perr(f"bad offset {rest!r} after {sym}", src, body_start + m.end(), b, origin,
                        "write SYMBOL+OFFSET, e.g. _do_fork+21 or _do_fork+0x15")
        digits = om.group(1)
        if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xX" and any(ch in "89" for ch in digits):
            # kprobe_events reads the offset with kstrtol(..., 0): a leading 0 is octal there
            # too, and the kernel refuses +09 (kernel/trace/trace_probe.c traceprobe_split_symbol_offset)
            n = int(digits)
            bad = next(ch for ch in digits if ch in "89")
            raise _perr(f"bad offset '+{digits}': a leading 0 means octal (as in kprobe_events), "
                        f"and {bad} is not an octal digit", src, body_start + m.end(), b, origin,
                        f"write +{n} (decimal) or +{n:#x} (hex)")
        offset = _int(digits)
        if offset >= 1 << 63:  # kprobe_events reads a long, uprobe_events a 64-bit address
            raise _perr(f"offset +{digits} is too large", src, body_start + m.end(), b, origin,
                        "an offset counts bytes from the start of the function")
    ap = ir.AttachPoint(kind, sym, offset=offset, obj=obj, span=span)
    return ap


def _auto_name(e: ir.Expr) -> Optional[str]:
    """The field name of a bare expression: its last member, argument, register..."""
    while True:
        if isinstance(e, ir.Member):
            return e.name
        if isinstance(e, ir.Arg):
            return e.name if e.name else f"arg{e.index}"
        if isinstance(e, ir.Register):
            return e.name
        if isinstance(e, ir.Retval):
            return "retval"
        if isinstance(e, (ir.Builtin, ir.Field, ir.Symbol)):
            return e.name
        if isinstance(e, ir.Payload):
            return {1: "cdata", 2: "sdata", 4: "ldata", 8: "qdata"}[e.elem_size]
        if isinstance(e, (ir.Index,)):
            e = e.base
        elif isinstance(e, (ir.Cast, ir.Deref)):
            e = e.expr
        else:
            return None


def _parse_probe(src: str, start: int, end: int, origin: str) -> ir.Probe:
    words = _words(src, start, end, origin)
    if not words:
        raise _perr("empty probe line", src, start, end, origin, "e.g. p do_sys_openat2 or e sched/sched_process_exec")
    la, lb = words[0]
    letter = src[la:lb]
    if letter not in PROBE_LETTERS:
        hint = ""
        if letter[:1] in PROBE_LETTERS and len(letter) > 1:
            hint = f"put a space after '{letter[0]}': {letter[0]} {letter[1:]}"
        elif letter.lower() in ("kprobe", "kretprobe", "tracepoint", "uprobe", "uretprobe"):
            hint = "probe lines start with one letter: p (kprobe), r (kretprobe), e (event), P/R (uprobe)"
        raise _perr(f"unknown probe type {letter!r}", src, la, lb, origin,
                    hint or "probe lines start with p, r, e, P or R (e.g. 'p do_sys_openat2')")
    if len(words) < 2 or src[words[1][0]:].startswith("f:"):
        raise _perr(f"expected a {'GROUP/EVENT' if letter == 'e' else 'symbol'} after '{letter}'",
                    src, lb, lb + 1, origin, "e.g. 'p do_sys_openat2' or 'e sched/sched_process_exec'")
    ta, tb = words[1]
    ap = _parse_target(letter, src, ta, tb, origin)
    names_are = "field" if ap.kind == "tracepoint" else "arg"
    emit = ir.Emit()
    filt: Optional[ir.Expr] = None
    seen: dict = {}
    for wa, wb in words[2:]:
        word = src[wa:wb]
        if word.startswith("f:"):
            if wb - (wa + 2) <= 0 or not src[wa + 2:wb].strip():
                raise _perr("empty filter after 'f:'", src, wa, wb, origin, "e.g. f:common_pid==1&&comm==bash")
            filt = _ExprParser(src, wa + 2, wb, origin, "field").parse_all()
            continue
        m = _NAME_EQ.match(word)
        name_span = None
        if m:
            name = m.group(1)
            name_span = Span(wa, wa + len(name))
            ea = wa + m.end()
            if ea >= wb:
                raise _perr(f"expected an expression after '{name}='", src, ea - 1, ea, origin,
                            "e.g. comm=%0->comm")
        else:
            name = ""
            ea = wa
        from .fetchargs import apply_type, split_type

        typed = split_type(src, ea, wb)
        parser = _ExprParser(src, ea, typed[1].start if typed else wb, origin, names_are)
        expr = parser.parse_all()
        type_fmt: Optional[str] = None
        if typed is not None:
            # kprobe_events' NAME=FETCHARG:TYPE
            if isinstance(expr, ir.Builtin) and expr.name == "stack":
                expr = ir.Register("sp").at(expr.span)  # $stack:x64 is the stack address
            expr, type_fmt = apply_type(expr, lambda e: id(e) in parser.fetch_derefs, typed[0], typed[1], src,
                                        origin)
        elif isinstance(expr, ir.Builtin) and expr.name == "stack":
            emit.stack = True
            continue
        elif id(expr) in parser.fetch_derefs:
            type_fmt = "x"  # kprobe_events' default type: x64 (x32 on 32-bit kernels)
        if not name:
            auto = _auto_name(expr)
            if auto is None:
                raise _perr("name this expression: NAME=EXPR", src, wa, wb, origin,
                            f"e.g. v={word}")
            name = auto
        if name in seen:
            raise _perr(f"field {name!r} defined twice", src, (name_span or Span(wa, wb)).start,
                        (name_span or Span(wa, wb)).end, origin, "give each field its own name: NAME=EXPR")
        seen[name] = True
        prefix = parser.prefixes.get(id(expr))
        fmt = field_name_format(name) or (prefix[1] if prefix else None) or type_fmt
        ef = ir.EmitField(name, expr, fmt, Span(wa, wb))
        ef.explicit_fmt = fmt is not None
        ef.name_span = name_span
        emit.fields.append(ef)
    emit.span = Span(start, end)
    probe = ir.Probe(attach=[ap], filter=filt, actions=[emit], span=Span(words[0][0], words[-1][1]),
                     source=src, origin=origin)
    return probe


# --------------------------------------------------------------------------- public API


def parse_line(text: str, origin: str = "<cmdline>") -> ir.Probe:
    """Parse one probe line into an unresolved :class:`ir.Probe` (spans index ``text``).

    Raises :class:`undertow.errors.ParseError` with a caret span and a hint.
    """
    if not isinstance(text, str):
        raise ParseError(f"a probe line is text, not {type(text).__name__}", origin=origin)
    return _parse_probe(text, 0, len(text), origin)


def _is_skipped(line: str) -> bool:
    s = line.strip()
    return not s or s.startswith("#")


def parse_lines(lines: Sequence[str], origin: str = "<cmdline>") -> ir.Program:
    """Parse several probe lines (command-line arguments or a file's lines).

    Blank lines and ``#`` comments are skipped. Each probe's ``source`` is its own
    line, so carets point into it.
    """
    probes: List[ir.Probe] = []
    for line in lines:
        if _is_skipped(line):
            continue
        probes.append(parse_line(line.rstrip("\r\n"), origin))
    return ir.Program(probes, origin=origin)


def parse_text(text: str, origin: str = "<input>") -> ir.Program:
    """Parse a whole file's text; each probe's ``source`` is the whole text (carets show line numbers)."""
    probes: List[ir.Probe] = []
    pos = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if not _is_skipped(body):
            probes.append(_parse_probe(text, pos, pos + len(body), origin))
        pos += len(line)
    return ir.Program(probes, source=text, origin=origin)


def parse_file(path: str) -> ir.Program:
    """Parse a file of probe lines (``-f FILE``): one probe per line, ``#`` comments.

    Raises :class:`ParseError` for bad lines and when the file cannot be read.
    """
    try:
        with open(path, "r", encoding="utf-8", errors="surrogateescape") as f:
            text = f.read(MAX_FILE_CHARS + 1)  # bounded: -f /dev/zero must not eat the memory
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path (API callers)
        raise ParseError(f"cannot read probe file {path!r}: {getattr(e, 'strerror', None) or e}", origin=path,
                         hints=["pass probe lines as arguments, or a readable file with -f"]) from None
    if len(text) > MAX_FILE_CHARS:
        raise ParseError(f"probe file {path} is larger than {MAX_FILE_CHARS >> 20} MiB", origin=path,
                         hints=["a probe file holds probe lines, one per line"])
    return parse_text(text, origin=path)
