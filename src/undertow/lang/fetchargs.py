"""kprobe_events' own fetch arguments as probe-line field expressions.

``undertow trace -S`` shows what a probe line becomes in kprobe_events/uprobe_events
(``comm=+0xafc(%di):string``); a user may write that form back, and ``trace --help``
shows one (``P libc:getaddrinfo host=+0(%di):string``). The grammar is the kernel's
(Documentation/trace/kprobetrace.rst, "FETCHARGS" and "Types")::

    +|-[u]OFFS(FETCHARG)     the memory at FETCHARG + OFFS (``u``: user memory)
    FETCHARG:TYPE            u8..u64 s8..s64 x8..x64 string ustring symbol
                             b<width>@<bit-offset>/<container-bits>   TYPE[N]
    $stackN  $stack          the Nth entry of the stack, the stack address

Nothing here is a new kind of node: ``+8(%di):u32`` is ``*(u32 *)((u64)%di + 8)`` and
``+0(%di):string`` is ``(char *)((u64)%di + 0)`` shown as a string, so both backends
run them as they run casts and dereferences (the ftrace backend folds the constant
back into ``+8(%di)``). The parser (:mod:`undertow.lang.probeline`) builds the
dereference; :func:`apply_type` applies the ``:TYPE`` suffix.
"""

from __future__ import annotations

import re
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Callable, Optional, Tuple

from ..errors import ParseError, Span
from . import ir

__all__ = ["split_type", "fetch_deref", "apply_type", "stack_entry"]

# a type suffix the kernel knows, at the end of a field value (kprobetrace.rst "Types")
_TYPE_RE = re.compile(r":([A-Za-z_%][A-Za-z0-9_]*|b\d+@\d+/\d+)(\[\d+\])?$")
_INT_RE = re.compile(r"([usx])(8|16|32|64)$")
_BITS_RE = re.compile(r"b(\d+)@(\d+)/(\d+)$")
_KNOWN = ("u8..u64", "s8..s64", "x8..x64", "string", "ustring", "symbol", "b<width>@<offset>/<bits>")
_UNSUPPORTED = {"symstr": "the symbol name as a string", "char": "a character", "%pd": "a dentry name",
                "%pD": "a file name"}


def split_type(src: str, start: int, end: int) -> Optional[Tuple[str, Span]]:
    """The ``:TYPE`` suffix of the field value ``src[start:end]`` (its text without the
    colon, and its span), or None. Only names of kprobe_events' types count, so a
    ``?:`` in an expression is left alone."""
    m = _TYPE_RE.search(src, start, end)
    if m is None:
        return None
    name = m.group(1)
    if not (_INT_RE.match(name) or _BITS_RE.match(name) or name in ("string", "ustring", "symbol")
            or name in _UNSUPPORTED):
        return None
    return m.group(0)[1:], Span(m.start(), m.end())


def fetch_deref(inner: ir.Expr, offset: int, user: bool, span: Span) -> ir.Deref:
    """``+OFFS(inner)`` / ``+uOFFS(inner)``: the 8 bytes at inner's value + ``offset``
    (kprobe_events' default type is x64 on 64-bit kernels; :func:`apply_type` narrows it).
    The value is cast to u64 first, so the offset counts bytes whatever inner points to."""
    addr: ir.Expr = ir.Cast("u64", inner).at(inner.span)
    if offset:
        c = ir.Const(abs(offset)).at(span)
        addr = ir.Binary("+" if offset > 0 else "-", addr, c).at(span)
    ptr = ir.Cast("u64 __user *" if user else "u64 *", addr).at(span)
    return ir.Deref(ptr).at(span)  # type: ignore[return-value]


def stack_entry(n: int, span: Span) -> ir.Deref:
    """``$stackN``: the Nth 8-byte entry from the stack pointer (``regs_get_kernel_stack_nth``;
    for uprobes the user stack, read from user memory as every uprobe read is)."""
    return fetch_deref(ir.Register("sp").at(span), 8 * n, False, span)


def apply_type(e: ir.Expr, is_deref: "Callable[[ir.Expr], bool]", tname: str, tspan: Span,
               src: str, origin: str) -> Tuple[ir.Expr, Optional[str]]:
    """``e:TYPE`` -> (the expression, its output format). ``is_deref(e)`` says whether ``e``
    is a ``+OFFS(...)`` the parser built (its type is the type of the memory read)."""
    count: Optional[int] = None
    m = re.fullmatch(r"(.*)\[(\d+)\]", tname)
    if m:
        tname, count = m.group(1), int(m.group(2))

    def err(msg: str, *hints: str) -> ParseError:
        return ParseError(msg, source=src, span=tspan, origin=origin, hints=hints)

    if tname in _UNSUPPORTED:
        raise err(f"the fetch type ':{tname}' ({_UNSUPPORTED[tname]}) is not supported in probe lines",
                  "types: " + ", ".join(_KNOWN))
    deref = is_deref(e)
    if tname in ("string", "ustring"):
        if count is not None:
            raise err(f"':{tname}[{count}]' is not supported", f"write :{tname}")
        if isinstance(e, ir.Builtin) and e.name == "comm":
            return e, "str"
        if isinstance(e, ir.Const) and isinstance(e.value, str):
            return e, "str"
        user = tname == "ustring"
        if deref:
            # the string at the address read from: +0(%di):string is the string at %di
            assert isinstance(e, ir.Deref) and isinstance(e.expr, ir.Cast)
            user = user or "__user" in e.expr.type_text.split()
            base = e.expr.expr
        else:
            base = e  # %di:string means the string %di points to
        c = ir.Cast("char __user *" if user else "char *", base).at(e.span)
        return c, ("ustr" if user else "str")
    bits = _BITS_RE.match(tname)
    if bits:
        width, off, cont = (int(x) for x in bits.groups())
        if cont not in (8, 16, 32, 64) or not 0 < width <= cont or off + width > cont:
            raise err(f"bad bitfield type ':{tname}'", "b<width>@<bit-offset>/<container bits>: "
                      "the bits fit in a container of 8, 16, 32 or 64 bits, e.g. b4@2/32")
        if not deref or count is not None:
            raise err("a bitfield type reads memory: write it on +OFFS(...)", "e.g. +0x10(%di):b4@2/32")
        _retype(e, f"u{cont}")
        v: ir.Expr = e
        if off:
            v = ir.Binary(">>", v, ir.Const(off).at(tspan)).at(e.span)
        v = ir.Binary("&", v, ir.Const((1 << width) - 1).at(tspan)).at(e.span)
        return v, "u"
    if tname == "symbol":
        tname = "x64"  # the address, shown in hex (undertow does not symbolise fetched values)
    im = _INT_RE.match(tname)
    if im is None:
        raise err(f"unknown fetch type ':{tname}'", "types: " + ", ".join(_KNOWN))
    kind, nbits = im.groups()
    ctype = f"{'s' if kind == 's' else 'u'}{nbits}"
    fmt = {"u": "u", "s": "s", "x": "x"}[kind]
    if count is not None:
        if not deref:
            raise err("an array type reads memory: write it on +OFFS(...)", f"e.g. +0(%di):{tname}[{count}]")
        if not 0 < count <= 1024:
            raise err(f"bad array length {count}", "from 1 to 1024 elements")
        _retype(e, ctype)
        return ir.Cast(f"{ctype}[{count}]", e).at(e.span), fmt
    if deref:
        _retype(e, ctype)
        return e, fmt
    return ir.Cast(ctype, e).at(e.span), fmt


def _retype(d: ir.Expr, ctype: str) -> None:
    """Make the ``+OFFS(...)`` dereference ``d`` read a ``ctype``."""
    assert isinstance(d, ir.Deref) and isinstance(d.expr, ir.Cast)
    user = "__user" in d.expr.type_text.split()
    d.expr.type_text = f"{ctype} __user *" if user else f"{ctype} *"
