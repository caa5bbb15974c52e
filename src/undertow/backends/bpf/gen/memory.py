"""Values written to memory with a layout (layout.Slot): map keys and values, record
fields, variables. Scalars are stored as 8 bytes; strings are read with the
``probe_read_*_str`` helper of their address space (a failed read counted in
``lost[LOST_READ_FAULT]``); ``buf()``, ``ntop()``, ``usym()``, ``macaddr()``, user
stacks, tuples, tracepoint arrays and ``__data_loc`` strings, and the ``probe``/``func``
texts of a merged uprobe wildcard have their own layouts.

Uses from the other parts: :meth:`~.expr.ExprGen.scalar`, :meth:`~.expr.ExprGen.cond`,
:meth:`~.expr.ExprGen.addr` and the address-space helpers, and
:meth:`~.maps.MapGen.map_read_into`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Optional

from ....lang import ir
from ....lang.types import ArrayTy, EnumTy, IntTy, StrTy
from .. import insn as I
from ..asm import Reg
from ..compiled import LOST_READ_FAULT
from ..layout import Slot, layout
from .expr import field_alias
from .prologue import Prologue

__all__ = ["MemoryGen"]

AF_INET, AF_INET6 = 2, 10


class MemoryGen(Prologue):
    """:meth:`store` (any value) and :meth:`mem_into` (a value that is not a scalar)."""

    def cookie_string(self, name: str, base: int, off: int, slot: Slot) -> None:
        """``probe``/``func`` of a merged uprobe wildcard (one uprobe_multi link): the
        text of the attach point that fired, from the ``names`` table at the link's cookie
        (entries 0..N-1 probe names, N..2N-1 function names; filled by the runtime)."""
        a = self.a
        n = len(self.ap.multi)  # type: ignore[attr-defined]
        self.zero(base, off, slot.size)
        a.mov64(I.R1, Reg(I.R6))
        a.call(I.Helper.get_attach_cookie)
        if name == "func":
            a.add64(I.R0, n)
        mark = self.sp
        key = self.alloc(8)
        a.stx(I.W, I.FP, key, I.R0)
        self.lookup(("names", id(self.ap)), key)
        self.release(mark)
        nope = self.label("nocookie")
        a.jeq(I.R0, 0, nope)
        a.mov64(I.R3, Reg(I.R0))
        self.dst_ptr(I.R1, base, off)
        a.mov64(I.R2, slot.size)
        a.call(I.Helper.probe_read_kernel_str)
        a.label(nope)

    def store(self, e: ir.Expr, base: int, off: int, slot: Slot) -> None:
        """Evaluate ``e`` into ``[base + off]`` with layout ``slot``."""
        if slot.scalar:
            self.scalar(e)
            self.a.stx(I.DW, base, off, I.R0)
            return
        self.mem_into(e, base, off, slot)

    def cmdline_into(self, e: ir.Call, base: int, off: int, slot: Slot) -> None:
        """SystemTap's ``cmdline_str()``: the task's arguments, ``[arg_start, arg_end)`` of its
        mm (NUL-separated, fs/proc/base.c get_mm_cmdline), read from user memory at most
        ``slot.size - 1`` bytes, each NUL but the last made a space; "" without an mm."""
        a = self.a
        n = slot.size
        mark = self.sp
        tmp = self.alloc(8)
        skip, ok, read, loop, done = (self.label("cls"), self.label("clo"), self.label("clr"), self.label("cll"),
                                      self.label("cld"))
        self.zero(base, off, n)
        self.scalar(e.args[1])
        a.stx(I.DW, I.FP, tmp, I.R0)  # arg_end
        self.scalar(e.args[0])  # arg_start
        a.ldx(I.DW, I.R2, I.FP, tmp)
        a.sub64(I.R2, Reg(I.R0))
        a.jsle(I.R2, 0, skip)
        a.jle(I.R2, n - 1, ok)
        a.mov64(I.R2, n - 1)
        a.label(ok)
        a.stx(I.DW, I.FP, tmp, I.R2)  # the length read
        a.mov64(I.R3, Reg(I.R0))
        self.dst_ptr(I.R1, base, off)
        a.call(I.Helper.probe_read_user)
        a.jsge(I.R0, 0, read)
        self.zero(base, off, n)  # unreadable: ""
        a.ja(skip)
        a.label(read)
        a.ldx(I.DW, I.R5, I.FP, tmp)
        a.sub64(I.R5, 1)  # the last byte read stays: a NUL ends the last argument
        a.mov64(I.R2, 0)
        a.label(loop)
        a.jge(I.R2, Reg(I.R5), done)
        a.jge(I.R2, n - 1, done)
        a.mov64(I.R4, Reg(base))
        a.add64(I.R4, off)
        a.add64(I.R4, Reg(I.R2))
        a.ldx(I.B, I.R1, I.R4, 0)
        a.add64(I.R2, 1)
        a.jne(I.R1, 0, loop)
        a.st(I.B, I.R4, 0, 32)  # ' '
        a.ja(loop)
        a.label(done)
        a.label(skip)
        self.release(mark)

    def mem_into(self, e: ir.Expr, base: int, off: int, slot: Slot) -> None:  # noqa: C901
        a = self.a
        a.origin = e
        if isinstance(e, ir.Const) and getattr(e, "cookie_name", None) and getattr(self.ap, "multi", None):
            self.cookie_string(str(e.cookie_name), base, off, slot)  # type: ignore[attr-defined]
            return
        if isinstance(e, ir.Const) and isinstance(e.value, str):
            data = ir.text_bytes(e.value)[: max(0, slot.size - 1)] + b"\x00"
            data = data + b"\x00" * (slot.size - len(data))
            for i in range(0, len(data) - len(data) % 4, 4):
                a.st(I.W, base, off + i, int.from_bytes(data[i:i + 4], "little", signed=True))
            for i in range(len(data) - len(data) % 4, len(data)):
                a.st(I.B, base, off + i, data[i])
            return
        if isinstance(e, ir.Const) and isinstance(e.value, bytes):  # pton("::1"): bytes as they are
            data = e.value[:slot.size].ljust(slot.size, b"\x00")
            for i in range(0, len(data) - len(data) % 4, 4):
                a.st(I.W, base, off + i, int.from_bytes(data[i:i + 4], "little", signed=True))
            for i in range(len(data) - len(data) % 4, len(data)):
                a.st(I.B, base, off + i, data[i])
            return
        if isinstance(e, ir.Builtin) and e.name == "comm":
            if slot.size > 16:
                self.zero(base, off, slot.size)
            self.dst_ptr(I.R1, base, off)
            a.mov64(I.R2, min(16, slot.size))
            a.call(I.Helper.get_current_comm)
            return
        if isinstance(e, ir.Builtin) and e.name == "ustack" or isinstance(e, ir.Call) and e.name == "ustack":
            self.stack_id(True)
            a.stx(I.DW, base, off, I.R0)
            a.call(I.Helper.get_current_pid_tgid)
            a.rsh64(I.R0, 32)
            a.stx(I.DW, base, off + 8, I.R0)
            return
        if isinstance(e, ir.Call) and e.name == "cmdline_str":
            return self.cmdline_into(e, base, off, slot)
        if isinstance(e, ir.Var):
            voff, vslot = self.vars[e.name]
            n = min(vslot.size, slot.size)
            if slot.size > n:
                self.zero(base, off, slot.size)
            self.copy(I.FP, voff, base, off, n)
            return
        if isinstance(e, ir.MapRead):
            return self.map_read_into(e, base, off, slot)
        if isinstance(e, ir.TupleExpr):
            for x, (o, s) in zip(e.elems, slot.elems):
                self.store(x, base, off + o, s)
            return
        if isinstance(e, ir.TupleIndex):
            mark = self.sp
            bs = layout(e.base.type)
            tmp = self.alloc(bs.size)
            self.mem_into(e.base, I.FP, tmp, bs)
            o, s = bs.elems[e.index]
            self.copy(I.FP, tmp + o, base, off, min(s.size, slot.size))
            self.release(mark)
            return
        if isinstance(e, ir.Ternary):
            yes, no, end = self.label("ty"), self.label("tn"), self.label("te")
            self.cond(e.cond, yes, no)
            a.label(yes)
            self.mem_into(e.then, base, off, slot)
            a.ja(end)
            a.label(no)
            self.mem_into(e.other, base, off, slot)
            a.label(end)
            return
        if isinstance(e, ir.Field) and e.fmt_field is None and field_alias(e) is not None:
            return self.mem_into(field_alias(e), base, off, slot)  # type: ignore[arg-type]
        if isinstance(e, ir.Field) and e.fmt_field is not None:
            ff = e.fmt_field
            if ff.dynamic == "data_loc":
                self.zero(base, off, slot.size)
                a.ldx(I.W, I.R3, I.R6, ff.offset)
                a.and64(I.R3, 0xFFFF)
                a.add64(I.R3, Reg(I.R6))
                self.dst_ptr(I.R1, base, off)
                a.mov64(I.R2, slot.size)
                a.call(I.Helper.probe_read_kernel_str)
                return
            if ff.array_len is not None or ff.is_string:
                n = min(ff.size, slot.size)
                if slot.size > n:
                    self.zero(base, off, slot.size)
                self.dst_ptr(I.R1, base, off)
                a.mov64(I.R2, n)
                a.mov64(I.R3, Reg(I.R6))
                a.add64(I.R3, ff.offset)
                a.call(I.Helper.probe_read_kernel)
                return
        if isinstance(e, ir.Call):
            if self.call_into(e, base, off, slot):
                return
        if isinstance(e, (ir.Member, ir.Index, ir.Deref)):
            space = self.addr(e)
            n = min(e.type.size if e.type is not None else slot.size, slot.size)
            if slot.size > n:
                mark = self.sp
                tmp = self.alloc(8)
                a.stx(I.DW, I.FP, tmp, I.R0)
                self.zero(base, off, slot.size)
                a.ldx(I.DW, I.R0, I.FP, tmp)
                self.release(mark)
            a.mov64(I.R3, Reg(I.R0))
            self.dst_ptr(I.R1, base, off)
            a.mov64(I.R2, n)
            a.call(self.read_helper(space))
            return
        raise self.err(f"cannot compute {type(e).__name__.lower()} as {slot.kind} in the BPF backend yet", e)

    def call_into(self, e: ir.Call, base: int, off: int, slot: Slot) -> bool:
        a = self.a
        n = e.name
        if n == "str":
            src = e.args[0]
            if isinstance(src.type, (StrTy, ArrayTy)) or (isinstance(src, ir.Field) and src.fmt_field is not None
                                                          and src.fmt_field.dynamic):
                self.mem_into(src, base, off, slot)
                return True
            self.zero(base, off, slot.size)
            self.scalar(src)
            a.mov64(I.R3, Reg(I.R0))
            self.dst_ptr(I.R1, base, off)
            size = slot.size
            if len(e.args) > 1 and not isinstance(e.args[1], ir.Const):
                # str(p, n) with n computed: clamp to the slot
                mark = self.sp
                t = self.alloc(8)
                a.stx(I.DW, I.FP, t, I.R3)
                self.scalar(e.args[1])
                a.add64(I.R0, 1)
                a.mov64(I.R2, Reg(I.R0))
                lim = self.label("strn")
                a.jle(I.R2, size, lim)
                a.mov64(I.R2, size)
                a.label(lim)
                a.and64(I.R2, 4095)
                ok = self.label("strz")
                a.jne(I.R2, 0, ok)
                a.mov64(I.R2, 1)
                a.label(ok)
                a.ldx(I.DW, I.R3, I.FP, t)
                self.dst_ptr(I.R1, base, off)
                self.release(mark)
            else:
                a.mov64(I.R2, size)
            a.call(self.str_helper(src))
            ok = self.label("strok")
            a.jsge(I.R0, 0, ok)
            # -EFAULT: the page is not mapped yet (syscall entry); counted, shown at exit
            self.count_lost_inline(LOST_READ_FAULT)
            a.label(ok)
            return True
        if n == "buf":
            src = e.args[0]
            size = slot.size - 8
            self.zero(base, off, slot.size)
            a.st(I.DW, base, off, size)
            if isinstance(src.type, ArrayTy) and isinstance(src, (ir.Field, ir.Member, ir.Index)):
                self.mem_into(src, base, off + 8, Slot("bytes", size))
                return True
            if isinstance(src, ir.Const) and isinstance(src.value, str):
                # buf("text", n): the literal's bytes (NUL included), zeros past them
                data = (ir.text_bytes(src.value) + b"\x00")[:size]
                for i, byte in enumerate(data):
                    if byte:
                        a.st(I.B, base, off + 8 + i, byte)
                return True
            if len(e.args) > 1 and not isinstance(e.args[1], ir.Const):
                # buf(p, n) with n computed: read min(n, size) bytes, record that length
                mark = self.sp
                t = self.alloc(8)
                self.scalar(src)
                a.stx(I.DW, I.FP, t, I.R0)
                self.scalar(e.args[1])
                lim, done = self.label("bufn"), self.label("bufz")
                a.jsle(I.R0, size, lim)
                a.mov64(I.R0, size)
                a.label(lim)
                a.jsle(I.R0, 0, done)
                a.stx(I.DW, base, off, I.R0)
                a.mov64(I.R2, Reg(I.R0))
                a.ldx(I.DW, I.R3, I.FP, t)
                self.dst_ptr(I.R1, base, off + 8)
                a.call(self.read_helper(self.space_of(src)))
                a.label(done)
                self.release(mark)
                return True
            self.scalar(src)
            a.mov64(I.R3, Reg(I.R0))
            self.dst_ptr(I.R1, base, off + 8)
            a.mov64(I.R2, size)
            a.call(self.read_helper(self.space_of(src)))
            return True
        if n == "ntop":
            self.zero(base, off, slot.size)
            addr = e.args[-1]
            fam: Optional[int] = None
            if len(e.args) == 2:
                self.scalar(e.args[0])
                a.stx(I.DW, base, off, I.R0)
            t = addr.type
            if isinstance(t, (IntTy, EnumTy)):
                fam = AF_INET
                self.scalar(addr)
                a.stx(I.W, base, off + 8, I.R0)
            elif isinstance(t, ArrayTy):
                fam = AF_INET if t.size == 4 else AF_INET6
                self.mem_into(addr, base, off + 8, Slot("bytes", min(16, t.size)))
            else:
                raise self.err(f"ntop() needs an address (u32 or u8[4]/u8[16]), not {t}", addr)
            if len(e.args) == 1:
                a.st(I.DW, base, off, fam)
            return True
        if n == "usym":
            self.scalar(e.args[0])
            a.stx(I.DW, base, off, I.R0)
            a.call(I.Helper.get_current_pid_tgid)
            a.rsh64(I.R0, 32)
            a.stx(I.DW, base, off + 8, I.R0)
            return True
        if n == "macaddr":
            self.zero(base, off, slot.size)
            self.mem_into(e.args[0], base, off, Slot("bytes", 6))
            return True
        return False
