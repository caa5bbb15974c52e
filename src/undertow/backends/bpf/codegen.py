"""IR -> BPF for tracepoint probe lines (the first slice of the code generator).

Scope of this slice: tracepoint probes whose actions emit the event's fields and
whose filter compares fields with constants (``&& || !``, signed/unsigned
integer compares, string ``==``/``!=`` against a literal). Pointer fields that
the format types as ``char *`` (syscall arguments such as ``filename``) are read
as user strings with ``bpf_probe_read_user_str`` — what ftrace cannot do.

Program shape (one per probe)::

    r6 = ctx
    if current tgid == self: exit                   (the tool never traces itself)
    r7 = ringbuf_reserve(rb, RECORD, 0)             (NULL: lost[0] += 1; exit)
    header: ts, tgid, tid, comm[16], probe index, error bits
    fields: ints loaded from ctx; strings via probe_read_user_str / kernel_str
    filter evaluated on the record: false -> ringbuf_discard
    ringbuf_submit(r7, BPF_RB_NO_WAKEUP)            (the reader polls on a timer)

Record layout: u64 ts | u32 tgid | u32 tid | char comm[16] | u32 probe | u32 errors | u32 cpu | pad | fields...
A failed string read sets bit i of ``errors`` for field i (reported, never silent zero).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ...errors import Span, UndertowError
from ...lang import ir
from ...lang.types import ArrayTy, IntTy, PtrTy, StrTy
from . import insn as I
from .asm import Asm, Program, Reg, ret0_exit, zero_stack

HEADER = struct.Struct("<QII16sIII4x")  # ts, tgid, tid, comm, probe, errors, cpu
HDR_SIZE = HEADER.size                  # 48
DEFAULT_STRLEN = 64


class Unsupported(UndertowError):
    """A node this code generator does not handle yet; carries the span."""

    def __init__(self, message: str, span: Optional[Span]) -> None:
        super().__init__(message, hints=["use --backend ftrace for this line, or simplify it"])
        self.span = span


@dataclass
class FieldSlot:
    name: str
    kind: str           # "int" | "str"
    offset: int         # in the record
    size: int
    signed: bool = False
    fmt: Optional[str] = None


@dataclass
class ProbeCode:
    """One compiled probe: the program, the tracepoint it attaches to, the record layout."""

    index: int
    name: str
    group: str
    event: str
    program: Program
    slots: List[FieldSlot] = field(default_factory=list)
    record_size: int = HDR_SIZE


def _align(n: int, a: int = 8) -> int:
    return (n + a - 1) & ~(a - 1)


def compile_tracepoint(probe: ir.Probe, ap: ir.AttachPoint, index: int, self_pid: Optional[int],
                       strlen: int = DEFAULT_STRLEN) -> ProbeCode:
    if ap.kind != "tracepoint":
        raise Unsupported(f"the BPF backend does not attach {ap.kind} probes yet", ap.span)
    group, _, event = ap.target.partition(":")
    emits: List[ir.EmitField] = []
    for act in probe.actions:
        if not isinstance(act, ir.Emit):
            raise Unsupported(f"{type(act).__name__} actions are not supported by the BPF backend yet", act.span)
        emits.extend(act.fields)
    # a string field compared with a literal needs room for the whole literal
    # (else the comparison could never hold, and the verifier rejects dead code)
    want: Dict[str, int] = {}
    if probe.filter is not None:
        for node in probe.filter.walk():
            if isinstance(node, ir.Binary) and node.op in ("==", "!="):
                for fe, ce in ((node.left, node.right), (node.right, node.left)):
                    if isinstance(fe, (ir.Field, ir.Var)) and isinstance(ce, ir.Const) and isinstance(ce.value, str):
                        want[fe.name] = max(want.get(fe.name, 0), _align(len(ce.value.encode()) + 1))
    slots: List[FieldSlot] = []
    off = HDR_SIZE
    by_name: Dict[str, Tuple[FieldSlot, Any]] = {}
    for f in emits:
        if not isinstance(f.expr, ir.Field) or f.expr.fmt_field is None:
            raise Unsupported("only tracepoint fields can be emitted by the BPF backend yet", f.span)
        ff = f.expr.fmt_field
        if ff.dynamic == "rel_loc":
            raise Unsupported(f"{ff.name}: __rel_loc fields are not read by the BPF backend yet", f.span)
        if ff.dynamic == "data_loc":
            slot = FieldSlot(f.name, "str", off, min(4096, max(strlen, want.get(f.name, 0))), fmt="str")
        elif ff.is_pointer and _is_char_ptr(f.expr.type, ff):
            slot = FieldSlot(f.name, "str", off, min(4096, max(strlen, want.get(f.name, 0))), fmt="str")
        elif ff.array_len is not None or ff.is_string:
            slot = FieldSlot(f.name, "str" if ff.is_string else "bytes", off, ff.size, fmt="str")
        elif ff.size in (1, 2, 4, 8):
            fmt = f.fmt
            if ff.size == 8 and ff.type.strip() in ("int", "pid_t"):
                fmt = "s32"  # an int in a syscall's 64-bit argument slot
            slot = FieldSlot(f.name, "int", off, ff.size, bool(ff.signed), fmt)
        else:
            raise Unsupported(f"{ff.name}: a {ff.size}-byte field is not supported yet", f.span)
        off = _align(off + slot.size)
        slots.append(slot)
        by_name[f.name] = (slot, ff)
    size = _align(off)
    a = Asm()
    a.mov64(I.R6, Reg(I.R1))
    if self_pid is not None:
        a.call(I.Helper.get_current_pid_tgid)
        a.rsh64(I.R0, 32)
        a.jeq(I.R0, self_pid, "exit")
    a.ld_map_fd(I.R1, "rb")
    a.mov64(I.R2, size)
    a.mov64(I.R3, 0)
    a.call(I.Helper.ringbuf_reserve)
    a.jeq(I.R0, 0, "lost")
    a.mov64(I.R7, Reg(I.R0))
    a.call(I.Helper.ktime_get_ns)
    a.stx(I.DW, I.R7, 0, I.R0)
    a.call(I.Helper.get_current_pid_tgid)
    a.stx(I.W, I.R7, 12, I.R0)
    a.rsh64(I.R0, 32)
    a.stx(I.W, I.R7, 8, I.R0)
    a.mov64(I.R1, Reg(I.R7))
    a.add64(I.R1, 16)
    a.mov64(I.R2, 16)
    a.call(I.Helper.get_current_comm)
    a.st(I.W, I.R7, 32, index)
    a.st(I.W, I.R7, 36, 0)
    a.call(I.Helper.get_smp_processor_id)
    a.stx(I.W, I.R7, 40, I.R0)
    for i, (f, slot) in enumerate(zip(emits, slots)):
        ff = f.expr.fmt_field  # type: ignore[attr-defined]
        a.origin = f.expr
        if slot.kind == "int":
            sz = {1: I.B, 2: I.H, 4: I.W, 8: I.DW}[ff.size]
            a.ldx(sz, I.R1, I.R6, ff.offset)
            a.stx(sz, I.R7, slot.offset, I.R1)
        elif slot.kind == "str" and ff.dynamic == "data_loc":
            # __data_loc: a u32 at the field, low 16 bits = offset of the bytes from the
            # start of the record (the ctx), high 16 bits = length
            a.ldx(I.W, I.R3, I.R6, ff.offset)
            a.and64(I.R3, 0xFFFF)
            a.add64(I.R3, Reg(I.R6))
            a.mov64(I.R1, Reg(I.R7))
            a.add64(I.R1, slot.offset)
            a.mov64(I.R2, slot.size)
            a.call(I.Helper.probe_read_kernel_str)
            a.jsge(I.R0, 0, f"ok{i}")
            a.ldx(I.W, I.R1, I.R7, 36)
            a.alu("or", I.R1, 1 << min(i, 30), is64=False)
            a.stx(I.W, I.R7, 36, I.R1)
            a.label(f"ok{i}")
        elif slot.kind == "str" and ff.is_pointer:
            a.ldx(I.DW, I.R3, I.R6, ff.offset)
            a.mov64(I.R1, Reg(I.R7))
            a.add64(I.R1, slot.offset)
            a.mov64(I.R2, slot.size)
            # syscall arguments are user pointers (the format file does not say so)
            user = group == "syscalls" or _user_ptr(f.expr.type)
            a.call(I.Helper.probe_read_user_str if user else I.Helper.probe_read_kernel_str)
            a.jsge(I.R0, 0, f"ok{i}")
            # the read failed (e.g. -EFAULT: page not faulted in yet at syscall entry)
            a.ldx(I.W, I.R1, I.R7, 36)
            a.alu("or", I.R1, 1 << min(i, 30), is64=False)
            a.stx(I.W, I.R7, 36, I.R1)
            a.label(f"ok{i}")
        else:  # fixed array inside the record: copy it
            a.mov64(I.R1, Reg(I.R7))
            a.add64(I.R1, slot.offset)
            a.mov64(I.R2, slot.size)
            a.mov64(I.R3, Reg(I.R6))
            a.add64(I.R3, ff.offset)
            a.call(I.Helper.probe_read_kernel)
        a.origin = None
    if probe.filter is not None:
        _filter(a, probe.filter, by_name, "submit", "discard")
    a.label("submit")
    a.mov64(I.R1, Reg(I.R7))
    a.mov64(I.R2, I.BPF_RB_NO_WAKEUP)
    a.call(I.Helper.ringbuf_submit)
    ret0_exit(a)
    a.label("discard")
    a.mov64(I.R1, Reg(I.R7))
    a.mov64(I.R2, I.BPF_RB_NO_WAKEUP)
    a.call(I.Helper.ringbuf_discard)
    ret0_exit(a)
    a.label("lost")
    zero_stack(a, -4, 4)
    a.ld_map_fd(I.R1, "lost")
    a.mov64(I.R2, Reg(I.R10))
    a.add64(I.R2, -4)
    a.call(I.Helper.map_lookup_elem)
    a.jeq(I.R0, 0, "exit")
    a.mov64(I.R1, 1)
    a.atomic_add(I.DW, I.R0, 0, I.R1)
    a.label("exit")
    ret0_exit(a)
    name = probe.name or ap.target
    return ProbeCode(index, name, group, event, a.assemble(), slots, size)


def _is_char_ptr(t: Any, ff: Any) -> bool:
    if isinstance(t, PtrTy) and isinstance(t.target, IntTy) and t.target.is_char:
        return True
    return "char" in (ff.elem_type or "") and ff.is_pointer


def _user_ptr(t: Any) -> bool:
    return isinstance(t, PtrTy) and t.space == "user"


_CMP = {"==": "jeq", "!=": "jne", ">": "jgt", ">=": "jge", "<": "jlt", "<=": "jle"}
_SCMP = {"==": "jeq", "!=": "jne", ">": "jsgt", ">=": "jsge", "<": "jslt", "<=": "jsle"}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}

_labels = iter(range(1 << 30))


def _filter(a: Asm, e: ir.Expr, names: Dict[str, Tuple[FieldSlot, Any]], yes: str, no: str) -> None:
    """Jump to ``yes`` when ``e`` holds for the record in r7, else to ``no``."""
    if isinstance(e, ir.Binary) and e.op == "&&":
        mid = f"and{next(_labels)}"
        _filter(a, e.left, names, mid, no)
        a.label(mid)
        _filter(a, e.right, names, yes, no)
        return
    if isinstance(e, ir.Binary) and e.op == "||":
        mid = f"or{next(_labels)}"
        _filter(a, e.left, names, yes, mid)
        a.label(mid)
        _filter(a, e.right, names, yes, no)
        return
    if isinstance(e, ir.Unary) and e.op == "!":
        _filter(a, e.expr, names, no, yes)
        return
    if isinstance(e, ir.Binary) and e.op in _CMP:
        field_e, const, op = e.left, e.right, e.op
        if isinstance(field_e, ir.Const):
            field_e, const, op = e.right, e.left, _FLIP[e.op]
        if not isinstance(field_e, (ir.Field, ir.Var)) or not isinstance(const, ir.Const):
            raise Unsupported("the BPF backend filters compare a field with a constant (for now)", e.span)
        if field_e.name not in names:
            raise Unsupported(f"filter on {field_e.name}, which this probe does not record", field_e.span)
        slot, _ff = names[field_e.name]
        if isinstance(const.value, str):
            if slot.kind != "str" or op not in ("==", "!="):
                raise Unsupported("strings compare with == or != here", e.span)
            data = const.value.encode() + b"\x00"
            if len(data) > slot.size:
                # Cannot be equal (the field holds at most slot.size - 1 bytes). A plain
                # `goto` would leave the other path dead, which check_cfg rejects
                # ("unreachable insn"): branch on a byte that is never 256 instead.
                a.ldx(I.B, I.R1, I.R7, slot.offset)
                a.jne(I.R1, 256, no if op == "==" else yes)
                a.ja(yes if op == "==" else no)
                return
            miss = no if op == "==" else yes
            hit = yes if op == "==" else no
            for i, byte in enumerate(data):
                a.ldx(I.B, I.R1, I.R7, slot.offset + i)
                a.jne(I.R1, byte, miss)
            a.ja(hit)
            return
        if slot.kind != "int" or not isinstance(const.value, int):
            raise Unsupported("compare an integer field with an integer", e.span)
        sz = {1: I.B, 2: I.H, 4: I.W, 8: I.DW}[slot.size]
        a.ldx(sz, I.R1, I.R7, slot.offset)
        value = const.value
        if slot.signed and slot.size < 8:
            # sign-extend the loaded value: shift up then arithmetic shift down
            sh = 64 - 8 * slot.size
            a.lsh64(I.R1, sh)
            a.alu("arsh", I.R1, sh)
        table = _SCMP if (slot.signed or value < 0) else _CMP
        if -(1 << 31) <= value < (1 << 31):
            a.jump(table[op], I.R1, value, yes)
        else:
            a.mov_imm(I.R2, value)
            a.jump(table[op], I.R1, Reg(I.R2), yes)
        a.ja(no)
        return
    raise Unsupported(f"the BPF backend cannot filter on {type(e).__name__.lower()} yet", e.span)


def decode_record(data: memoryview, code: ProbeCode) -> Tuple[int, int, int, int, str, Dict[str, Any], Dict[str, str]]:
    """``(ts, cpu, tgid, tid, comm, fields, errors)`` from one ring-buffer record."""
    ts, tgid, tid, comm, _probe, errs, cpu = HEADER.unpack_from(data, 0)
    fields: Dict[str, Any] = {}
    errors: Dict[str, str] = {}
    for i, s in enumerate(code.slots):
        raw = bytes(data[s.offset: s.offset + s.size])
        if s.kind == "int":
            fields[s.name] = int.from_bytes(raw, "little", signed=s.signed)
        elif s.kind == "str":
            fields[s.name] = raw.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
            if errs & (1 << min(i, 30)):
                errors[s.name] = "read failed (EFAULT: not paged in at syscall entry?)"
        else:
            fields[s.name] = raw
    return ts, cpu, tgid, tid, comm.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape"), fields, errors
