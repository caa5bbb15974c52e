"""What the runtime relies on in every program (backends/bpf/runtime.py creates the maps
named here and relocates them, and the values marked with ``value_ref``, at load):

- the prologue: R6 = the context; the loading process's own tasks skipped
  (``self_pid``, patched at load), and with ``-p`` every other process's (not in an
  iterator's program, which runs in this process's read(2)); then the stop
  flag: ``state[0]`` != 0 once user space asked the programs to stop
  (ProgramSession.stop_producing: a signal, the end, or the record of ``exit()`` read),
  after which no probe records or counts anything more;
- the counters user space reads at the end: ``lost[slot]`` (why records or map updates
  were lost: compiled.LOST_*) and ``sent[cpu]`` (records submitted, so a stop can count
  the ones never read: ProgramSession.count_unread);
- the epilogue: the ``exit`` label (R0 = 0) every path ends at, and the ``lost_map``
  path a failed map update jumps to.
"""

from __future__ import annotations

from ....lang import ir
from ....lang.types import PtrTy
from .. import insn as I
from ..asm import Program, Reg, ret0_exit
from ..compiled import LOST_MAP_FULL
from .frame import Frame

__all__ = ["Prologue"]


class Prologue(Frame):
    """The parts every program shares with the session that loads it."""

    def prologue(self) -> None:
        """R6 = ctx; the pid filters and the stop flag check (not in BEGIN/END programs,
        which this process runs itself)."""
        a = self.a
        a.mov64(I.R6, Reg(I.R1))
        if self.program.setting("helper_check", 0):
            a.mov64(I.R7, 0)  # -k: helper-error records save R7 (records.check_helper)
        host = self.ap.kind in ("begin", "end")
        # an interval's tick is not an event of the task it interrupts: skipping it when that
        # task is this process would drop the tick (a busy reader never saw interval's exit())
        self_skip = self.self_pid is not None and self.ap.kind != "interval"
        pid_only = self.pid is not None
        if self.ap.kind == "iter":
            # an iterator's program runs in this process's read(2), once per object: neither
            # this process's tasks nor -p's filter say anything about the objects
            self_skip = pid_only = False
        if not host and (self_skip or pid_only):
            a.call(I.Helper.get_current_pid_tgid)
            a.rsh64(I.R0, 32)
            if self_skip:  # the loading process's pid, patched at load
                a.jeq(I.R0, self.self_pid, "exit").value_ref("self_pid")
            if pid_only:
                a.jne(I.R0, self.pid, "exit")
        if not host:
            # state[0] != 0: user space asked the programs to stop (ProgramSession.stop_producing:
            # a signal, --duration, --count, exit()'s record read). From then on no
            # probe records or counts anything more, while the reader catches up (the
            # verifier inlines this ARRAY lookup: a few instructions per event)
            off = self.alloc(8)
            a.st(I.DW, I.FP, off, 0)
            self.lookup("state", off)
            a.jeq(I.R0, 0, "exit")
            a.ldx(I.DW, I.R1, I.R0, 0)
            a.jne(I.R1, 0, "exit")
            self.release(0)
        if self.ap.kind == "iter":
            self.iter_pointers()

    def iter_pointers(self) -> None:
        """An iterator's context pointers the probe reads (``ctx->task``): each loaded once
        here, checked and kept on the stack (``self.iter_slots``: context slot -> stack
        offset), where expressions read it (ExprGen.arg). The kernel passes them as
        ``PTR_TO_BTF_ID_OR_NULL`` (``task`` is NULL in the call that ends the iteration):
        the verifier wants a NULL check before any use, and one in the middle of a record
        would leave it reserved; a NULL one returns at once, as bpftrace's check does."""
        a = self.a
        slots = sorted({e.index for e in self.probe.exprs()
                        if isinstance(e, ir.Arg) and isinstance(e.type, PtrTy) and e.index is not None})
        for i in slots:
            off = self.alloc(8)
            a.ldx(I.DW, I.R0, I.R6, 8 * i)
            a.jeq(I.R0, 0, "exit")
            a.stx(I.DW, I.FP, off, I.R0)  # spilled whole: the verifier keeps its type, non-NULL
            self.iter_slots[i] = off

    def epilogue(self) -> Program:
        """The ``exit`` label every path ends at (R0 = 0), the ``lost_map`` path when some
        map update jumps to it; the program assembled."""
        a = self.a
        a.label("exit")
        ret0_exit(a)
        if a.references("lost_map"):
            a.label("lost_map")
            self.count_lost_inline(LOST_MAP_FULL)
            a.ja("exit")
        return a.assemble()

    def count_lost_inline(self, slot: int) -> None:
        """``lost[slot] += 1`` (an ARRAY shared by every CPU: atomic)."""
        a = self.a
        mark = self.sp
        off = self.alloc(8)
        a.st(I.DW, I.FP, off, slot)
        self.lookup("lost", off)
        nope = self.label("nolost")
        a.jeq(I.R0, 0, nope)
        a.mov64(I.R1, 1)
        a.atomic_add(I.DW, I.R0, 0, I.R1)
        a.label(nope)
        self.release(mark)

    def count_sent_inline(self) -> None:
        """``sent[cpu] += 1`` (a PERCPU_ARRAY): records submitted, so that a stop can count
        the ones never read without walking the buffers (ProgramSession.count_unread).
        Atomic although per-CPU: a program in NMI (profile) may nest on the same CPU."""
        a = self.a
        mark = self.sp
        off = self.alloc(8)
        a.st(I.DW, I.FP, off, 0)
        self.lookup("sent", off)
        nope = self.label("nosent")
        a.jeq(I.R0, 0, nope)
        a.mov64(I.R1, 1)
        a.atomic_add(I.DW, I.R0, 0, I.R1)
        a.label(nope)
        self.release(mark)
