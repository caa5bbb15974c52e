"""Process identities that hold across pid namespaces, and whether their owner still lives.

A pid names a process only inside one pid namespace, and only until it exits. What a
session leaves in tracefs (an instance, probe definitions) is seen by every namespace, so
its name carries an identity any observer can check (see backends/ftrace/cleanup.py):

- the **pid namespace** of the owner: the inode of ``/proc/<pid>/ns/pid``
  (``pid:[4026531836]``; Documentation/filesystems/proc.rst, namespaces(7)). The initial
  namespace's inode is the constant ``PROC_PID_INIT_INO`` (include/linux/proc_ns.h);
- the owner's **pid in that namespace** (``getpid()``);
- its **start time**: ``/proc/<pid>/stat`` field 22, clock ticks since boot. A pid reused
  after a SIGKILL belongs to a process with another start time. The kernel shifts the value
  by the *reader's* time namespace boottime offset (fs/proc/array.c do_task_stat ->
  timens_add_boottime_ns, Linux 5.6), so every reader subtracts its own offset
  (``/proc/self/timens_offsets``) before comparing: the value kept is the host's.

An observer reads ``/proc`` as mounted, which shows the processes of one pid namespace
(the *view*: the namespace of that proc mount's pid 1) and of its descendants. A process
of the view's namespace is looked up by pid; one of a visible descendant namespace by
scanning ``/proc/*/ns/pid`` and the last ``NSpid:`` field of ``/proc/*/status`` (Linux
4.1). An identity whose namespace is not visible (a parent or a sibling) cannot be judged:
:meth:`ProcView.alive` says ``None``, and nothing of it may be removed. From the initial
namespace every process is visible, so there an identity nobody matches is dead.
"""

from __future__ import annotations

import errno
import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

__all__ = ["INIT_PID_NS", "Identity", "self_identity", "ProcView", "pidns_of", "start_of", "nspid_of"]

#: ``PROC_PID_INIT_INO`` (include/linux/proc_ns.h): the inode of the initial pid namespace.
INIT_PID_NS = 0xEFFFFFFC
#: Start times compared with this slack (clock ticks): removing a time namespace's offset
#: rounds (nsec_to_clock_t of the sum); a reused pid starts later than that (its owner
#: lived through Python's start-up, tens of ticks, before naming anything).
START_SLACK = 1


class Identity:
    """(pid namespace inode, pid in it, start time in host clock ticks since boot).

    ``pidns``/``start`` are 0 when they could not be read (no /proc): such an identity is
    never judged dead by anyone."""

    __slots__ = ("pidns", "pid", "start")

    def __init__(self, pidns: int, pid: int, start: int) -> None:
        self.pidns, self.pid, self.start = pidns, pid, start

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and (self.pidns, self.pid, self.start) == \
            (other.pidns, other.pid, other.start)

    def __hash__(self) -> int:
        return hash((self.pidns, self.pid, self.start))

    def __repr__(self) -> str:
        return f"Identity(pidns={self.pidns}, pid={self.pid}, start={self.start})"


def pidns_of(proc: str, pid: str) -> Optional[int]:
    """The pid namespace inode of ``<proc>/<pid>`` (``pid`` may be ``self``); None when unreadable."""
    try:
        link = os.readlink(os.path.join(proc, pid, "ns", "pid"))
    except OSError:
        return None
    if link.startswith("pid:[") and link.endswith("]") and link[5:-1].isdigit():
        return int(link[5:-1])
    return None


def start_of(proc: str, pid: str) -> Optional[int]:
    """Field 22 of ``<proc>/<pid>/stat`` (starttime, clock ticks since boot, as this
    process's time namespace shows it); None when the process is gone or unreadable."""
    try:
        with open(os.path.join(proc, pid, "stat"), "rb") as f:
            text = f.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: the fields go on after the last ')'
    fields = text[text.rfind(b")") + 2:].split()
    try:
        return int(fields[19])  # field 3 is fields[0]
    except (IndexError, ValueError):
        return None


def nspid_of(proc: str, pid: str) -> Optional[List[int]]:
    """``NSpid:`` of ``<proc>/<pid>/status``: the pid in the view's namespace first, in the
    process's own namespace last. None when the process is gone or the kernel predates 4.1."""
    try:
        with open(os.path.join(proc, pid, "status"), "rb") as f:
            for line in f:
                if line.startswith(b"NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except (OSError, ValueError):
        return None
    return None


def boottime_offset_ticks(proc: str = "/proc") -> int:
    """This process's time namespace boottime offset in clock ticks (0 without time
    namespaces). ``timens_offsets`` shows the namespace of our children, which is ours
    once we have exec'd (execve enters it: kernel/nsproxy.c exec_task_namespaces)."""
    try:
        with open(os.path.join(proc, "self", "timens_offsets"), "rb") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[0] in (b"boottime", b"7"):  # CLOCK_BOOTTIME is 7
                    hz = os.sysconf("SC_CLK_TCK")
                    return int(parts[1]) * hz + int(parts[2]) * hz // 1000000000
    except (OSError, ValueError):
        pass
    return 0


_self: Dict[Tuple[str, int], Identity] = {}


def self_identity(proc: str = "/proc") -> Identity:
    """This process's :class:`Identity` (read once per pid: a forked child reads its own)."""
    pid = os.getpid()
    got = _self.get((proc, pid))
    if got is None:
        ns = pidns_of(proc, "self") or 0
        start = start_of(proc, "self")
        # /proc/self is this process whatever namespace the proc mount belongs to
        start = 0 if start is None or not ns else start - boottime_offset_ticks(proc)
        got = _self[(proc, pid)] = Identity(ns, pid, max(0, start))
    return got


class ProcView:
    """Liveness of identities as seen through one mounted ``/proc`` (read lazily, once).

    ``/proc/<pid>/ns/pid`` can be refused (EACCES: ptrace access rules,
    Documentation/filesystems/proc.rst) even to root, e.g. for an init that is not
    dumpable; ``status`` is readable by all. So a process's namespace is taken from its
    ``NSpid`` depth when it is the view's own (one entry), and the link is read only for
    processes of nested namespaces whose pid there is the one looked for."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        own = nspid_of(proc, "self")
        if own is not None and len(own) == 1:
            self.view_ns = pidns_of(proc, "self")  # the proc mount is our own namespace's
        else:
            self.view_ns = pidns_of(proc, "1")  # its pid 1 is that namespace's init
        self.offset = boottime_offset_ticks(proc)
        self._procs: Optional[List[Tuple[str, List[int]]]] = None
        self._nested: Optional[Dict[int, int]] = None

    @property
    def sees_all(self) -> bool:
        """Whether this view is the initial pid namespace's (every process is visible)."""
        return self.view_ns == INIT_PID_NS

    def _scan(self) -> List[Tuple[str, List[int]]]:
        """(directory name, NSpid) of every visible process; NSpid [] when unreadable."""
        if self._procs is None:
            procs = []
            try:
                names = os.listdir(self.proc)
            except OSError:
                names = []
            for name in names:
                if name.isdigit():
                    ns_pids = nspid_of(self.proc, name)
                    if ns_pids is None and os.path.exists(os.path.join(self.proc, name)):
                        ns_pids = []  # alive, unreadable: may be anything
                    if ns_pids is not None:
                        procs.append((name, ns_pids))
            self._procs = procs
        return self._procs

    def _same_start(self, name: str, ident: Identity) -> bool:
        start = start_of(self.proc, name)
        return start is not None and abs(start - self.offset - ident.start) <= START_SLACK

    def find(self, ident: Identity) -> Optional[str]:
        """The view's pid (directory name) of the live process ``ident`` names, or None."""
        return self._find(ident)[0]

    def _find(self, ident: Identity) -> Tuple[Optional[str], bool]:
        """(the view's pid of ``ident``'s process or None, whether some process could not be
        ruled out because its namespace could not be read)."""
        if not ident.pidns or not ident.start:
            return None, True
        if ident.pidns == self.view_ns:
            name = str(ident.pid)
            ns_pids = nspid_of(self.proc, name)
            if ns_pids is not None and len(ns_pids) <= 1 and self._same_start(name, ident):
                return name, False
            return None, False
        unsure = False
        for name, ns_pids in self._scan():
            if not ns_pids:
                unsure = True
                continue
            if len(ns_pids) < 2 or ns_pids[-1] != ident.pid or not self._same_start(name, ident):
                continue
            ns = pidns_of(self.proc, name)
            if ns == ident.pidns:
                return name, False
            if ns is None:
                unsure = True
        return None, unsure

    def _namespace_visible(self, pidns: int) -> Optional[bool]:
        """Whether a process of ``pidns`` is visible here (None: some link was refused)."""
        if self._nested is None:
            nested: Dict[int, int] = {}
            for name, ns_pids in self._scan():
                if len(ns_pids) != 1:
                    ns = pidns_of(self.proc, name)
                    nested[ns or 0] = nested.get(ns or 0, 0) + 1
            self._nested = nested
        if pidns in self._nested:
            return True
        return None if 0 in self._nested else False

    def alive(self, ident: Identity) -> Optional[bool]:
        """True: the owner runs; False: it is gone (or its pid is another process's now);
        None: this view cannot tell (its namespace is not visible from here, or unreadable)."""
        if not ident.pidns or not ident.start:
            return None
        found, unsure = self._find(ident)
        if found is not None:
            return True
        if ident.pidns == self.view_ns:
            # /proc/<pid> is the owner's pid: absent, or another process's now
            return False if os.path.isdir(self.proc) else None
        if unsure:
            return None
        if self.sees_all:
            return False
        # a visible namespace is the view's or a descendant: all of its processes are here
        visible = self._namespace_visible(ident.pidns)
        return False if visible else None
