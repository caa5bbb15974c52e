"""bpftrace's hardware watchpoints (``watchpoint:``/``asyncwatchpoint:``), resolved.

``watchpoint:ADDRESS:LEN:MODE`` watches one address: of the ``-p``/``-c`` process when
there is one, else on every CPU (a kernel address). ``watchpoint:FUNC+argN:LEN:MODE``
watches the address the process passes as argument N of FUNC, as bpftrace 0.17 does it:
a *set-up* uprobe on FUNC of the process's binary stops the process (``SIGSTOP``; not for
``asyncwatchpoint``) and sends the argument with the watchpoint's number; user space then
opens the breakpoint perf event on that address, attaches the watchpoint's program and
lets the process go on (``SIGCONT``). This module builds that set-up probe (IR, resolved
like any other) and says which binary and process a watchpoint is about.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Optional, Tuple

from . import ir

__all__ = ["watch_target", "setup_probe", "watch_name", "WATCH_SETUP_CALL"]

#: The set-up probe's record (an internal call no program text can name: not an identifier).
WATCH_SETUP_CALL = "watch-setup"


def watch_target(pid: Optional[int], cpid: Optional[int], cmd: Optional[str]) -> Optional[Tuple[int, str]]:
    """``(pid, binary)`` a function watchpoint is about: ``-c``'s command (its first word,
    looked up in ``PATH`` when it has no ``/``, as bpftrace names it) or ``-p``'s process
    (``/proc/PID/exe``); None without either."""
    if cpid and cmd:
        import shutil  # imported on first use (start-up)

        return int(cpid), cmd if "/" in cmd else (shutil.which(cmd) or cmd)
    if pid:
        return int(pid), f"/proc/{int(pid)}/exe"
    return None


def watch_name(ap: ir.AttachPoint) -> str:
    """The name bpftrace 0.17 gives a watchpoint (``probe``): ``watchpoint:ADDR:LEN:MODE``
    (decimal), ``watchpoint:BINARY:FUNC[:N]:LEN:MODE`` (N only when not arg0)."""
    w = ap.watch or {}
    head = "asyncwatchpoint" if w.get("async") else "watchpoint"
    if ap.target:
        n = f"{head}:{ap.obj}:{ap.target}"
        if w.get("arg"):
            n += f":{w['arg']}"
    else:
        n = f"{head}:{w.get('addr', 0)}"
    return f"{n}:{w.get('len', 0)}:{w.get('mode', '')}"


def setup_probe(probe: ir.Probe, ap: ir.AttachPoint, with_cpid: bool) -> ir.Probe:
    """The set-up uprobe of function watchpoint ``ap`` (resolved: ``obj``, ``pid``, ``watch``
    with its ``id``): on ``ap.target`` of ``ap.obj``, in that process only (``with_cpid``:
    a filter ``pid == cpid``; with ``-p`` the program is already the process's), it stops the
    process unless the watchpoint is async, then records (id, argN) for user space."""
    import signal  # imported on first use (start-up)

    w = ap.watch or {}
    up = ir.AttachPoint("uprobe", target=ap.target, obj=ap.obj, span=ap.span)
    acts: list = []
    if not w.get("async"):
        acts.append(ir.ExprStmt(ir.Call("signal", [ir.Const(int(signal.SIGSTOP)).at(ap.span)]).at(ap.span)).at(ap.span))
    wid = ir.Const(int(w.get("id", 0))).at(ap.span)
    arg = ir.Arg(int(w.get("arg") or 0)).at(ap.span)
    acts.append(ir.ExprStmt(ir.Call(WATCH_SETUP_CALL, [wid, arg]).at(ap.span)).at(ap.span))
    filt = None
    if with_cpid:
        filt = ir.Binary("==", ir.Builtin("pid").at(ap.span), ir.Builtin("cpid").at(ap.span)).at(ap.span)
    name = f"uprobe:{ap.obj}:{ap.target}"
    return ir.Probe([up], filt, acts, name=name, span=probe.span, source=probe.source, origin=probe.origin)
