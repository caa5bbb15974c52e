"""Records to user space, and the actions user space performs when one arrives.

Everything the kernel cannot do (printf formatting, print/clear/zero of maps, exit,
time, system, cat, join, probe-line emits) is an *async action*
(compiled.AsyncAction): a record whose header carries the action's id, followed by its
arguments laid out one after the other (8-aligned); the session (runtime.py) performs
the actions in order. Records go through a BPF ring buffer (Linux 5.8+), or a perf
event array on older kernels (:func:`default_output`); each submitted record is
counted in ``sent``, each refused one in ``lost[LOST_RINGBUF]`` (prologue.py).

Record header (codegen.HEADER, 48 bytes): u64 ts | u32 tgid | u32 tid | char comm[16] |
u32 action | u32 errors | u32 cpu | pad.

Uses from the other parts: :meth:`~.memory.MemoryGen.store` (the arguments),
:meth:`~.expr.ExprGen.scalar`.
"""

from __future__ import annotations

import errno
import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, List

from ....lang import ir
from ....lang.types import IntTy, PtrTy, StrTy
from .. import insn as I
from ..asm import Reg
from ..codegen import HDR_SIZE
from ..compiled import LOST_RINGBUF, AsyncAction
from ..layout import Slot, align8, layout
from .prologue import Prologue

__all__ = ["RecordGen", "default_output"]


def default_output() -> str:
    """How records leave the kernel: ``ringbuf`` (Linux 5.8+) or ``perfbuf`` (a perf event
    array: older kernels). ``UNDERTOW_BPF_OUTPUT`` forces one; otherwise a one-page ring
    buffer map is created and closed to see (~0.3 ms)."""
    forced = os.environ.get("UNDERTOW_BPF_OUTPUT", "")
    if forced in ("ringbuf", "perfbuf"):
        return forced
    from ....errors import BPFError
    from ....kernel import syscalls as sc

    try:
        os.close(sc.map_create(sc.MapType.RINGBUF, 0, 0, 4096))
    except BPFError as e:
        # EPERM/EACCES: not allowed to create maps at all (a dry run as a user) - not a
        # missing map type
        if getattr(e, "errno", None) in (errno.EINVAL, errno.E2BIG, errno.EOPNOTSUPP):
            return "perfbuf"
    except OSError:
        pass
    return "ringbuf"


class RecordGen(Prologue):
    """Reserve, fill and submit records (:meth:`async_record`), and the statements made of them."""

    # -- records
    def reserve(self, action: AsyncAction, skip: str) -> None:
        """Reserve a record for ``action`` into R7 (jump to ``skip`` after counting a loss).

        Ring buffer: ``bpf_ringbuf_reserve``. Perf buffer (``output="perfbuf"``): the
        record is built in this CPU's slot of the ``scratch`` PERCPU_ARRAY and copied out
        by :meth:`submit` (a program nested on the same CPU, e.g. a kprobe in an interrupt,
        could overwrite it; the ring buffer has no such window)."""
        a = self.a
        idx = len(self.out.actions)
        self.out.actions.append(action)
        self._rec_size = HDR_SIZE + align8(action.size)
        ok = self.label("rbok")
        if self.out.options.get("output") == "perfbuf":
            mark = self.sp
            key = self.alloc(8)
            a.st(I.DW, I.FP, key, 0)
            self.lookup("scratch", key)
            self.release(mark)
        else:
            a.ld_map_fd(I.R1, "rb")
            a.mov64(I.R2, self._rec_size)
            a.mov64(I.R3, 0)
            a.call(I.Helper.ringbuf_reserve)
        a.jne(I.R0, 0, ok)
        self.count_lost_inline(LOST_RINGBUF)
        a.ja(skip)
        a.label(ok)
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
        a.st(I.W, I.R7, 32, idx)
        a.st(I.W, I.R7, 36, 0)
        a.call(I.Helper.get_smp_processor_id)
        a.stx(I.W, I.R7, 40, I.R0)

    def submit(self) -> None:
        a = self.a
        if self.out.options.get("output") == "perfbuf":
            # bpf_perf_event_output(ctx, map, BPF_F_CURRENT_CPU, data, size). A full perf ring
            # makes it fail (-ENOSPC); counted here, exactly: the kernel's own
            # PERF_RECORD_LOST is only written once space frees up, so the last losses of a
            # burst would never be reported
            a.mov64(I.R1, Reg(I.R6))
            a.ld_map_fd(I.R2, "rb")
            a.mov_imm(I.R3, 0xFFFFFFFF)
            a.mov64(I.R4, Reg(I.R7))
            a.mov64(I.R5, self._rec_size)
            a.call(I.Helper.perf_event_output)
            sent = self.label("sent")
            done = self.label("sentdone")
            a.jsge(I.R0, 0, sent)
            self.count_lost_inline(LOST_RINGBUF)
            a.ja(done)
            a.label(sent)
            self.count_sent_inline()
            a.label(done)
            return
        a.mov64(I.R1, Reg(I.R7))
        a.mov64(I.R2, I.BPF_RB_NO_WAKEUP)
        a.call(I.Helper.ringbuf_submit)
        self.count_sent_inline()

    def async_record(self, action: AsyncAction, args: List[ir.Expr]) -> None:
        """A record with ``args`` laid out one after the other (8-aligned), then submitted."""
        off = 0
        for e in args:
            s = layout(e.type)
            action.args.append((off, s))
            off = align8(off + s.size)
        action.size = off
        if HDR_SIZE + off > 32768:
            raise self.err("this record is too large for the ring buffer", action)
        skip = self.label("norec")
        self.reserve(action, skip)
        for e, (o, s) in zip(args, action.args):
            self.store(e, I.R7, HDR_SIZE + o, s)
        self.submit()
        self.a.label(skip)

    def check_helper(self, helper: str, span: Any, miss: bool = False, read: bool = False) -> None:
        """``-k``/``-kk`` (the ``helper_check`` setting, as bpftrace's): after a helper call,
        a ``helper_error`` record (the return code in R0, the place in the program) when it
        failed (R0 < 0, level 1; a memory ``read``: level 2), or for a map lookup that found
        nothing (``miss``: R0 == 0, level 2). R0 and R7 (a record being filled around this
        read) are kept."""
        level = int(self.program.setting("helper_check", 0) or 0)
        if level < (2 if miss or read else 1):
            return
        a = self.a
        ok = self.label("hok")
        if miss:
            a.jne(I.R0, 0, ok)
        else:
            a.jsge(I.R0, 0, ok)
        mark = self.sp
        save = self.alloc(16)
        a.stx(I.DW, I.FP, save, I.R0)
        a.stx(I.DW, I.FP, save + 8, I.R7)  # the prologue zeroes R7 when helper_check is set
        action = AsyncAction("helper_error", self.pname, args=[(0, Slot("int", 8, True))], size=8,
                             extra={"helper": helper}, span=span)
        skip = self.label("nohe")
        self.reserve(action, skip)
        a.ldx(I.DW, I.R1, I.FP, save)
        a.stx(I.DW, I.R7, HDR_SIZE, I.R1)
        self.submit()
        a.label(skip)
        a.ldx(I.DW, I.R0, I.FP, save)
        a.ldx(I.DW, I.R7, I.FP, save + 8)
        self.release(mark)
        a.label(ok)

    # -- actions user space performs
    def printf(self, act: ir.Printf) -> None:
        self.async_record(AsyncAction("printf", self.pname, act.fmt, span=act.span), act.args)

    def map_record(self, act: ir.MapOp) -> None:
        """``print(@m[, top[, div]])``, ``clear(@m)``, ``zero(@m)``: done by user space, in order."""
        extra = {}
        if act.op == "print":
            vals = [int(x.value) if isinstance(x, ir.Const) and isinstance(x.value, int) else 0
                    for x in act.args]
            extra = {"top": vals[0] if vals else 0, "div": vals[1] if len(vals) > 1 else 1}
        self.async_record(AsyncAction(act.op, self.pname, map=act.map, extra=extra, span=act.span), [])

    def print_value(self, act: ir.PrintValue) -> None:
        self.async_record(AsyncAction("value", self.pname, span=act.span), [act.value])

    def emit(self, act: ir.Emit) -> None:
        """A probe line's fields, shown as an Event."""
        if act.stack or act.ustack:
            raise self.err("stacks on probe lines are shown by the ftrace backend (-s)", act)
        fields = [self.emit_value(f) for f in act.fields]
        self.async_record(AsyncAction("emit", self.pname, extra={
            "names": [f.name for f in act.fields], "fmts": [f.fmt for f in act.fields]}, span=act.span),
            fields)

    def emit_value(self, f: ir.EmitField) -> ir.Expr:
        """A probe-line field: a ``char *`` shown as a string is read as one (user or kernel)."""
        e = f.expr
        t = e.type
        if f.fmt in ("str", "ustr") and (isinstance(t, PtrTy) or (isinstance(t, IntTy) and t.size == 8)):
            c = ir.Call("str", [e]).at(e.span)
            # room for the longest literal the filter compares this field with (else it
            # would print truncated while the filter, which reads further, matched)
            # (probe lines set no strlen: 256 bytes, as most paths are shorter; ftrace reads 4096)
            size = max(int(self.program.setting("strlen", 256) or 256), self._literal_len(f.name))
            c.type = StrTy(min(size, 256))
            if f.fmt == "ustr" and not (isinstance(t, PtrTy) and t.space == "user"):
                e.type = PtrTy(t.target if isinstance(t, PtrTy) else IntTy(1, True, "char", is_char=True), "user")
            return c
        return e

    def _literal_len(self, name: str) -> int:
        best = 0
        if self.probe.filter is not None:
            for n in self.probe.filter.walk():
                if isinstance(n, ir.Binary) and n.op in ("==", "!="):
                    for x, c in ((n.left, n.right), (n.right, n.left)):
                        if isinstance(x, ir.Field) and x.name == name and isinstance(c, ir.Const) and \
                                isinstance(c.value, str):
                            best = max(best, len(ir.text_bytes(c.value)) + 1)
        return best

    def call_record(self, e: ir.Call, act: ir.Action) -> None:
        """``time(fmt)``, ``cat(fmt, ...)``, ``system(fmt, ...)``: done by user space."""
        n = e.name
        if n == "time":
            fmt = str(e.args[0].value) if e.args and isinstance(e.args[0], ir.Const) else "%H:%M:%S\n"
            self.async_record(AsyncAction("time", self.pname, fmt, span=act.span), [])
        else:
            fmt = str(e.args[0].value) if e.args and isinstance(e.args[0], ir.Const) else ""
            self.async_record(AsyncAction(n, self.pname, fmt, span=act.span), list(e.args[1:]))

    def exit_now(self, act: ir.Action) -> None:
        """``exit()``: tell user space, end this run of the probe.

        As in bpftrace 0.17, the other probes go on (counting, recording) until user space
        has read the record and detached them; what it reads after this record is not
        shown (bpf/runtime.py), END's excepted."""
        self.async_record(AsyncAction("exit", self.pname, span=act.span), [])
        self.a.ja("exit")

    def join(self, e: ir.Call, act: ir.Action) -> None:
        """``join(argv[, sep])``: up to 16 user strings of 64 bytes from an array of pointers."""
        a = self.a
        n, size = 16, 64
        sep = str(e.args[1].value) if len(e.args) > 1 and isinstance(e.args[1], ir.Const) else " "
        slots = [(i * size, Slot("str", size)) for i in range(n)]
        action = AsyncAction("join", self.pname, "", slots, extra={"sep": sep}, size=n * size, span=act.span)
        mark = self.sp
        base = self.alloc(8)
        self.scalar(e.args[0])
        a.stx(I.DW, I.FP, base, I.R0)
        skip = self.label("nojoin")
        self.reserve(action, skip)
        tmp = self.alloc(8)
        for i in range(n):
            a.st(I.B, I.R7, HDR_SIZE + i * size, 0)
        for i in range(n):
            # p = argv[i] (a user pointer); stop at the first NULL
            a.mov64(I.R1, Reg(I.FP))
            a.add64(I.R1, tmp)
            a.mov64(I.R2, 8)
            a.ldx(I.DW, I.R3, I.FP, base)
            a.add64(I.R3, i * 8)
            a.call(I.Helper.probe_read_user)
            a.ldx(I.DW, I.R3, I.FP, tmp)
            a.jeq(I.R3, 0, f"{skip}_done")
            a.mov64(I.R1, Reg(I.R7))
            a.add64(I.R1, HDR_SIZE + i * size)
            a.mov64(I.R2, size)
            a.call(I.Helper.probe_read_user_str)
        a.label(f"{skip}_done")
        self.submit()
        a.label(skip)
        self.release(mark)
