"""The state of one BPF program while it is generated, and the tools every part uses.

Register use (see asm.py): R6 keeps the context, R7 the ring-buffer record being
filled, R8 a loop counter; every expression leaves a scalar in R0, and partial results
live in stack slots (the verifier tracks 8-byte spills precisely), so helper calls
(which clobber R0-R5) never destroy them. Values that are not scalars (strings, tuples,
ntop addresses, stack ids with a pid) are written to memory: a stack slot, or the
record itself (base R7) so large printf arguments never cross the 512-byte stack.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

from ....errors import Span
from ....lang import ir
from .. import insn as I
from ..asm import Asm, Reg
from ..codegen import Unsupported
from ..compiled import CompiledProgram
from ..layout import Slot, align8

__all__ = ["Frame", "STACK_LIMIT"]

STACK_LIMIT = 512


class Frame:
    """One attach point's program being generated: ``a`` the assembler, ``sp`` the stack
    bytes in use (slots at negative offsets from R10), ``vars`` the ``$variables`` (stack
    offset, layout), ``loops`` the (continue, break) labels of the loops being generated.

    What :func:`~undertow.backends.bpf.compiler.compile_program` was given (``arch``,
    ``self_pid``, ``pid``, the IR ``program``) comes from ``out.options``.
    """

    def __init__(self, out: CompiledProgram, probe: ir.Probe, ap: ir.AttachPoint) -> None:
        opts = out.options
        self.out, self.probe, self.ap, self.arch = out, probe, ap, opts["arch"]
        self.self_pid, self.pid, self.program = opts.get("self_pid"), opts.get("pid"), opts["program"]
        self.a = Asm()
        self.sp = 0
        self.vars: Dict[str, Tuple[int, Slot]] = {}
        self.loops: List[Tuple[str, str]] = []
        self.n = 0
        self.group = ap.target.partition(":")[0] if ap.kind == "tracepoint" else ""
        self.pname = probe.name or ap.event_name()  # as the ftrace backend names the events
        self._rec_size = 0  # the record being filled (records.py)
        #: an iterator's context pointers, checked and kept on the stack: slot -> offset (prologue.py)
        self.iter_slots: Dict[int, int] = {}

    # -- labels, stack slots, errors
    def label(self, what: str) -> str:
        """A label name not used before in this program (``what`` + a number)."""
        self.n += 1
        return f"{what}{self.n}"

    def alloc(self, size: int, span: Optional[Span] = None) -> int:
        """A stack slot of ``size`` bytes (8-aligned): its offset from R10. Past the
        512-byte stack the probe is refused (``span``: what to point at)."""
        self.sp += align8(max(size, 1))
        if self.sp > STACK_LIMIT:
            raise Unsupported(f"this probe needs more than {STACK_LIMIT} bytes of BPF stack", span or self.probe.span)
        return -self.sp

    def release(self, mark: int) -> None:
        """Free the slots allocated since ``mark`` (an earlier ``self.sp``)."""
        self.sp = mark

    def err(self, msg: str, e: Any) -> Unsupported:
        """The refusal of node ``e`` (its span, else the probe's)."""
        return Unsupported(msg, getattr(e, "span", None) or self.probe.span)

    # -- memory
    def lookup(self, mref: Any, key_off: int) -> None:
        """R0 = map_lookup_elem(map, fp + key_off) (NULL when absent: callers check)."""
        a = self.a
        a.ld_map_fd(I.R1, mref)
        a.mov64(I.R2, Reg(I.FP))
        a.add64(I.R2, key_off)
        a.call(I.Helper.map_lookup_elem)

    def zero(self, base: int, off: int, size: int) -> None:
        """``[base + off, + size)`` = 0 (8, 4, then 1-byte stores, aligned)."""
        pos, end = off, off + size
        while pos < end:
            if end - pos >= 8 and pos % 8 == 0:
                self.a.st(I.DW, base, pos, 0)
                pos += 8
            elif end - pos >= 4 and pos % 4 == 0:
                self.a.st(I.W, base, pos, 0)
                pos += 4
            else:
                self.a.st(I.B, base, pos, 0)
                pos += 1

    def copy(self, sbase: int, soff: int, dbase: int, doff: int, size: int) -> None:
        """``size`` bytes from ``[sbase + soff]`` to ``[dbase + doff]`` through R1."""
        a = self.a
        pos = 0
        while pos < size:
            if size - pos >= 8:
                a.ldx(I.DW, I.R1, sbase, soff + pos)
                a.stx(I.DW, dbase, doff + pos, I.R1)
                pos += 8
            else:
                a.ldx(I.B, I.R1, sbase, soff + pos)
                a.stx(I.B, dbase, doff + pos, I.R1)
                pos += 1

    def dst_ptr(self, reg: int, base: int, off: int) -> None:
        """``reg`` = ``base + off`` (a helper's destination argument)."""
        self.a.mov64(reg, Reg(base))
        self.a.add64(reg, off)

    def extend(self, size: int, signed: bool) -> None:
        """R0's low ``size`` bytes widened to 64 bits (sign- or zero-extended)."""
        sh = 64 - 8 * size
        self.a.lsh64(I.R0, sh)
        self.a.alu("arsh" if signed else "rsh", I.R0, sh)
