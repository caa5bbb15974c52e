"""One attach point's program: every part of the generator together, in order."""

from __future__ import annotations

from ..asm import Program
from .expr import ExprGen
from .maps import MapGen
from .memory import MemoryGen
from .records import RecordGen
from .stmt import StmtGen

__all__ = ["ProbeGen"]


class ProbeGen(StmtGen, RecordGen, MapGen, MemoryGen, ExprGen):
    """Generates one attach point's program: ``ProbeGen(out, probe, ap).generate()``
    (``out``: the :class:`~undertow.backends.bpf.compiled.CompiledProgram` being built,
    whose maps, actions and options the program uses)."""

    def generate(self) -> Program:
        """Prologue (pid filters, stop flag), variables, the filter, the actions, epilogue."""
        self.prologue()
        self.declare_vars(self.probe.actions)
        if self.probe.filter is not None:
            self.cond(self.probe.filter, "body", "exit")
            self.a.label("body")
        self.block(self.probe.actions)
        return self.epilogue()
