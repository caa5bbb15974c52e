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
    from typing import Any, Dict, List

from ....lang import ir
from .. import insn as I
from ..asm import Reg
from ..layout import layout
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
        """One slot per variable, sized for its largest value: a string variable may be
        assigned strings of several sizes (``$a = ""; ... $a = "hello"``); its slot holds
        the longest, and a shorter one is stored NUL-padded."""
        slots: Dict[str, Any] = {}
        first: Dict[str, ir.Assign] = {}
        self._var_layouts(actions, slots, first)
        for name, s in slots.items():
            if name not in self.vars:
                self.vars[name] = (self.alloc(s.size, first[name].span), s)

    def _var_layouts(self, actions: List[ir.Action], slots: Dict[str, Any], first: Dict[str, ir.Assign]) -> None:
        for act in actions:
            if isinstance(act, ir.Assign):
                s = layout(act.value.type)
                old = slots.get(act.var)
                if old is None:
                    slots[act.var], first[act.var] = s, act
                elif s.size > old.size:
                    if s.kind != "str" or old.kind != "str":
                        raise self.err(f"{act.var} is assigned values of different sizes; assign the largest first",
                                       act)
                    slots[act.var] = s
            elif isinstance(act, ir.If):
                self._var_layouts(act.then, slots, first)
                self._var_layouts(act.other, slots, first)
            elif isinstance(act, ir.While):
                self._var_layouts(act.body, slots, first)

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
        else:
            raise self.err(f"{n}() is not supported by the BPF backend yet", e)

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
