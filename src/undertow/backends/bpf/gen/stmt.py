"""Statements and control flow: ``$variables`` (a stack slot each, sized by the largest
value assigned, zeroed at the start), ``if``/``else``, ``while`` (at most
:data:`LOOP_LIMIT` iterations: the verifier must see the loop end), ``unroll(n)``,
``break``/``continue``/``return``, and calls made for their effect.

Uses from the other parts: :meth:`~.expr.ExprGen.cond`, :meth:`~.expr.ExprGen.scalar`,
:meth:`~.memory.MemoryGen.store`, the map statements (maps.py) and the records
(records.py).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Tuple

from ....lang import ir
from ....lang.watchpoints import WATCH_SETUP_CALL
from .. import insn as I
from ..compiled import AsyncAction
from ..asm import Reg
from ..layout import Slot, layout
from .prologue import Prologue

__all__ = ["StmtGen", "LOOP_LIMIT"]

LOOP_LIMIT = 128


class StmtGen(Prologue):
    """:meth:`block` of statements; :meth:`declare_vars` before the first."""

    # -- variables
    def declare_vars(self, actions: List[ir.Action]) -> None:
        """A zeroed stack slot for each ``$variable`` assigned in ``actions``."""
        self._alloc_vars(actions)
        for off, slot in self.vars.values():
            self.zero(I.FP, off, slot.size)

    def _alloc_vars(self, actions: List[ir.Action]) -> None:
        """A slot per variable, as large as the largest value assigned to it anywhere (a
        string variable holds ``""`` first and ``"hello"`` later)."""
        largest: Dict[str, Tuple[Slot, ir.Action]] = {}
        self._largest(actions, largest)
        for name, (s, act) in largest.items():
            self.vars[name] = (self.alloc(s.size, act.span), s)

    def _largest(self, actions: List[ir.Action], out: Dict[str, Tuple[Slot, ir.Action]]) -> None:
        for act in actions:
            if isinstance(act, ir.Assign):
                s = layout(act.value.type)
                old = out.get(act.var)
                if old is None or s.size > old[0].size:
                    if old is not None and (s.kind != old[0].kind or s.kind != "str"):
                        raise self.err(f"{act.var} is assigned values of different sizes", act)
                    out[act.var] = (s, act)
            elif isinstance(act, ir.If):
                self._largest(act.then, out)
                self._largest(act.other, out)
            elif isinstance(act, ir.While):
                self._largest(act.body, out)

    # -- statements
    def block(self, actions: List[ir.Action]) -> None:
        """Each statement, its temporaries freed after it; instructions tagged with it."""
        for act in actions:
            mark = self.sp
            self.a.origin = act
            self.stmt(act)
            self.a.origin = None
            self.release(mark)

    def stmt(self, act: ir.Action) -> None:  # noqa: C901 - one dispatch
        a = self.a
        if isinstance(act, ir.Assign):
            off, slot = self.vars[act.var]
            self.store(act.value, I.FP, off, slot)
        elif isinstance(act, ir.MapUpdate):
            self.map_update(act)
        elif isinstance(act, ir.Printf):
            self.printf(act)
        elif isinstance(act, ir.If):
            yes, no, end = self.label("then"), self.label("else"), self.label("fi")
            self.cond(act.cond, yes, no)
            a.label(yes)
            self.block(act.then)
            a.ja(end)
            a.label(no)
            self.block(act.other)
            a.label(end)
        elif isinstance(act, ir.While):
            self.loop(act)
        elif isinstance(act, ir.MapOp):
            if act.op == "delete":
                self.map_delete(act)
            else:
                self.map_record(act)
        elif isinstance(act, ir.PrintValue):
            self.print_value(act)
        elif isinstance(act, ir.Exit):
            self.exit_now(act)
        elif isinstance(act, ir.Return):
            a.ja("exit")
        elif isinstance(act, ir.Break):
            if not self.loops:
                raise self.err("break outside a loop", act)
            a.ja(self.loops[-1][1])
        elif isinstance(act, ir.Continue):
            if not self.loops:
                raise self.err("continue outside a loop", act)
            a.ja(self.loops[-1][0])
        elif isinstance(act, ir.ExprStmt):
            self.expr_stmt(act)
        elif isinstance(act, ir.Emit):
            self.emit(act)
        else:
            raise self.err(f"{type(act).__name__} is not supported by the BPF backend yet", act)

    def expr_stmt(self, act: ir.ExprStmt) -> None:
        e = act.expr
        if not isinstance(e, ir.Call):
            mark = self.sp
            self.scalar(e)
            self.release(mark)
            return
        n = e.name
        if n in ("time", "cat", "system"):
            self.call_record(e, act)
        elif n == "join":
            self.join(e, act)
        elif n == "signal":
            if self.ap.kind in ("begin", "end"):
                raise self.err("signal() needs a traced task (not BEGIN/END)", e)
            self.scalar(e.args[0])
            self.a.mov64(I.R1, Reg(I.R0))
            self.a.call(I.Helper.send_signal)
        elif n == "exit":
            self.exit_now(act)
        elif n == "debugf":
            self.debugf(e)
        elif n == "delete_slice":
            # SystemTap's delete a[k, *] (lang/stap): the given keys to user space, which walks
            # the map and deletes the elements that match (runtime.Session.delete_matching)
            self.async_record(AsyncAction("delete_slice", self.pname, map=str(e.args[0].value),
                                          extra={"mask": str(e.args[1].value)}, span=act.span), e.args[2:])
        elif n == "unwatch":
            self.async_record(AsyncAction("unwatch", self.pname, span=act.span), [e.args[0]])
        elif n == WATCH_SETUP_CALL:
            # a function watchpoint's set-up uprobe: (its number, the address) to user space
            wid = int(e.args[0].value) if isinstance(e.args[0], ir.Const) else 0
            self.async_record(AsyncAction("watch", self.pname, extra={"id": wid}, span=act.span), [e.args[1]])
        else:
            raise self.err(f"{n}() is not supported by the BPF backend yet", e)

    def debugf(self, e: ir.Call) -> None:
        """``debugf(fmt, ...)``: bpf_trace_printk(fmt, size, args...) as bpftrace 0.17 calls it
        (at most 3 arguments, checked by the resolver): the format (with its NUL) and each
        string on the stack, integers as 64-bit values; the line goes to the kernel's trace
        buffer (tracefs ``trace``/``trace_pipe``), not to this program's output."""
        a = self.a
        self.out.uses_trace_printk = True
        mark = self.sp
        fmt = ir.Const(str(e.args[0].value))
        size = len(ir.text_bytes(str(e.args[0].value))) + 1
        fmt_off = self.alloc(size, e.span)
        self.mem_into(fmt, I.FP, fmt_off, Slot("str", size))
        slots = []
        for arg in e.args[1:4]:
            slot = layout(arg.type)
            off = self.alloc(slot.size, e.span)
            self.store(arg, I.FP, off, slot)
            slots.append((off, slot.scalar))
        a.mov64(I.R1, Reg(I.FP))
        a.add64(I.R1, fmt_off)
        a.mov64(I.R2, size)
        for reg, (off, scalar) in zip((I.R3, I.R4, I.R5), slots):
            if scalar:
                a.ldx(I.DW, reg, I.FP, off)
            else:  # a string: its address
                a.mov64(reg, Reg(I.FP))
                a.add64(reg, off)
        a.call(I.Helper.trace_printk)
        self.release(mark)

    def loop(self, act: ir.While) -> None:
        """``while (cond)`` with a counter (at most LOOP_LIMIT runs), or ``unroll(n)`` copies."""
        a = self.a
        if act.cond is None:  # unroll(n)
            done = self.label("udone")
            for _ in range(max(0, act.bound)):
                nxt = self.label("unext")
                self.loops.append((nxt, done))
                self.block(act.body)
                self.loops.pop()
                a.label(nxt)
            a.label(done)
            return
        top, body, end, step = self.label("while"), self.label("wbody"), self.label("wend"), self.label("wnext")
        counter = self.alloc(8, act.span)
        a.st(I.DW, I.FP, counter, 0)
        a.label(top)
        a.ldx(I.DW, I.R1, I.FP, counter)
        a.jge(I.R1, LOOP_LIMIT, end)
        a.add64(I.R1, 1)
        a.stx(I.DW, I.FP, counter, I.R1)
        self.cond(act.cond, body, end)
        a.label(body)
        self.loops.append((step, end))
        self.block(act.body)
        self.loops.pop()
        a.label(step)
        a.ja(top)
        a.label(end)
