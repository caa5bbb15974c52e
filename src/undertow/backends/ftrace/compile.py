"""Compile resolved IR to ftrace: kprobe_events / uprobe_events lines and event filters.

The fetch-argument grammar is the kernel's (Documentation/trace/kprobetrace.rst,
Documentation/trace/uprobetracer.rst)::

    NAME=FETCHARG[:TYPE]     FETCHARG: %REG  $argN  $retval  $comm  @SYM  +|-[u]OFFS(FETCHARG)
    TYPE: u8..u64 s8..s64 x8..x64 string ustring symbol  b<width>@<bit-offset>/<container-bits>  T[N]

A member chain becomes nested dereferences: ``sk->__sk_common.skc_daddr`` is
``+<offset of skc_daddr within sock>(%di):u32`` (``.`` members add up their
offsets; each ``->`` is one more ``+off(...)``). A ``char[]`` member is read with
``:string`` at its address, a ``char *`` with ``+0(<pointer>):string``.

What ftrace cannot express is refused with the span of the node and a hint
(arithmetic on fetched values, calls, aggregations, printf, skb headers found
through ``skb->head``): the BPF backend runs those.

Filters use the event filter grammar (Documentation/trace/events.rst, section
5): ``field OP value`` combined with ``&& || !`` and parentheses; a field is a
name the line defines or one of the event's fields (``common_pid``...).
"""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

from ...errors import Span, TypeCheckError, UndertowError
from ...kernel.arch import Arch
from ...lang import ir
from ...lang.types import ArrayTy, EnumTy, IntTy, PtrTy, RecordTy, StrTy, Ty, VoidTy

DYNAMIC_KINDS = {"kprobe": "p", "kretprobe": "r", "uprobe": "p", "uretprobe": "r"}
from .ringbuf import COMM_FIELD  # noqa: E402 - the field kprobe/uprobe events fetch $comm into
#: The event of a task's new name (an exec, prctl(PR_SET_NAME): __set_task_comm() in
#: fs/exec.c calls trace_task_rename): a session with tracepoints enables it too, unshown,
#: so its COMM column follows the names.
COMM_EVENTS = ("task/task_rename",)
STRING_MAX_NOTE = "ftrace strings are read up to the kernel's limit (MAX_STRING_SIZE, 4096)"


class FtraceUnsupported(UndertowError):
    """A node the ftrace backend cannot run; carries the span for a caret."""

    def __init__(self, message: str, span: Optional[Span], hints: Tuple[str, ...] = ()) -> None:
        super().__init__(message, hints=hints or ("run it with --backend bpf",))
        self.span = span
        self.probe_index: Optional[int] = None


class OutField:
    """How to show one fetched field: the name in the event, its ftrace type, the display fmt;
    ``src``: the tracepoint field it shows when the line renamed it (``next=next_pid``)."""

    __slots__ = ("name", "ftype", "fmt", "src")

    def __init__(self, name: str, ftype: str, fmt: Optional[str] = None, src: Optional[str] = None) -> None:
        self.name, self.ftype, self.fmt, self.src = name, ftype, fmt, src


class EventSpec:
    """One ftrace event a session enables.

    ``definition`` is the line appended to ``definition_file`` (``kprobe_events``
    or ``uprobe_events``) for dynamic probes; ``None`` for tracepoints.
    ``filter`` is written to the event's ``filter`` file inside the instance.
    """

    __slots__ = ("group", "event", "kind", "probe_name", "definition", "definition_file", "filter", "fields",
                 "stack", "probe_index")

    def __init__(self, group: str, event: str, kind: str, probe_name: str, definition: Optional[str] = None,
                 definition_file: Optional[str] = None, filter: Optional[str] = None,
                 fields: Optional[List[OutField]] = None, stack: bool = False, probe_index: int = 0) -> None:
        self.group, self.event, self.kind, self.probe_name = group, event, kind, probe_name
        self.definition, self.definition_file, self.filter = definition, definition_file, filter
        self.fields: List[OutField] = [] if fields is None else fields
        self.stack, self.probe_index = stack, probe_index


def session_group(pid: Optional[int] = None) -> str:
    """Group (and name prefix) of one session's dynamic events: ``undertow_<pid>``."""
    return f"undertow_{os.getpid() if pid is None else pid}"


def compile_program(program: ir.Program, arch: "Arch", *, group: Optional[str] = None) -> List[EventSpec]:
    """Compile every probe of a resolved program. Raises :class:`FtraceUnsupported`."""
    group = group or session_group()
    specs: List[EventSpec] = []
    n = 0
    for pi, probe in enumerate(program.probes):
        for ap in probe.attach:
            try:
                specs.append(_compile_probe(probe, ap, arch, group, n, pi, program))
            except FtraceUnsupported as e:
                e.probe_index = pi
                raise
            n += 1
    return specs


def check_probe(probe: ir.Probe, arch: "Arch") -> Optional[FtraceUnsupported]:
    """The first reason ftrace cannot run ``probe``, or None."""
    try:
        for ap in probe.attach:
            _compile_probe(probe, ap, arch, "undertow_check", 0, 0, None)
    except FtraceUnsupported as e:
        return e
    except TypeCheckError as e:
        return FtraceUnsupported(e.message, e.span, tuple(e.hints))
    return None


def pointer_strings(probe: ir.Probe) -> Optional[FtraceUnsupported]:
    """The first tracepoint field ``probe`` shows as a string that ftrace can show only as
    an address (a ``char *`` the event records, such as a syscall's ``filename``), or None.

    An event's format holds the pointer, not the string, and an event filter cannot
    print what it points to (Documentation/trace/events.rst); the BPF backend reads it
    at the event (``bpf_probe_read_user_str``)."""
    for ap in probe.attach:
        if ap.kind != "tracepoint":
            return None
    for a in probe.actions:
        for f in a.fields if isinstance(a, ir.Emit) else ():
            e, t = f.expr, f.expr.type
            if isinstance(e, ir.Field) and isinstance(t, PtrTy) and _is_string_type(t) and \
                    f.fmt in ("str", "ustr"):
                where = probe.attach[0].target.replace(":", "/") if probe.attach else "the event"
                return FtraceUnsupported(
                    f"{where} records only the address in {e.name} (a {t}), "
                    f"not the string", f.span or e.span, ("--backend bpf reads the string",))
    return None


def _compile_probe(probe: ir.Probe, ap: ir.AttachPoint, arch: "Arch", group: str, n: int,
                   pi: int, program: Optional[ir.Program]) -> EventSpec:
    emits: List[ir.EmitField] = []
    stack = bool(program and program.setting("stack"))
    for a in probe.actions:
        if isinstance(a, ir.Emit):
            emits.extend(a.fields)
            stack = stack or a.stack
        else:
            raise FtraceUnsupported(f"ftrace cannot run {type(a).__name__.lower()} actions", a.span)
    if ap.kind == "tracepoint":
        g, _, e = ap.target.partition(":")
        spec = EventSpec(g, e, "tracepoint", probe.name or ap.event_name(), stack=stack, probe_index=pi)
        for f in emits:
            if not isinstance(f.expr, ir.Field):
                raise FtraceUnsupported(
                    "ftrace shows a tracepoint's own fields only; computed fields need BPF", f.span or f.expr.span)
            spec.fields.append(OutField(f.name, "", f.fmt, f.expr.name))
        if probe.filter is not None:
            spec.filter = FilterCompiler({}, user=False).compile(probe.filter)
        return spec
    if ap.kind not in DYNAMIC_KINDS:
        raise FtraceUnsupported(f"ftrace cannot attach {ap.kind} probes", ap.span)
    user = ap.kind in ("uprobe", "uretprobe")
    event = f"e{n}"
    fc = FetchCompiler(arch, user=user, ret=ap.kind in ("kretprobe", "uretprobe"))
    args: List[str] = []
    fields: List[OutField] = []
    consts: Dict[str, OutField] = {}
    for f in emits:
        if isinstance(f.expr, ir.Builtin) and f.expr.name == "stack":
            stack = True
            continue
        fetch, ftype = fc.fetch(f.expr, f.fmt)
        name = _field_name(f.name, f.span)
        args.append(f"{name}={fetch}:{ftype}" if ftype else f"{name}={fetch}")
        of = OutField(name, ftype, f.fmt or _default_fmt(f.expr.type, ftype))
        fields.append(of)
        consts[name] = of
    # the task's name at the event: the COMM column (trace_pipe_raw records carry only the
    # pid; /proc, read later, has another name after an exec)
    if COMM_FIELD not in consts:  # (a line pasted from -S fetches it already)
        args.append(f"{COMM_FIELD}=$comm:string")
    if user:
        if ap.file_offset is None:
            raise FtraceUnsupported(f"uprobe {ap.describe()} has no resolved file offset", ap.span,
                                    ("this is a bug: resolve the program first",))
        where = f"{_quote_path(ap.path)}:{ap.file_offset:#x}"
        dfile = "uprobe_events"
    else:
        where = ap.target + (f"+{ap.offset}" if ap.offset else "")
        dfile = "kprobe_events"
    definition = " ".join([f"{DYNAMIC_KINDS[ap.kind]}:{group}/{event}", where] + args)
    spec = EventSpec(group, event, ap.kind, probe.name or ap.event_name(), definition, dfile,
                     fields=fields, stack=stack, probe_index=pi)
    if probe.filter is not None:
        spec.filter = FilterCompiler(consts, user=user).compile(probe.filter)
    return spec


def _quote_path(path: str) -> str:
    if any(c.isspace() for c in path):
        raise FtraceUnsupported(f"uprobe_events cannot name a path with spaces: {path!r}", None,
                                ("copy or link the binary to a path without spaces",))
    return path


def _field_name(name: str, span: Optional[Span]) -> str:
    if not name or not (name[0].isalpha() or name[0] == "_") or not all(c.isalnum() or c == "_" for c in name):
        raise FtraceUnsupported(f"{name!r} is not a valid ftrace field name (letters, digits, _)", span,
                                ("rename the field: NAME=EXPR",))
    return name


def _default_fmt(t: Optional[Ty], ftype: str) -> Optional[str]:
    if ftype in ("string", "ustring"):
        return "str"
    if ftype.startswith("x"):
        return "x"
    return None


class FetchCompiler:
    """Turn an expression into a fetch argument and its type."""

    def __init__(self, arch: "Arch", *, user: bool, ret: bool) -> None:
        self.arch, self.user, self.ret = arch, user, ret

    # A location is (fetch, offset): the bytes at address value(fetch) + offset.
    def fetch(self, e: ir.Expr, fmt: Optional[str]) -> Tuple[str, str]:
        t = e.type
        if isinstance(e, ir.Builtin) and e.name == "comm":
            return "$comm", "string"
        bits = self._bitfield(e)
        if bits is not None:
            return bits
        if isinstance(e, ir.Cast) and not _needs_memory(e.expr):
            if _is_string_type(t) and isinstance(t, PtrTy) and fmt in (None, "str", "ustr"):
                return self._string(e)  # (char *)%0, (char *)$retval: the string it points to
            return self.fetch_value_with_type(e.expr, t, fmt, e)
        if _is_string_type(t):
            return self._string(e)
        if isinstance(e, (ir.Member, ir.Index, ir.Deref, ir.Payload)) or (isinstance(e, ir.Cast) and _needs_memory(e.expr)):
            loc, off = self.location(e)
            if isinstance(e, ir.Member) and e.bit_size:
                cont = (t.size if t is not None and t.size else 4) * 8
                return _deref(loc, off), f"b{e.bit_size}@{e.bit_offset or 0}/{cont}"
            if isinstance(t, ArrayTy):
                elem = t.elem
                return _deref(loc, off), f"{_int_type(elem, fmt)}[{t.count}]"
            return _deref(loc, off), _int_type(t, fmt)
        return self.fetch_value_with_type(e, t, fmt, e)

    def _bitfield(self, e: ir.Expr) -> Optional[Tuple[str, str]]:
        """``(mem >> o) & (2**w - 1)`` on an unsigned memory read of c bits is kprobe_events'
        bitfield type ``b<w>@<o>/<c>`` (how ``+0x10(%di):b4@2/32`` reads back as IR)."""
        if not (isinstance(e, ir.Binary) and e.op == "&" and isinstance(e.right, ir.Const)):
            return None
        mask = e.right.value
        if not isinstance(mask, int) or mask <= 0 or mask & (mask + 1):
            return None
        width, inner, off = mask.bit_length(), e.left, 0
        if isinstance(inner, ir.Binary) and inner.op == ">>" and isinstance(inner.right, ir.Const) and \
                isinstance(inner.right.value, int):
            inner, off = inner.left, inner.right.value
        t = inner.type
        if not isinstance(inner, (ir.Deref, ir.Member, ir.Index)) or not isinstance(t, IntTy) or t.signed or \
                t.size not in (1, 2, 4, 8) or (isinstance(inner, ir.Member) and inner.bit_size) or \
                not 0 <= off < off + width <= t.size * 8:
            return None
        loc, at = self.location(inner)
        return _deref(loc, at), f"b{width}@{off}/{t.size * 8}"

    def fetch_value_with_type(self, e: ir.Expr, t: Optional[Ty], fmt: Optional[str], at: ir.Expr) -> Tuple[str, str]:
        if isinstance(t, RecordTy):
            raise FtraceUnsupported(f"cannot print a whole {t}; pick a member", at.span)
        return self.value(e), _int_type(t, fmt)

    def _string(self, e: ir.Expr) -> Tuple[str, str]:
        t = e.type
        # uprobe memory reads are user reads already; a kprobe reading a __user
        # pointer needs ustring (kprobetrace.rst, "ustring").
        st = "ustring" if (not self.user and isinstance(t, PtrTy) and t.space == "user") else "string"
        if isinstance(t, (ArrayTy, StrTy)) and isinstance(e, (ir.Member, ir.Index, ir.Deref)):
            loc, off = self.location(e)
            return _deref(loc, off), st
        # char *: the string is at the pointer's value
        loc, off = self.address(e)
        return _deref(loc, off), st

    def address(self, e: ir.Expr) -> Tuple[str, int]:
        """``(fetch, off)`` such that value(fetch) + off is ``e``'s value: a pointer plus or
        minus a constant (kprobe_events' ``+OFFS(FETCHARG)`` read back as IR) folds into
        the offset; a pointer's constant is scaled by its target's size, as C and the BPF
        backend do."""
        inner = e
        while isinstance(inner, ir.Cast):
            inner = inner.expr
        if isinstance(inner, ir.Binary) and inner.op in ("+", "-"):
            for base, c, sign in ((inner.left, inner.right, 1 if inner.op == "+" else -1),
                                  (inner.right, inner.left, 1 if inner.op == "+" else 0)):
                if sign and isinstance(c, ir.Const) and isinstance(c.value, int):
                    bt = base.type
                    scale = 1
                    if isinstance(bt, PtrTy) and bt.target is not None and bt.target.size > 0 and \
                            not isinstance(bt.target, VoidTy):
                        scale = bt.target.size
                    loc, off = self.address(base)
                    return loc, off + sign * c.value * scale
        return self.value(e), 0

    def value(self, e: ir.Expr) -> str:
        """A fetch argument yielding ``e``'s value (a register, a dereference...)."""
        if isinstance(e, ir.Arg):
            if e.index is None:
                raise FtraceUnsupported("argument has no position (resolve first)", e.span)
            if self.ret:
                raise FtraceUnsupported("function arguments are not available at a return probe",
                                        e.span, ("read the argument in a 'p' line, or use --backend bpf",))
            try:
                return "%" + self.arch.arg_reg(e.index)
            except UndertowError:
                return f"$arg{e.index + 1}"
        if isinstance(e, ir.Register):
            return "%" + e.name
        if isinstance(e, ir.Retval):
            if not self.ret:
                raise FtraceUnsupported("$retval exists only at a return probe ('r' or 'R' lines)", e.span,
                                        ("use 'r SYMBOL ...' to read the return value",))
            return "$retval"
        if isinstance(e, ir.Symbol):
            return "@" + e.name
        if isinstance(e, ir.Const) and isinstance(e.value, int):
            return f"\\{e.value}"
        if isinstance(e, ir.Cast):
            return self.value(e.expr)
        if isinstance(e, (ir.Member, ir.Index, ir.Deref)):
            loc, off = self.location(e)
            return _deref(loc, off)
        if isinstance(e, ir.Builtin) and e.name == "comm":
            return "$comm"
        if isinstance(e, ir.SkbHeader) and e.addr is not None:
            fetch, off = self.view_address(e)
            if off:
                raise _view_unsupported(e)
            return fetch
        raise FtraceUnsupported(f"ftrace cannot compute {_describe(e)}", e.span)

    def view_address(self, view: "ir.SkbHeader | ir.Payload") -> Tuple[str, int]:
        """``(fetch, off)`` of a header or payload view's address (lang/skbview.py): a
        fetched value plus constants when the headers before it have fixed lengths; else
        the view needs a length read from the packet, which fetch arguments cannot add."""
        assert view.addr is not None
        for x in view.addr.walk():
            if isinstance(x, ir.Ternary) or (
                    isinstance(x, ir.Binary) and not (x.op == "+" and isinstance(x.right, ir.Const))):
                raise _view_unsupported(view)
        return self.address(view.addr)

    def location(self, e: ir.Expr) -> Tuple[str, int]:
        """``(fetch, off)`` such that ``e`` lives at memory address value(fetch) + off."""
        if isinstance(e, ir.Member):
            if e.offset is None:
                raise FtraceUnsupported(f"member {e.name} has no offset (resolve first)", e.span)
            if e.arrow:
                loc, off = self.address(e.base)
                return loc, off + e.offset
            loc, off = self.location(e.base)
            return loc, off + e.offset
        if isinstance(e, ir.Index):
            if not (isinstance(e.index, ir.Const) and isinstance(e.index.value, int)):
                raise FtraceUnsupported("ftrace needs a constant index", e.index.span)
            bt = e.base.type
            elem = bt.elem if isinstance(bt, ArrayTy) else bt.target if isinstance(bt, PtrTy) else None
            size = elem.size if elem is not None and elem.size else 1
            if isinstance(bt, PtrTy):
                loc, off = self.address(e.base)
                return loc, off + e.index.value * size
            loc, off = self.location(e.base)
            return loc, off + e.index.value * size
        if isinstance(e, ir.Deref):
            return self.address(e.expr)
        if isinstance(e, ir.Cast):
            return self.location(e.expr)
        if isinstance(e, ir.Payload) and e.addr is not None:
            return self.view_address(e)
        if isinstance(e, ir.SkbHeader):
            raise FtraceUnsupported("a header view is an address, not a value in memory", e.span)
        raise FtraceUnsupported(f"{_describe(e)} is not in memory", e.span)


def _view_unsupported(view: ir.Expr) -> FtraceUnsupported:
    """Why kprobe_events cannot fetch a header or payload view: its address needs a length
    read from the packet (IPv4 IHL, TCP data offset, VLAN tags), and fetch arguments cannot
    add fetched values (Documentation/trace/kprobetrace.rst, FETCHARGS)."""
    what = "this payload view" if isinstance(view, ir.Payload) else "this header"
    return FtraceUnsupported(
        f"ftrace cannot locate {what}: its address depends on a header length read from the packet, "
        "and kprobe_events cannot add fetched values", view.span,
        ("the BPF backend can (--backend auto picks it)",
         "a header at the layer skb->data points at (the marker: l2, l3, l4) needs no length"))


def _needs_memory(e: ir.Expr) -> bool:
    return isinstance(e, (ir.Member, ir.Index, ir.Deref, ir.Payload, ir.SkbHeader))


def _deref(fetch: str, off: int) -> str:
    sign = "+" if off >= 0 else "-"
    return f"{sign}{abs(off):#x}({fetch})"


def _is_string_type(t: Optional[Ty]) -> bool:
    if isinstance(t, StrTy):
        return True
    if isinstance(t, ArrayTy) and isinstance(t.elem, IntTy) and t.elem.is_char:
        return True
    if isinstance(t, PtrTy) and isinstance(t.target, IntTy) and t.target.is_char:
        return True
    return False


def _int_type(t: Optional[Ty], fmt: Optional[str]) -> str:
    if isinstance(t, (PtrTy,)):
        size, signed = 8, False
        if fmt is None:
            fmt = "x"
    elif isinstance(t, (IntTy, EnumTy)):
        size, signed = t.size, getattr(t, "signed", False)
    elif t is None:
        size, signed = 8, False
    else:
        size, signed = (t.size if t.size in (1, 2, 4, 8) else 8), False
    bits = size * 8
    if fmt in ("x", "B16", "B32", "B64", "sym"):
        return "symbol" if fmt == "sym" else f"x{bits}"
    if fmt == "s":
        return f"s{bits}"
    if fmt in ("u", "ipv4", "b16", "b32", "b64"):
        return f"u{bits}"
    return f"{'s' if signed else 'u'}{bits}"


def _describe(e: ir.Expr) -> str:
    if isinstance(e, ir.Binary):
        return f"'{e.op}' on fetched values"
    if isinstance(e, ir.Call):
        return f"{e.name}()"
    return type(e).__name__.lower()


_FILTER_MAX = 4096  # PAGE_SIZE on x86_64 (and the smallest page size on aarch64)


class FilterCompiler:
    """IR filter -> ftrace event filter text."""

    OPS = {"==", "!=", "<", "<=", ">", ">=", "&", "~"}

    def __init__(self, fields: Dict[str, OutField], *, user: bool) -> None:
        self.fields = fields
        self.user = user

    def compile(self, e: ir.Expr) -> str:
        text = self._expr(e, top=True)
        if len(ir.text_bytes(text)) >= _FILTER_MAX:
            # event_filter_write() refuses a write of PAGE_SIZE bytes or more (EINVAL)
            raise FtraceUnsupported(f"this filter is {len(ir.text_bytes(text))} bytes of ftrace filter text; "
                                    f"the kernel takes less than {_FILTER_MAX}", e.span,
                                    ("--backend bpf has no such limit",))
        return text

    def _expr(self, e: ir.Expr, top: bool = False) -> str:
        if isinstance(e, ir.Binary) and e.op in ("&&", "||"):
            left = self._expr(e.left)
            right = self._expr(e.right)
            s = f"{left} {e.op} {right}"
            return s if top else f"({s})"
        if isinstance(e, ir.Unary) and e.op == "!":
            return f"!({self._expr(e.expr, top=True)})"
        if isinstance(e, ir.Binary) and e.op in self.OPS:
            return self._compare(e)
        raise FtraceUnsupported(
            f"ftrace filters compare a field with a constant; cannot filter on {_describe(e)}", e.span)

    def _compare(self, e: ir.Binary) -> str:
        name: Optional[str] = None
        const: Optional[ir.Const] = None
        op = e.op
        if _field_ref(e.left) and isinstance(e.right, ir.Const):
            name, const = _field_ref(e.left), e.right
        elif _field_ref(e.right) and isinstance(e.left, ir.Const):
            name, const = _field_ref(e.right), e.left
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
        if name is None or const is None:
            raise FtraceUnsupported("ftrace filters compare a field with a constant", e.span)
        of = self.fields.get(name)
        value = const.value
        if isinstance(value, str):
            if op not in ("==", "!=", "~"):
                raise FtraceUnsupported(f"strings compare with == != or ~ (glob), not {op}", e.span)
            fe = e.left if _field_ref(e.left) else e.right
            ff = getattr(fe, "fmt_field", None)
            if ff is not None and ff.is_pointer and not ff.is_string and "char" in (ff.elem_type or ff.type):
                # A tracepoint field holding a pointer to a user string (a syscall's
                # filename): the filter must read user memory, ".ustring" (kernel 6.1+,
                # "tracing: Add ustring operation to filtering string pointers").
                name = f"{name}.ustring"
            return f"{name}{op}{_quote_filter_string(value, const.span)}"
        if isinstance(value, bytes):
            raise FtraceUnsupported("byte strings cannot be filtered in ftrace", const.span)
        if op == "~":
            raise FtraceUnsupported("~ (glob) compares strings only", e.span)
        # dotted addresses and numbers compared with byte-swapped fields are in the field's
        # own byte order already (lang/resolve_lines.py, _check_compare): hex like surftrace
        return f"{name}{op}{hex(value) if of is not None and of.fmt == 'ipv4' else value}"


def _field_ref(e: ir.Expr) -> Optional[str]:
    if isinstance(e, ir.Field):
        return e.name
    if isinstance(e, ir.Var):
        return e.name
    if isinstance(e, ir.Builtin) and e.name in ("pid", "tid"):
        return "common_pid"
    return None


#: MAX_FILTER_STR_VAL (kernel/trace/trace.h): a filter string is shorter than this (bytes).
FILTER_STR_MAX = 256


def _quote_filter_string(s: str, span: Optional[Span]) -> str:
    """``s`` quoted for an event filter. The kernel's filter parser (parse_pred() in
    kernel/trace/trace_events_filter.c) takes everything up to the next matching quote,
    ``"`` or ``'``, with no escapes: a string holding both quotes, a newline or a NUL
    cannot be written, nor one of 256 bytes or more."""
    n = len(s.encode("utf-8", "surrogateescape"))
    if "\n" in s or "\0" in s:
        raise FtraceUnsupported("ftrace filter strings cannot contain newlines or NUL bytes", span)
    if n >= FILTER_STR_MAX:
        raise FtraceUnsupported(f"ftrace filter strings are shorter than {FILTER_STR_MAX} bytes "
                                f"(this one has {n})", span)
    if '"' not in s:
        return f'"{s}"'
    if "'" not in s:
        return f"'{s}'"
    raise FtraceUnsupported("an ftrace filter string cannot hold both quote characters", span)
