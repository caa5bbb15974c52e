"""bpftrace's BPF iterator probes (``iter:task``, ``iter:task_file``), resolved.

An iterator probe is not an event: its program runs once per kernel object when undertow
reads the iterator (``BPF_ITER_CREATE``, then read(2) to the end: the kernel's
Documentation/bpf/bpf_iterators.rst), then the run ends, as in bpftrace 0.17. Its
context is ``struct bpf_iter__task`` (``meta``, ``task``) or ``struct bpf_iter__task_file``
(``meta``, ``task``, ``fd``, ``file``) from the kernel's BTF: ``ctx->task`` is read as the
program's context argument of that slot (each member takes 8 bytes, the
``bpf_iter_task``/``bpf_iter_task_file`` FUNC's parameters), typed from the struct.

The kernel calls the program one more time at the end with ``task`` NULL; like bpftrace's,
the program returns then: the code generator loads and checks every pointer of ``ctx`` the
probe reads when the program starts (the verifier requires the check:
backends/bpf/gen/prologue.py).

Refused: several attach points on an iterator's block (bpftrace 0.17's check and words);
and where bpftrace would run only the first iterator it attached (an assert in its
``run_iter``), several iterator probes or an iterator with probes other than BEGIN and END.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Callable, Optional, Tuple

from ..errors import Span
from . import ir
from .types import PtrTy, RecordTy

if TYPE_CHECKING:  # pragma: no cover
    from .typeinfo import TypeInfo

__all__ = ["context_type", "check_iter_probe", "iter_member", "ITER_FEATURES"]

#: iter:NAME -> the feature probe (kernel/featprobes/bpf.py) that says the kernel has it.
ITER_FEATURES = {"task": "bpf_iter_task", "task_file": "bpf_iter_task_file"}

#: probe kinds an iterator's program may have besides it
_ALONGSIDE = ("begin", "end")


def check_iter_probe(program: ir.Program, probe: ir.Probe,
                     name: "Callable[[ir.AttachPoint], str]") -> "Optional[Tuple[str, Optional[Span], str]]":
    """Why ``probe`` (a block with an ``iter:`` attach point) cannot run in ``program``:
    ``(message, span, hint)``, or None when it can; ``name`` names an attach point."""
    aps = probe.attach
    it = next(ap for ap in aps if ap.kind == "iter")
    if len(aps) > 1:
        # bpftrace 0.17's words
        return ("Only single iter attach point is allowed.", it.span,
                "give the iterator a block of its own")
    for p in program.probes:
        if p is probe:
            continue
        for ap in p.attach:
            if ap.kind == "iter":
                return ("only one iter probe can run: the program ends once its iterator has been "
                        "read to the end", ap.span, "run the other iterator in a program of its own")
            if ap.kind not in _ALONGSIDE:
                return (f"an iter probe runs alone: {name(ap)} cannot run with it", ap.span,
                        "BEGIN and END can go with an iter probe")
    return None


def context_type(types: "TypeInfo", ap: ir.AttachPoint) -> PtrTy:
    """``struct bpf_iter__NAME *`` of ``iter:NAME``, the type of ``ctx``, from the kernel's
    types (LookupError when BTF does not describe the struct)."""
    t = types.parse_type(f"struct bpf_iter__{ap.target}")
    if not isinstance(t, RecordTy):
        raise LookupError(f"struct bpf_iter__{ap.target} is not a struct")
    rec = types.complete(t)
    if not types.member_names(rec):
        raise LookupError(f"struct bpf_iter__{ap.target} has no members in BTF")
    return PtrTy(rec, "kernel")


def iter_member(types: "TypeInfo", ctx: PtrTy, e: ir.Member) -> "Optional[ir.Arg]":
    """``ctx->NAME`` of an iterator as its context argument (slot = offset / 8), typed
    from the context struct; None when it has no such 8-byte slot (the caller resolves
    ``e`` as any other member, and reports a member that is not there)."""
    rec = ctx.target
    assert isinstance(rec, RecordTy)
    mi = types.member(rec, e.name)
    if mi is None or mi.offset % 8 or mi.bit_size:
        return None
    a = ir.Arg(mi.offset // 8, e.name).at(e.span)
    a.type = mi.type
    return a
