"""Typing the expressions every front end shares, against one kernel's types.

:class:`ExprResolver` dispatches each :class:`ir.Expr` to ``_e_<NodeClass>`` (sub-expressions
first) and types here what means the same in every language: registers, kernel symbols,
tracepoint fields, ``->``/``.`` members (found through anonymous members, with a did-you-mean
of the record's names), indexes, casts, dereferences. Front ends add the nodes and rules of
their language (:mod:`undertow.lang.resolve_lines`, :mod:`undertow.lang.resolve_bt`).

The checks refuse what surftrace computed silently wrong: ``->`` on a pointer to a pointer
(``struct sk_buff **``), ``->`` on a non-pointer, a member of a non-struct, an index past a
fixed array, a cast to a whole struct.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Optional

from ..errors import ResolveError, Span, TypeCheckError, did_you_mean
from . import ir
from .attach import AttachResolver
from .typeinfo import LayeredTypes, TypeInfo, format_field_type, split_type_text
from .types import U64, ArrayTy, EnumTy, IntTy, PtrTy, RecordTy, StrTy, Ty, VoidTy

__all__ = ["ExprResolver", "show", "PAYLOAD_NAMES"]

#: surftrace's payload views after an skb header (``@(struct udphdr *)l4%0->sdata[0]``)
PAYLOAD_NAMES = ("cdata", "sdata", "ldata", "qdata")


class ExprResolver(AttachResolver):
    """:class:`AttachResolver` plus the expressions every front end shares.

    ``language`` names the front end's language in "not supported" messages.
    """

    language = "this language"

    # -- expressions
    def expr(self, e: ir.Expr) -> ir.Expr:
        """Type ``e`` (sub-expressions first); may return a replacement node."""
        if e.type is not None:
            return e  # resolved already (filters revisit shared nodes)
        m = getattr(self, "_e_" + type(e).__name__, None)
        if m is None:
            raise self.err(TypeCheckError, f"{type(e).__name__.lower()} is not supported in {self.language}", e.span)
        out = m(e)
        return out if out is not None else e

    def _e_Register(self, e: ir.Register) -> None:
        try:
            e.name = self.arch.canonical_reg(e.name)
        except ResolveError as ex:
            raise self.err(ResolveError, ex.message, e.span, *ex.hints) from None
        e.type = U64

    def _e_Symbol(self, e: ir.Symbol) -> None:
        # ftrace @SYM fetches the memory at the symbol (kprobetrace.rst, FETCHARGS)
        t = self.types.var(e.name)
        e.type = t if t is not None else U64

    def _e_Field(self, e: ir.Field) -> ir.Expr:
        """A field of the tracepoint's format (a front end decides what a field name means
        at other attach points before calling this)."""
        ap = self.ap
        assert ap is not None
        if self.fmt is None:
            raise self.err(TypeCheckError, f"{ap.kind} probes have no event field '{e.name}'", e.span)
        try:
            f = self.fmt.field(e.name)
        except LookupError as ex:
            raise self.err(ResolveError, f"event {ap.target.replace(':', '/')} has no field '{e.name}'",
                           e.span, *getattr(ex, "hints", [])) from None
        e.fmt_field = f
        e.type = format_field_type(f, self.fmt.group)
        return e

    def _field_hint(self) -> str:
        if self.fmt is None:
            return ""
        return "fields: " + ", ".join(f.name for f in self.fmt.event_fields)

    def _e_Member(self, e: ir.Member) -> ir.Expr:
        e.base = self.expr(e.base)
        bt = e.base.type
        name_span = getattr(e, "name_span", None) or e.span
        op = "->" if e.arrow else "."
        rec: Optional[RecordTy] = None
        if e.arrow:
            if isinstance(bt, PtrTy) and isinstance(bt.target, RecordTy):
                rec = bt.target
            elif isinstance(bt, PtrTy) and isinstance(bt.target, PtrTy):
                raise self.err(TypeCheckError,
                               f"'->' needs a pointer to a struct, but {show(e.base)} is {bt}, a pointer to a pointer",
                               e.base.span, f"dereference it first: (*{show(e.base)})->{e.name} "
                               f"or {show(e.base)}[0]->{e.name}")
            elif isinstance(bt, RecordTy):
                raise self.err(TypeCheckError, f"{show(e.base)} is a {bt}, not a pointer: use '.'", name_span,
                               f"write {show(e.base)}.{e.name}")
            elif isinstance(bt, IntTy) and bt.size == 8 and not bt.name.startswith("__be") and \
                    isinstance(e.base, (ir.Arg, ir.Register, ir.Retval, ir.Symbol)) and self.sig is None:
                raise self.err(TypeCheckError,
                               f"{show(e.base)} has no type here, so '->{e.name}' has no struct to look in",
                               e.base.span, f"cast it: (struct NAME *){show(e.base)}->{e.name}",
                               self.untyped_hint())
            else:
                raise self.err(TypeCheckError, f"'->' needs a pointer to a struct, but {show(e.base)} is {bt}",
                               name_span, self._member_of_hint(bt))
        else:
            if isinstance(bt, RecordTy):
                rec = bt
            elif isinstance(bt, PtrTy) and isinstance(bt.target, RecordTy):
                raise self.err(TypeCheckError, f"{show(e.base)} is a pointer ({bt}): use '->'", name_span,
                               f"write {show(e.base)}->{e.name}")
            else:
                raise self.err(TypeCheckError, f"'.' needs a struct, but {show(e.base)} is {bt}", name_span,
                               self._member_of_hint(bt))
        rec = self.types.complete(rec)
        if rec.size == 0 and not self.types.member_names(rec):
            raise self.err(TypeCheckError, f"{rec} is incomplete here (no layout known)", name_span,
                           "cast to a struct whose definition is in BTF")
        mi = self.types.member(rec, e.name)
        if mi is None:
            names = self.types.member_names(rec)
            hints = [did_you_mean(e.name, names)]
            nested = self._nested_path(rec, e.name)
            if nested:
                hints = [f"{e.name} is inside {nested}: write {show(e.base)}{op}{nested}.{e.name}"]
            if e.name in PAYLOAD_NAMES:
                hints.append("payload views (cdata/sdata/ldata/qdata) follow an skb header: "
                             "@(struct udphdr *)l4%0->sdata[0]")
            raise self.err(ResolveError, f"{rec} has no member '{e.name}'", name_span, *hints)
        e.offset, e.bit_offset, e.bit_size = mi.offset, mi.bit_offset, mi.bit_size
        e.path = mi.path
        e.type = mi.type
        return e

    def _nested_path(self, rec: RecordTy, name: str, depth: int = 2) -> str:
        """``a.b`` when ``name`` is a member of named members ``a`` then ``b`` of ``rec``."""
        if depth <= 0:
            return ""
        for n in self.types.member_names(rec):
            mi = self.types.member(rec, n)
            if mi is None or not isinstance(mi.type, RecordTy):
                continue
            inner = self.types.complete(mi.type)
            if self.types.member(inner, name) is not None:
                return n
            deeper = self._nested_path(inner, name, depth - 1)
            if deeper:
                return f"{n}.{deeper}"
        return ""

    def _unwrap_scalar(self, e: ir.Expr) -> ir.Expr:
        """A struct with one scalar member (atomic_t, refcount_t, kuid_t) reads as that member."""
        for _ in range(4):
            t = e.type
            if not isinstance(t, RecordTy):
                return e
            names = self.types.member_names(t)
            if len(names) != 1:
                return e
            mi = self.types.member(t, names[0])
            if mi is None or mi.bit_size:
                return e
            m = ir.Member(e, names[0], arrow=False, offset=mi.offset, path=mi.path).at(e.span)
            m.type = mi.type
            e = m
        return e

    def untyped_hint(self) -> str:
        """Why the current probe's arguments have no type, when a front end knows more
        (a hint line, or ``""``)."""
        return ""

    def _member_of_hint(self, t: Optional[Ty]) -> str:
        if isinstance(t, PtrTy) and isinstance(t.target, (IntTy, VoidTy)):
            return "cast it to the struct it points to: (struct NAME *)EXPR->member"
        if isinstance(t, IntTy):
            return "integers have no members; cast an address: (struct NAME *)EXPR"
        return ""

    def _e_Index(self, e: ir.Index) -> ir.Expr:
        e.base = self.expr(e.base)
        e.index = self.expr(e.index)
        bt = e.base.type
        idx = e.index.value if isinstance(e.index, ir.Const) and isinstance(e.index.value, int) else None
        if not isinstance(e.index.type, (IntTy, EnumTy)):
            raise self.err(TypeCheckError, "an index must be an integer", e.index.span)
        if idx is not None and idx < 0:
            raise self.err(TypeCheckError, f"negative index {idx}", e.index.span)
        if isinstance(bt, ArrayTy):
            if idx is not None and bt.count and idx >= bt.count:
                raise self.err(TypeCheckError, f"the index {idx} is out of bounds for array of size {bt.count} "
                               f"({show(e.base)} is {bt})", e.index.span, f"valid indexes are 0..{bt.count - 1}")
            e.type = bt.elem
        elif isinstance(bt, PtrTy):
            if isinstance(bt.target, VoidTy):
                raise self.err(TypeCheckError, f"cannot index {show(e.base)}, a void pointer", e.span,
                               "cast it to a typed pointer first: (u32 *)EXPR")
            e.type = bt.target
        elif isinstance(bt, StrTy):
            e.type = IntTy(1, True, "char", is_char=True)
        else:
            raise self.err(TypeCheckError, f"cannot index {show(e.base)}: it is {bt}, not an array or pointer",
                           e.span)
        return e

    def _e_Cast(self, e: ir.Cast) -> ir.Expr:
        e.expr = self.expr(e.expr)
        span = getattr(e, "type_span", None) or e.span
        e.type = self._parse_type(e.type_text, span)
        if isinstance(e.type, RecordTy):
            raise self.err(TypeCheckError, f"cannot cast to a whole {e.type}", span,
                           f"cast to a pointer: ({e.type} *)")
        return e

    def _parse_type(self, text: str, span: Optional[Span]) -> Ty:
        try:
            return self.types.parse_type(text)
        except LookupError as ex:
            close = ex.args[1] if len(ex.args) > 1 else []
            words, _, _ = split_type_text(text)
            key = " ".join(words)
            hints = [did_you_mean(key, close) if close else ""]
            if isinstance(self.types, LayeredTypes) and type(self.types.primary) is TypeInfo:
                hints.append("no kernel BTF here: only base C types and network headers are known "
                             "(pass a BTF file with --btf)")
            raise self.err(ResolveError, f"unknown type '{key}'", span, *hints) from None

    def _e_Deref(self, e: ir.Deref) -> ir.Expr:
        e.expr = self.expr(e.expr)
        t = e.expr.type
        if not isinstance(t, PtrTy):
            raise self.err(TypeCheckError, f"cannot dereference {show(e.expr)}: it is {t}, not a pointer", e.span)
        if isinstance(t.target, VoidTy):
            raise self.err(TypeCheckError, f"cannot dereference a void pointer ({show(e.expr)})", e.span,
                           "cast it first: *(u64 *)EXPR")
        e.type = t.target
        return e

    def _need_int(self, x: ir.Expr, op: str) -> None:
        if not isinstance(x.type, (IntTy, EnumTy, PtrTy)):
            raise self.err(TypeCheckError, f"'{op}' needs a number, but {show(x)} is {x.type}", x.span)


def show(e: ir.Expr) -> str:
    """Short source-like text of an expression, for messages."""
    if isinstance(e, ir.Arg):
        return e.name or f"%{e.index}"
    if isinstance(e, ir.Register):
        return "%" + e.name
    if isinstance(e, ir.Retval):
        return "$retval"
    if isinstance(e, ir.Member):
        return f"{show(e.base)}{'->' if e.arrow else '.'}{e.name}"
    if isinstance(e, ir.Index):
        return f"{show(e.base)}[{show(e.index)}]"
    if isinstance(e, ir.Const):
        return repr(e.value) if isinstance(e.value, str) else str(e.value)
    if isinstance(e, ir.Cast):
        return f"({e.type_text}){show(e.expr)}"
    if isinstance(e, ir.Field):
        return e.name
    if isinstance(e, ir.Builtin):
        return "$" + e.name
    if isinstance(e, ir.Symbol):
        return "@" + e.name
    if isinstance(e, ir.SkbHeader):
        return f"@({e.type_text}){show(e.skb)}"
    if isinstance(e, ir.Deref):
        return f"*{show(e.expr)}"
    return type(e).__name__.lower()

