"""Hardware watchpoints of a running program (``watchpoint:``, ``asyncwatchpoint:``).

A watchpoint's program (``PERF_EVENT``) runs on a ``PERF_TYPE_BREAKPOINT`` perf event:
``bp_addr``/``bp_len``/``bp_type`` (r w x), on the ``-p``/``-c`` process (every thread's
accesses of that address in it, ``cpu=-1``) or, without one, on every CPU (a kernel
address). An address is attached when the session starts; a function watchpoint's
(``FUNC+argN``) when its set-up uprobe sends the address (a ``watch`` record: lang/
watchpoints.py): then the process, stopped by that probe, goes on (``SIGCONT``; an
``asyncwatchpoint`` was not stopped). As in bpftrace 0.17: a watchpoint keeps one address
(the same one sent again is not attached twice), the CPU's debug registers are few (x86:
4) and a refused one (``ENOSPC``) is a message, not an error; ``unwatch(ADDR)`` detaches
every watchpoint on ADDR.
"""

from __future__ import annotations

import errno
import os
import signal
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Tuple

from ...errors import BPFError, UndertowError
from ...kernel import syscalls as sc
from .compiled import CompiledProbe

__all__ = ["Watches", "Notice", "OUT_OF_REGISTERS", "breakpoint_type"]

#: bpftrace 0.17's words when the CPU has no debug register left.
OUT_OF_REGISTERS = "Failed to attach watchpoint probe. You are out of watchpoint registers."

#: ``HW_BREAKPOINT_R``/``_W``/``_X`` (include/uapi/linux/hw_breakpoint.h).
_BP_BITS = {"r": 1, "w": 2, "x": 4}


class Notice:
    """A message for the output (bpftrace's ``lost_events`` message type)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def breakpoint_type(mode: str) -> int:
    """``bp_type`` of a mode such as ``rw``."""
    t = 0
    for ch in mode:
        t |= _BP_BITS.get(ch, 0)
    return t


class Watches:
    """The watchpoints of one session: the programs waiting for an address, the perf event
    fds per address. ``own(fd)`` records an fd in the session (closed with it);
    ``disown(fd)`` takes it back (closed here: unwatch)."""

    def __init__(self, own: "Callable[[int], None]", disown: "Callable[[int], None]",
                 cpus: "Callable[[], List[int]]") -> None:
        self._own, self._disown, self._cpus = own, disown, cpus
        self.waiting: Dict[int, Tuple[CompiledProbe, int]] = {}
        self.addr_of: Dict[int, int] = {}
        self.fds: Dict[int, List[int]] = {}

    def wait(self, cp: CompiledProbe, prog: int) -> None:
        """A function watchpoint's loaded program, attached once its address arrives."""
        self.waiting[int((cp.ap.watch or {}).get("id", 0))] = (cp, prog)

    def attach(self, cp: CompiledProbe, prog: int, addr: int) -> None:
        """The breakpoint on ``addr`` with ``prog`` attached (raises BPFError)."""
        w = cp.ap.watch or {}
        attr = sc.PerfEventAttr(type=sc.PerfType.BREAKPOINT, sample_period=1, bp_type=breakpoint_type(w["mode"]),
                                config1=addr, config2=int(w["len"]))
        pid = int(cp.ap.pid or 0)
        for cpu in ([-1] if pid > 0 else self._cpus()):
            fd = sc.perf_event_open(attr, pid=pid if pid > 0 else -1, cpu=cpu)
            try:
                sc.perf_event_set_bpf(fd, prog)
                sc.perf_event_enable(fd)
            except BaseException:
                sc.close_fd(fd)
                raise
            self._own(fd)
            self.fds.setdefault(addr, []).append(fd)

    def arrived(self, wid: int, addr: int, out: "List[Any]") -> None:
        """A set-up probe sent ``addr`` for watchpoint ``wid``: attach it (once per address),
        then let the stopped process go on."""
        got = self.waiting.get(wid)
        if got is None:
            return
        cp, prog = got
        try:
            if self.addr_of.get(wid) != addr:
                self.addr_of[wid] = addr
                try:
                    self.attach(cp, prog, addr)
                except BPFError as e:
                    if getattr(e, "errno", None) != errno.ENOSPC:
                        raise UndertowError(f"attaching {cp.name} at {addr:#x} failed: {e.message}",
                                            hints=list(e.hints)) from None
                    out.append(Notice(OUT_OF_REGISTERS))
        finally:
            if not (cp.ap.watch or {}).get("async") and cp.ap.pid:
                try:
                    os.kill(int(cp.ap.pid), signal.SIGCONT)
                except OSError:
                    pass  # it has ended meanwhile

    def release(self) -> None:
        """At the end: a process a set-up probe stopped whose record was never handled (the
        run stopped first) is let go on; one not stopped is left alone."""
        pids = {int(cp.ap.pid) for cp, _ in self.waiting.values()
                if cp.ap.pid and not (cp.ap.watch or {}).get("async")}
        for pid in pids:
            if _stopped(pid):
                try:
                    os.kill(pid, signal.SIGCONT)
                except OSError:
                    pass

    def unwatch(self, addr: int) -> None:
        """Detach every watchpoint on ``addr`` (none: nothing happens, as in bpftrace)."""
        for fd in self.fds.pop(addr, []):
            self._disown(fd)


def _stopped(pid: int) -> bool:
    """Whether ``pid`` is stopped by a signal (``T`` in /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    rest = stat.rpartition(b")")[2].split()
    return bool(rest) and rest[0] == b"T"
