"""Many ``syscalls:sys_enter_*``/``sys_exit_*`` probes through one attachment.

Every tracepoint attachment costs an RCU grace period when it is detached
(perf_trace_event_unreg -> tracepoint_synchronize_unregister, under event_mutex: ~70 ms
each here, serialized), so ``tracepoint:syscalls:sys_enter_*`` (360 probes) took bpftrace
26.8 s to detach. The syscall events are not tracepoints of their own: ftrace
multiplexes them on ``raw_syscalls:sys_enter``/``sys_exit``, whose records have the same
layout (``long id`` where the syscall event has ``int __syscall_nr``, then the six
argument slots or ``long ret`` at offset 16; see the events' format files). So each
probe's program is loaded unchanged, put in a ``BPF_MAP_TYPE_PROG_ARRAY`` at its syscall
number, and one dispatcher program attached to ``raw_syscalls:<direction>`` tail-calls
it: one attachment, one grace period at detach, whatever the number of probes.

Syscall numbers come from :mod:`undertow.kernel.syscall_table` (64-bit ABI). What the
syscall events skip, the dispatcher skips too: numbers outside the table (x32's
``__X32_SYSCALL_BIT``, -1) and, on x86_64, 32-bit compat syscalls (``TS_COMPAT`` in
``task_struct.thread_info.status``: ``trace_get_syscall_nr`` returns -1 for them,
arch/x86/include/asm/ftrace.h), whose numbers mean other syscalls.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Sequence

from . import insn as I
from .asm import Asm, Reg

#: A direction with fewer syscall probes than this keeps one attachment per probe.
MIN_PROBES = 4
#: x86 ``TS_COMPAT`` (arch/x86/include/asm/thread_info.h)
TS_COMPAT = 0x0002
PREFIXES = {"sys_enter": "syscalls:sys_enter_", "sys_exit": "syscalls:sys_exit_"}


def plan(probes: Sequence[Any], numbers: Dict[str, int], min_probes: int = MIN_PROBES) -> Dict[str, Dict[int, int]]:
    """``{"sys_enter"|"sys_exit": {syscall nr: index in probes}}`` for the probes a
    dispatcher will carry: tracepoint probes on syscall events whose number is known,
    one per number (a second probe on the same event keeps its own attachment), in
    directions with at least ``min_probes`` of them."""
    out: Dict[str, Dict[int, int]] = {}
    for i, cp in enumerate(probes):
        ap = cp.ap
        if ap.kind != "tracepoint":
            continue
        for direction, prefix in PREFIXES.items():
            if ap.target.startswith(prefix):
                nr = numbers.get(ap.target[len(prefix):])
                if nr is not None:
                    out.setdefault(direction, {}).setdefault(nr, i)
    return {d: slots for d, slots in out.items() if len(slots) >= min_probes}


def program(max_nr: int, compat_status_off: Optional[int] = None) -> Asm:
    """The dispatcher: ``tail_call(ctx, progs, id)`` for ``0 <= id <= max_nr``.

    ``compat_status_off``: offset of ``thread_info.status`` in ``task_struct`` (x86_64),
    to skip 32-bit compat syscalls as the syscall events do; ``None`` elsewhere.
    A missing slot makes the tail call fall through: nothing happens.
    """
    a = Asm()
    a.mov64(I.R6, Reg(I.R1))
    a.ldx(I.DW, I.R7, I.R6, 8)                 # long id
    a.jgt(I.R7, max_nr, "out")                 # unsigned: -1 and x32 numbers too
    if compat_status_off is not None:
        a.st(I.W, I.R10, -8, 0)
        a.call(I.Helper.get_current_task)
        a.mov64(I.R3, Reg(I.R0))
        a.add64(I.R3, compat_status_off)
        a.mov64(I.R1, Reg(I.R10))
        a.add64(I.R1, -8)
        a.mov64(I.R2, 4)
        a.call(I.Helper.probe_read_kernel)
        a.ldx(I.W, I.R1, I.R10, -8)
        a.and64(I.R1, TS_COMPAT)
        a.jne(I.R1, 0, "out")
    a.mov64(I.R1, Reg(I.R6))
    a.ld_map_fd(I.R2, "progs")
    a.mov64(I.R3, Reg(I.R7))
    a.call(I.Helper.tail_call)
    a.label("out")
    a.mov64(I.R0, 0)
    a.exit_()
    return a
