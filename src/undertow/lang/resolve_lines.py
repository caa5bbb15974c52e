"""Resolve probe lines (surftrace syntax, :mod:`undertow.lang.probeline`) against one kernel.

After this pass every expression has ``.type``, every :class:`ir.Member` its byte
``offset`` (and ``bit_offset``/``bit_size`` for bitfields), every :class:`ir.Arg` both
``index`` and ``name`` (when BTF knows the function), registers their ftrace spelling,
uprobe attach points their ``path`` and ``file_offset``, wildcard tracepoints one probe
per event, and every :class:`ir.EmitField` a default ``fmt`` taken from its type
(:func:`undertow.lang.typeinfo.default_format`).

What is particular to probe lines: a bare name is an event field on an ``e`` line and a
BTF argument name on ``p``/``r``/``P``/``R`` lines; ``$retval`` and ``$comm``-style builtins;
skb header views ``@(struct iphdr *)l3%0`` and payload views ``cdata[i]``; a filter
(``f:``) names the line's own fields (``NAME=EXPR``) or the event's, and a name compared
with a string is that string; output formats chosen by field names (``ip_``, ``b16_``...)
are checked against the types. It refuses ``$retval->f_pos`` when the function does not
return a pointer to a struct and an argument past the function's parameters.
"""

from __future__ import annotations

import re
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Set, Tuple

from ..errors import ResolveError, SourceError, Span, TypeCheckError, UndertowError, did_you_mean
from ..kernel.functions import CLONE_PROTOTYPES, base_name, clone_param
from . import ir, skbview
from .attach import check_kprobes
from .resolve_expr import ExprResolver, show
from .typeinfo import SKB_HEADERS, TypeInfo, default_format, split_type_text
from .types import COMM, S32, S64, U8, U16, U32, U64, ArrayTy, EnumTy, IntTy, PtrTy, RecordTy, StackTy, StrTy, \
    Ty, VoidTy, int_ty

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel
    from ..kernel.arch import Arch
    from ..kernel.kallsyms import Kallsyms

__all__ = ["LineResolver"]


class LineResolver(ExprResolver):
    """The resolver of probe lines: one :class:`ir.Probe` per line (per event of a wildcard)."""

    language = "probe lines"

    def __init__(self, kernel: "Kernel", arch: "Arch", strict: bool, types: Optional[TypeInfo]) -> None:
        super().__init__(kernel, arch, strict, types)
        #: the line's fields by name (``NAME=EXPR``), which its filter may name
        self.defined: Dict[str, ir.EmitField] = {}
        #: (probe, argument) whose type came from kernel/functions.py's CLONE_PROTOTYPES and was said
        self._clone_said: Set[Tuple[int, int]] = set()
        #: the function the probe's target is a compiler-made copy of ("": none)
        self.copy_of = ""
        self._warned_sysctls: Set[str] = set()

    # -- probes
    def probe(self, probe: ir.Probe) -> List[ir.Probe]:
        self.probe_ = probe
        if len(probe.attach) != 1:
            return [self._one(probe, ap) for ap in probe.attach] if probe.attach else [probe]
        ap = probe.attach[0]
        if ap.kind == "tracepoint" and ap.wildcard:
            events = self.expand_tracepoints(ap)
            out = []
            for g, e in events:
                p2 = ir.clone(probe)
                p2.attach[0].target = f"{g}:{e}"
                p2.attach[0].wildcard = False
                out.append(self._one(p2, p2.attach[0]))
            return out
        return [self._one(probe, ap)]

    def _one(self, probe: ir.Probe, ap: ir.AttachPoint) -> ir.Probe:
        self.probe_, self.ap = probe, ap
        self.sig, self.fmt, self.defined, self.copy_of = None, None, {}, ""
        if ap.kind in ("kprobe", "kretprobe"):
            copy_of = self.kernel_function(ap)
            if self.strict:
                check_kprobes(self.kernel, probe, ap)
            # a compiler-made copy's parameters may differ from BTF's prototype of the
            # function it copies (kernel/functions.py): its arguments stay untyped
            self.sig = None if copy_of else self.types.func(ap.target)
        elif ap.kind == "tracepoint":
            self.load_tracepoint(probe, ap)
            self._silent_tracepoint(ap)
        elif ap.kind in ("uprobe", "uretprobe"):
            self.locate_uprobe(ap)
        for action in probe.actions:
            if isinstance(action, ir.Emit):
                for f in action.fields:
                    f.expr = self._unwrap_scalar(self.expr(f.expr))
                    self._check_emittable(f)
                    if f.fmt is None:
                        # a register or an untyped argument/return value is shown in hex,
                        # as kprobe_events shows a fetch argument without a type (x64)
                        f.fmt = "x" if self._raw_value(f.expr) else default_format(f.name, f.expr.type)
                    else:
                        self._check_fmt(f)
                    self.defined[f.name] = f
            else:
                for e in action.exprs():
                    self.expr(e)
        if probe.filter is not None:
            probe.filter = self.filter(probe.filter)
        return probe

    def kernel_function(self, ap: ir.AttachPoint) -> str:
        """Check a ``p``/``r`` line's function and offset against the target kernel, before
        anything is written to tracefs; return the name the target is a compiler-made copy
        of (``ap.target`` becomes the copy, a note says so), or ``""``.

        The function must be a text symbol of kallsyms (else "no function NAME in this
        kernel" with renames and near names: :func:`undertow.kernel.functions.attachable_function`);
        an offset must lie inside it (the kernel sizes a function up to the next symbol:
        a larger offset would probe another function); a return probe has no offset
        (kernel/trace/trace_kprobe.c refuses it: "Retprobe address must be an function
        entry"); on aarch64 every instruction is 4 bytes. Kallsyms is this machine's: it
        is not consulted for another architecture (``-a``) or another kernel's BTF
        (``--btf``)."""
        name_span = Span(ap.span.start, ap.span.start + len(ap.target)) if ap.span is not None else None
        off_span = Span(name_span.end, ap.span.end) if ap.span is not None and name_span is not None else None
        if ap.offset and ap.kind == "kretprobe":
            raise self.err(ResolveError, f"a return probe attaches at the function's entry: +{ap.offset:#x} "
                                         "is refused by the kernel", off_span,
                           f"write 'r {ap.target}', or 'p {ap.target}+{ap.offset:#x}' for that place")
        if ap.offset and self.arch.name == "aarch64" and ap.offset % 4:
            raise self.err(ResolveError, f"+{ap.offset:#x} is not an instruction boundary: aarch64 "
                                         "instructions are 4 bytes", off_span,
                           f"use a multiple of 4, e.g. +{ap.offset - ap.offset % 4:#x}")
        ks = self._target_kallsyms()
        if ks is None:
            return ""
        from ..kernel.functions import NoSuchFunctionError, attachable_function, function_size

        try:
            fn = attachable_function(ap.target, ks, in_btf=lambda n: self.types.func(n) is not None)
        except NoSuchFunctionError as e:
            raise self.err(ResolveError, e.message, name_span, *e.hints) from None
        if fn.symbol != ap.target:
            self.warnings.append(_note(self.err(ResolveError, fn.note, name_span)))
            ap.target = fn.symbol
            self.copy_of = fn.asked
        if ap.offset:
            size = function_size(ks, fn.symbol)
            if size is not None and ap.offset >= size:
                raise self.err(ResolveError, f"+{ap.offset:#x} is past the end of {fn.symbol} "
                                             f"({size:#x} bytes): the probe would land in another function",
                               off_span, f"offsets inside {fn.symbol} run from 0 to {size - 1:#x}")
        return self.copy_of

    def _target_kallsyms(self) -> "Optional[Kallsyms]":
        """This machine's kallsyms when it describes the kernel the lines are for (same
        architecture, no other kernel's BTF), and can be read; else None (no check)."""
        from ..kernel.arch import current_arch

        try:
            if getattr(self.kernel, "foreign", False) or self.arch.name != current_arch().name:
                return None
            ks = self.kernel.kallsyms()
            return ks if ks.text.strip() else None
        except (UndertowError, OSError, AttributeError):
            return None

    def _silent_tracepoint(self, ap: ir.AttachPoint) -> None:
        """Warn (once per sysctl) when the tracepoint cannot fire as the kernel is set
        (``sched_stat_wait`` while ``kernel.sched_schedstats`` is 0: kernel/quiet.py)."""
        from ..kernel.quiet import SYSCTL_GATED, silent_reason

        gate = SYSCTL_GATED.get(ap.target)
        roots = getattr(self.kernel, "roots", None)
        if gate is None or roots is None or gate[0] in self._warned_sysctls:
            return
        why = silent_reason(roots, ap.target)
        if why is not None:
            self._warned_sysctls.add(gate[0])
            self.warnings.append(self.err(ResolveError, why, ap.span))

    def _raw_value(self, e: ir.Expr) -> bool:
        """A register, or an argument/return value no prototype types (``%0`` of a function
        BTF does not describe, a uprobe's ``$retval``)."""
        return isinstance(e, ir.Register) or (isinstance(e, (ir.Arg, ir.Retval)) and self.sig is None
                                              and e.type == U64)

    def untyped_hint(self) -> str:
        if self.copy_of and self.ap is not None:
            return (f"{self.ap.target} is a copy of {self.copy_of} the compiler made; BTF's prototype of "
                    f"{self.copy_of} may not fit it, so its arguments have no type")
        return ""

    def _e_Const(self, e: ir.Const) -> None:
        if isinstance(e.value, int):
            e.type = S64 if e.value < (1 << 63) else U64
        else:
            e.type = StrTy(max(1, len(ir.text_bytes(e.value)) + 1))

    def _e_Builtin(self, e: ir.Builtin) -> None:
        e.type = {"comm": COMM, "stack": StackTy("kernel"), "pid": S32, "tid": S32, "cpu": U32,
                  "uid": U32, "gid": U32}.get(e.name, U64)

    def _e_Arg(self, e: ir.Arg) -> ir.Expr:
        ap = self.ap
        assert ap is not None
        if ap.kind == "tracepoint":
            # a bare name on an 'e' line is an event field
            if e.name:
                return self.expr(ir.Field(e.name).at(e.span))
            raise self.err(TypeCheckError, "tracepoints have fields, not positional arguments", e.span,
                           self._field_hint())
        if ap.kind in ("kretprobe", "uretprobe"):
            raise self.err(TypeCheckError, "function arguments are not available at a return probe", e.span,
                           "read the argument on a 'p' line (or use --backend bpf to save it at entry)")
        sig = self.sig
        if e.name is not None and e.index is None:
            if sig is None:
                why = "BTF does not describe it" if ap.kind == "kprobe" else "user-space programs have no BTF here"
                raise self.err(ResolveError, f"cannot name the arguments of {ap.target}: {why}", e.span,
                               "use the argument's position instead: %0, %1, ...")
            names = [n for n, _ in sig.params]
            if e.name not in names:
                raise self.err(ResolveError, f"{ap.target}() has no argument named '{e.name}'", e.span,
                               did_you_mean(e.name, names),
                               f"{ap.target}({', '.join(f'{t} {n}' for n, t in sig.params)})")
            e.index = names.index(e.name)
        assert e.index is not None
        if sig is not None:
            if e.index >= len(sig.params):
                raise self.err(TypeCheckError,
                               f"{ap.target}() takes {len(sig.params)} argument"
                               f"{'s' if len(sig.params) != 1 else ''}; there is no %{e.index}", e.span,
                               f"{ap.target}({', '.join(f'{t} {n}' for n, t in sig.params)})" if sig.params else "")
            e.name, e.type = sig.params[e.index][0], sig.params[e.index][1]
        else:
            e.type = U64
        return e

    def _e_Retval(self, e: ir.Retval) -> None:
        ap = self.ap
        assert ap is not None
        if ap.kind not in ("kretprobe", "uretprobe"):
            letter = "R" if ap.kind == "uprobe" else "r"
            raise self.err(TypeCheckError, "$retval exists only at a return probe", e.span,
                           f"use '{letter} {ap.obj + ':' if ap.obj else ''}{ap.target} ...' to read the return value")
        if self.sig is not None and not isinstance(self.sig.ret, VoidTy):
            e.type = self.sig.ret
        elif self.sig is not None:
            raise self.err(TypeCheckError, f"{ap.target}() returns void: there is no $retval", e.span)
        else:
            e.type = U64

    def _e_Field(self, e: ir.Field) -> ir.Expr:
        if self.fmt is None:
            # a bare name in a p/r/P/R field value was parsed as an argument
            return self.expr(ir.Arg(name=e.name).at(e.span))
        return super()._e_Field(e)

    def _e_SkbHeader(self, e: ir.SkbHeader) -> ir.Expr:
        e.skb = self.expr(e.skb)
        type_span = getattr(e, "type_span", None) or e.span
        skb = self._skb_pointer(e)
        words, stars, _ = split_type_text(e.type_text)
        hname = words[-1] if words else ""
        if len(words) != 2 or words[0] != "struct" or hname not in SKB_HEADERS:
            raise self.err(TypeCheckError, f"'{e.type_text}' is not a protocol header undertow can locate",
                           type_span, "headers: " + ", ".join(f"struct {h} *" for h in SKB_HEADERS))
        if stars != 1:
            raise self.err(TypeCheckError, f"write the header type as a pointer: (struct {hname} *)", type_span)
        layer = SKB_HEADERS[hname]
        marker = getattr(e, "marker", None)
        if marker is not None and marker > layer:
            raise self.err(TypeCheckError,
                           f"struct {hname} is a layer-{layer[1]} header; it cannot be read at {marker}",
                           type_span, f"write @(struct {hname} *){layer}...")
        e.layer = layer
        span = e.span
        data = ir.Cast("u64", ir.Member(skb, "data", arrow=True).at(span)).at(span)
        e.addr = self.expr(ir.Cast(e.type_text, skbview.header_addr(data, marker or "l3", layer, span)).at(span))
        e.type = e.addr.type
        return e

    def _skb_pointer(self, e: ir.SkbHeader) -> ir.Expr:
        """``e.skb`` (resolved) as a ``struct sk_buff *``: through one dereference when it is
        a ``struct sk_buff **`` (``__netif_receive_skb_core(struct sk_buff **pskb, ...)``
        since 5.7), cast when it has no type (a function BTF does not describe)."""
        st, span = e.skb.type, e.skb.span

        def is_skb(t: Optional[Ty]) -> bool:
            return isinstance(t, PtrTy) and isinstance(t.target, RecordTy) and t.target.name == "sk_buff"

        if is_skb(st):
            return e.skb
        if isinstance(st, PtrTy) and is_skb(st.target):
            return self.expr(ir.Deref(e.skb).at(span))
        untyped = isinstance(st, IntTy) and st.size == 8 and not st.big_endian and \
            isinstance(e.skb, (ir.Arg, ir.Register)) and self.sig is None
        if not untyped:
            raise self.err(TypeCheckError, f"a header view needs a struct sk_buff *, but {show(e.skb)} is {st}",
                           e.skb.span, "e.g. @(struct iphdr *)l3%0 where %0 is the sk_buff")
        ap = self.ap
        known = clone_param(ap.target, e.skb.index) if isinstance(e.skb, ir.Arg) and ap is not None and \
            ap.kind == "kprobe" and e.skb.index is not None else None
        if known == "struct sk_buff **":
            if (id(self.probe_), e.skb.index) not in self._clone_said:  # said once per line
                self._clone_said.add((id(self.probe_), e.skb.index))
                since = ".".join(map(str, CLONE_PROTOTYPES[base_name(ap.target)][0]))
                self.warnings.append(self.err(
                    TypeCheckError, f"{show(e.skb)} is taken as struct sk_buff **: {ap.target} is a copy the "
                    f"compiler made, and undertow's table of checked copies gives its parameters "
                    f"(Linux {since}+)", e.skb.span))
            return self.expr(ir.Deref(ir.Cast("struct sk_buff **", e.skb).at(span)).at(span))
        return self.expr(ir.Cast("struct sk_buff *", e.skb).at(span))

    def _e_Payload(self, e: ir.Payload) -> ir.Expr:
        e.header = self.expr(e.header)
        e.index = self.expr(e.index)
        if not isinstance(e.index, ir.Const) or not isinstance(e.index.value, int) or e.index.value < 0:
            raise self.err(TypeCheckError, "a payload index must be a non-negative constant", e.index.span)
        hdr = e.header
        while isinstance(hdr, ir.Cast):
            hdr = hdr.expr
        if not isinstance(hdr, ir.SkbHeader) or hdr.addr is None:
            raise self.err(TypeCheckError, "a payload view follows a header view: @(struct udphdr *)l4%0->sdata[0]",
                           e.span)
        hname = split_type_text(hdr.type_text)[0][-1]
        start = ir.Cast("u64", hdr.addr).at(e.span)
        e.addr = self.expr(skbview.payload_addr(hname, start, e.elem_size, e.index.value, e.span))
        e.type = int_ty(e.elem_size, False)
        return e

    def _e_Unary(self, e: ir.Unary) -> ir.Expr:
        e.expr = self.expr(e.expr)
        if e.op == "!":
            e.type = S32
        else:
            self._need_int(e.expr, e.op)
            e.type = S64 if e.op == "-" else (e.expr.type if isinstance(e.expr.type, IntTy) else U64)
        return e

    def _e_Binary(self, e: ir.Binary) -> ir.Expr:
        e.left = self.expr(e.left)
        e.right = self.expr(e.right)
        if e.op in ("&&", "||"):
            e.type = S32
        elif e.op in ("==", "!=", "<", "<=", ">", ">=", "~"):
            e.type = S32
        else:
            self._need_int(e.left, e.op)
            self._need_int(e.right, e.op)
            lt, rt = e.left.type, e.right.type
            signed = getattr(lt, "signed", False) and getattr(rt, "signed", False)
            e.type = S64 if signed else U64
        return e

    def _e_Ternary(self, e: ir.Ternary) -> ir.Expr:
        e.cond, e.then, e.other = self.expr(e.cond), self.expr(e.then), self.expr(e.other)
        e.type = e.then.type
        return e

    def _e_Call(self, e: ir.Call) -> ir.Expr:
        e.args = [self.expr(a) for a in e.args]
        if e.name == "str" and len(e.args) == 1:
            e.type = StrTy(64)
            return e
        if e.name == "ntop" and len(e.args) == 1:
            e.type = StrTy(46)
            return e
        if e.name == "ksym" and len(e.args) == 1:
            e.type = U64
            return e
        raise self.err(TypeCheckError, f"{e.name}() is not supported in probe lines", e.span)

    # -- emit checks
    def _check_emittable(self, f: ir.EmitField) -> None:
        t = f.expr.type
        if isinstance(t, RecordTy):
            names = self.types.member_names(t)[:8]
            raise self.err(TypeCheckError, f"cannot print a whole {t}; pick a member", f.expr.span,
                           ("members: " + ", ".join(names)) if names else "")
        if isinstance(t, VoidTy):
            raise self.err(TypeCheckError, f"{show(f.expr)} has no value (void)", f.expr.span)

    def _check_fmt(self, f: ir.EmitField) -> None:
        t = f.expr.type
        if f.fmt in ("b16", "b32", "b64", "B16", "B32", "B64"):
            want = int(f.fmt[1:]) // 8
            if isinstance(t, (IntTy, EnumTy)) and t.size and t.size != want:
                self.warnings.append(self.err(TypeCheckError,
                                              f"{f.name} is {t} ({t.size} bytes) but its name asks to byte-swap "
                                              f"{want} bytes", f.span))
        if f.fmt == "ipv4" and isinstance(t, (IntTy,)) and t.size != 4:
            raise self.err(TypeCheckError, f"{f.name} is {t}, not a 4-byte IPv4 address", f.expr.span,
                           "ip_ names show a __be32 as a dotted address; rename the field")

    # -- filters
    def filter(self, e: ir.Expr) -> ir.Expr:
        return self._f(e)

    def _f(self, e: ir.Expr, string_ctx: bool = False) -> ir.Expr:
        if isinstance(e, ir.Binary) and e.op in ("&&", "||"):
            e.left, e.right = self._f(e.left), self._f(e.right)
            e.type = S32
            return e
        if isinstance(e, ir.Unary) and e.op == "!":
            e.expr = self._f(e.expr)
            e.type = S32
            return e
        if isinstance(e, ir.Binary) and e.op in ("==", "!=", "<", "<=", ">", ">=", "~"):
            e.left = self._f_operand(e.left)
            e.right = self._f_operand(e.right, other=e.left)
            if isinstance(e.left, ir.Field) and e.left.type is None:
                e.left = self._f_operand(e.left, other=e.right)
            self._check_compare(e)
            e.type = S32
            return e
        return self._f_operand(e)

    def _f_operand(self, e: ir.Expr, other: Optional[ir.Expr] = None) -> ir.Expr:
        if isinstance(e, ir.Field):
            return self._filter_name(e, other)
        if (isinstance(e, ir.Binary) and e.op in _LOGIC_CMP) or (isinstance(e, ir.Unary) and e.op == "!"):
            return self._f(e)
        # anything else: resolve its parts, names being fields of the line/event
        for name in ir.slot_names(type(e)):
            v = getattr(e, name, None)
            if isinstance(v, ir.Expr):
                setattr(e, name, self._f_operand(v))
        return self.expr(e) if e.type is None else e

    def _filter_name(self, e: ir.Field, other: Optional[ir.Expr]) -> ir.Expr:
        """A bare name in a filter: a field the line defines, an event field,
        a common field, a builtin, an argument; a string when compared to a string."""
        name = e.name
        if self.fmt is not None:
            # tracepoint filters run on the event's own fields (a renamed field maps back)
            d = self.defined.get(name)
            if d is not None and isinstance(d.expr, ir.Field):
                return self.expr(ir.Field(d.expr.name).at(e.span))
            if self.fmt.has_field(name):
                return self.expr(e)
        if name in self.defined:
            d = self.defined[name]
            e.type = d.expr.type
            e.defined = d
            return e
        if self.fmt is not None and self.fmt.has_field(name):
            return self.expr(e)
        if name.startswith("common_") and name in ("common_pid", "common_type", "common_flags",
                                                   "common_preempt_count"):
            e.type = S32 if name == "common_pid" else U8 if name != "common_type" else U16
            return e
        if name in ("comm", "COMM"):
            e.type = COMM  # the event filter's generic comm field (kernel/trace/trace_events_filter.c)
            return e
        if name in ("cpu", "CPU"):
            e.type = S32
            return e
        if other is not None and other.type is not None and _is_stringish(other.type):
            c = ir.Const(name).at(e.span)
            c.type = StrTy(len(name) + 1)
            return c
        if other is not None and isinstance(other, ir.Field) and other.type is None:
            return e  # decided once the other side is known
        if self.ap is not None and self.ap.kind in ("kprobe", "uprobe") and self.sig is not None and \
                name in [n for n, _ in self.sig.params]:
            return self.expr(ir.Arg(name=name).at(e.span))
        known = list(self.defined)
        if self.fmt is not None:
            known += [f.name for f in self.fmt.fields]
        else:
            known += ["common_pid"]
        known += ["comm"]
        hints = [did_you_mean(name, known)]
        if self.defined:
            hints.append("this line defines: " + ", ".join(self.defined))
        elif self.fmt is not None:
            hints.append(self._field_hint())
        else:
            hints.append("a filter names fields the line defines (NAME=EXPR) or common_pid")
        raise self.err(ResolveError, f"unknown field '{name}' in the filter", e.span, *hints)

    def _check_compare(self, e: ir.Binary) -> None:
        lt, rt = e.left.type, e.right.type
        ls, rs = _is_stringish(lt), _is_stringish(rt)
        lip = _is_ipv4_field(e.left) or _is_ipv4_field(e.right)
        if lip and (isinstance(e.right, ir.Const) and isinstance(e.right.value, str) or
                    isinstance(e.left, ir.Const) and isinstance(e.left.value, str)):
            c = e.right if isinstance(e.right, ir.Const) else e.left
            assert isinstance(c, ir.Const)
            if not re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", str(c.value)) or \
                    any(int(x) > 255 for x in str(c.value).split(".")):
                raise self.err(TypeCheckError, f"'{c.value}' is not an IPv4 address", c.span,
                               "write it dotted: 127.0.0.1")
            # the u32 a load of the network-order address gives on a little-endian CPU
            # (x86_64, aarch64): surftrace's 0x100007f for 127.0.0.1; every backend compares it
            c.value = int.from_bytes(bytes(int(x) for x in str(c.value).split(".")), "little")
            c.type = U32
            return
        swapped = _swapped_size(e.left) or _swapped_size(e.right)
        if swapped:
            c2 = e.right if isinstance(e.right, ir.Const) else e.left if isinstance(e.left, ir.Const) else None
            if c2 is not None and isinstance(c2.value, int):
                # a b16_/b32_/B16_... field shows the byte-swapped value: a number compared
                # with it is in that (host) order; the field holds the network order
                v = c2.value & ((1 << (8 * swapped)) - 1)
                c2.value = int.from_bytes(v.to_bytes(swapped, "big"), "little")
        if e.op == "~" and not (ls and rs):
            raise self.err(TypeCheckError, "'~' (glob match) compares a string field with a pattern", e.span)
        if ls != rs:
            s, n = (e.left, e.right) if ls else (e.right, e.left)
            raise self.err(TypeCheckError, f"cannot compare {show(s)} (a string) with {show(n)} ({n.type})",
                           e.span, "quote the text: \"...\"" if not ls else "")
        if ls and e.op not in ("==", "!=", "~"):
            raise self.err(TypeCheckError, f"strings compare with == != or ~, not {e.op}", e.span)


def _note(err: SourceError) -> SourceError:
    """``err`` marked as a note (``severity``): said once on stderr, not an error."""
    err.severity = "note"  # type: ignore[attr-defined]
    return err


_LOGIC_CMP = ("&&", "||", "==", "!=", "<", "<=", ">", ">=", "~")


def _is_stringish(t: Optional[Ty]) -> bool:
    if isinstance(t, StrTy):
        return True
    if isinstance(t, ArrayTy) and isinstance(t.elem, IntTy) and t.elem.is_char:
        return True
    if isinstance(t, PtrTy) and isinstance(t.target, IntTy) and t.target.is_char:
        return True
    return False


def _is_ipv4_field(e: ir.Expr) -> bool:
    d = getattr(e, "defined", None)
    return d is not None and d.fmt == "ipv4"


def _swapped_size(e: ir.Expr) -> int:
    """The byte count a ``b16_``/``b32_``/``b64_``/``B…`` field swaps for showing (0: none)."""
    d = getattr(e, "defined", None)
    return int(d.fmt[1:]) // 8 if d is not None and d.fmt in ("b16", "b32", "b64", "B16", "B32", "B64") else 0


