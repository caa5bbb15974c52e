"""The general IR -> BPF compiler: one program per attach point.

:func:`compile_program` lays out the program's maps (gen/maps.py) and generates each
attach point's program with :class:`~.gen.probe.ProbeGen`, whose parts (gen/: frame,
prologue, expressions, memory, maps, records, statements) are described in
``gen/__init__.py``. :func:`regenerate` compiles one probe again for another attach
kind: the runtime's fallbacks (fentry -> kprobe, tp_btf -> raw_tracepoint) ask the
backend for it (undertow.backends.bpf.regenerate), so loading a compiled program never
imports the generator.

Maps (``@name``): one BPF hash map each. ``count sum min max avg stats hist lhist`` maps
are per-CPU (no atomics, merged by user space) unless the program reads them in the
kernel; ``hist``/``lhist`` store one counter per (key, bucket) as bpftrace does; plain
``@m[k] = v`` maps store the value's layout. A failed update (map full) is counted in
the ``lost`` array (slot 1) and reported.

Everything the kernel cannot do (printf formatting, print/clear/zero of maps, exit,
time, system, cat) is an *async action*: a ring-buffer record whose header carries the
action's id; user space (runtime.py) performs it in order.

Record header (48 bytes): u64 ts | u32 tgid | u32 tid | char comm[16] | u32 action
| u32 errors | u32 cpu | pad.
"""

from __future__ import annotations

import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, List, Optional

from ...lang import ir
from .compiled import (LOST_MAP_FULL, LOST_READ_FAULT, LOST_RINGBUF, PROG_TYPES,  # noqa: F401 - re-exported
                       AsyncAction, CompiledProbe, CompiledProgram, MapSpec)
from .gen.expr import STR_COMPARE_BYTES  # noqa: F401 - re-exported (tools/filewatch.py)
from .gen.maps import collect_maps
from .gen.probe import ProbeGen
from .gen.records import default_output
from .gen.stmt import LOOP_LIMIT  # noqa: F401 - re-exported

__all__ = ["MapSpec", "AsyncAction", "CompiledProbe", "CompiledProgram", "compile_program", "regenerate",
           "collect_maps", "default_output", "ProbeGen", "PROG_TYPES", "LOST_RINGBUF", "LOST_MAP_FULL",
           "LOST_READ_FAULT", "LOOP_LIMIT", "STR_COMPARE_BYTES"]


def compile_program(program: ir.Program, *, arch: Any, self_pid: Optional[int] = None,
                    pid: Optional[int] = None, output: Optional[str] = None) -> CompiledProgram:
    """Compile a resolved program. Raises :class:`Unsupported` (with a span) for what cannot run.

    ``output``: ``ringbuf`` or ``perfbuf`` (default: :func:`default_output`)."""
    maps = collect_maps(program)
    out = CompiledProgram([], maps, [], start_ns=time.monotonic_ns(),
                          options={"arch": arch, "self_pid": self_pid, "pid": pid, "program": program,
                                   "exit_flag": _uses_exit(program), "output": output or default_output()})
    for probe in program.probes:
        for ap in probe.attach:
            prog = ProbeGen(out, probe, ap).generate()
            out.probes.append(CompiledProbe(len(out.probes), probe.name or ap.describe(), probe, ap,
                                            PROG_TYPES.get(ap.kind, "?"), prog))
    return out


def regenerate(compiled: CompiledProgram, cp: CompiledProbe, kind: str) -> CompiledProbe:
    """``cp`` compiled again for attach ``kind`` (fentry -> kprobe when fentry is refused),
    with what ``compiled`` was compiled with (its ``options``)."""
    import copy as _copy

    ap = _copy.copy(cp.ap)
    ap.kind = kind
    prog = ProbeGen(compiled, cp.probe, ap).generate()
    return CompiledProbe(cp.index, cp.name, cp.probe, ap, PROG_TYPES[kind], prog, note=cp.note)


def _uses_exit(program: ir.Program) -> bool:
    def walk(actions: List[ir.Action]) -> bool:
        for a in actions:
            if isinstance(a, ir.Exit):
                return True
            if isinstance(a, ir.ExprStmt) and isinstance(a.expr, ir.Call) and a.expr.name == "exit":
                return True
            if isinstance(a, ir.If) and (walk(a.then) or walk(a.other)):
                return True
            if isinstance(a, ir.While) and walk(a.body):
                return True
        return False
    return any(walk(p.actions) for p in program.probes)
