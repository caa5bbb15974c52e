"""``undertow rootkit``: ask the kernel the same question several ways and report every
disagreement (cross-view detection), read-only, with no kernel module.

One module per family of checks, each with ``check(ctx) -> None`` adding to a
:class:`~undertow.tools.rootkit.report.Report`:

- :mod:`.processes`: /proc through libc's readdir vs getdents64 vs the BPF task iterator vs
  kill(2) on every pid; mounts over /proc/PID;
- :mod:`.sockets`: /proc/net tables vs sock_diag vs the sockets the BPF task_file iterator
  finds in every process; packet and raw sockets with a classic BPF filter; promiscuous
  interfaces;
- :mod:`.modules`: /proc/modules vs /sys/module vs kallsyms; taint flags;
- :mod:`.hooks`: kprobe/uprobe definitions, tracefs instances, ftrace's hooked functions (now:
  enabled_functions; since boot: touched_functions); the syscall table and the /proc/net
  seq_operations read through /proc/kcore (:mod:`.kernelmem`);
- :mod:`.bpfobjs`: every BPF program, link and pinned object; programs calling helpers that
  write user memory, change return values or send signals;
- :mod:`.userspace`: ld.so.preload in every mount namespace, LD_PRELOAD/LD_AUDIT, deleted,
  memfd and /dev/shm executables; listening processes' binaries vs their Debian package
  (:mod:`.packages`).

docs/tools/rootkit.md says what each catches and what it cannot see.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import List, Optional, Sequence

from .report import Context, Finding, Note, NotChecked, Report

__all__ = ["CHECKS", "run_checks", "Report", "Finding", "Note", "NotChecked", "Context"]

#: the families, in the order they run and print
CHECKS = ("processes", "sockets", "modules", "hooks", "bpf", "userspace")

_MODULES = {"processes": "processes", "sockets": "sockets", "modules": "modules", "hooks": "hooks",
            "bpf": "bpfobjs", "userspace": "userspace"}


def run_checks(quick: bool = False, only: Optional[Sequence[str]] = None, proc: str = "/proc",
               debug: bool = False) -> Report:
    """Run every check family (``only``: these) and return what they found. ``quick`` leaves
    out the slow views (kill(2) on every possible pid); ``debug``: a family that fails raises
    (otherwise it is reported as not checked, and the others still run)."""
    import importlib

    from ... import stop

    ctx = Context(quick=quick, proc=proc)
    for name in CHECKS:
        if only and name not in only:
            continue
        stop.check()
        mod = importlib.import_module(f"{__name__}.{_MODULES[name]}")
        try:
            mod.check(ctx)
        except stop.Interrupted:
            raise
        except Exception as e:  # one family failing must not hide the others' findings
            if debug:
                raise
            ctx.report.not_checked(name, "the whole family", f"failed: {type(e).__name__}: {e}")
    return ctx.report
