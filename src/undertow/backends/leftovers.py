"""Names of what a session creates in tracefs, and removal of what killed sessions left.

Shared by both backends (neither owns it): an ftrace session names its instance and the
group of its kprobe/uprobe definitions, a BPF session the ``kprobe_events`` group of its
legacy kprobes (backends/bpf/runtime.py), all alike,

    ``undertow_<pid>_<start>_<pidns>_<n>``

- ``pid``: the owner's pid in its own pid namespace (what ``getpid()`` says there);
- ``start``: its start time, clock ticks since boot (``/proc/<pid>/stat`` field 22, host
  time: kernel/owners.py removes a time namespace's offset);
- ``pidns``: the inode of its pid namespace (``/proc/<pid>/ns/pid``);
- ``n``: the session's number within the process.

So any observer, in any pid namespace, can tell whether the owner still runs
(:class:`~undertow.kernel.owners.ProcView`): the host sees a live tracer inside a
container as live, a pid reused after a SIGKILL as another process, and from inside a
container a name of the host (or of a sibling container) is left alone: it cannot be
judged from there. The name is at most 9+7+1+20+1+10+1+10 = 59 characters: a group of
kprobe/uprobe events may have 63 (MAX_EVENT_NAME_LEN 64 with its NUL,
traceprobe_parse_event_name in kernel/trace/trace_probe.c) of ``[A-Za-z0-9_]``, starting
with a letter or ``_`` (is_good_name there).

Names of older undertow versions (``undertow_<pid>_<n>``) and of exported scripts
(``undertow_sh_<pid>``, ``-o``) hold a bare pid: they are judged only from the initial pid
namespace, stale when the pid is gone or is no undertow/python/sh process any more.

A state is *stale* when its owner is gone; only stale state is removed (``force``: every
state but this process's). Every session removes stale state when it starts and reports
it (:func:`report_removed`, to a hook the application sets: the library never prints);
``undertow cleanup`` lists what it removes and what it keeps.
"""

from __future__ import annotations

import itertools
import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

from ..errors import TracefsError
from ..kernel.owners import Identity, ProcView, self_identity
from ..kernel.tracefs import Tracefs

PREFIX = "undertow_"
DEFINITION_FILES = ("kprobe_events", "uprobe_events")

_counter = itertools.count()


def session_prefix(proc: str = "/proc") -> str:
    """``undertow_<pid>_<start>_<pidns>``: what every name of this process starts with."""
    me = self_identity(proc)
    return f"{PREFIX}{me.pid}_{me.start}_{me.pidns}"


def next_session_name() -> str:
    """``undertow_<pid>_<start>_<pidns>_<n>``: the instance name and dynamic-event group of
    a new session (see the module's doc)."""
    return f"{session_prefix()}_{next(_counter)}"


class Owner:
    """Who a name says made it: ``ident`` (new names) or a bare ``pid`` (``legacy``)."""

    __slots__ = ("pid", "ident", "legacy")

    def __init__(self, pid: int, ident: Optional[Identity] = None, legacy: str = "") -> None:
        self.pid, self.ident, self.legacy = pid, ident, legacy

    def __repr__(self) -> str:
        return f"Owner({self.pid}, {self.ident!r}, {self.legacy!r})"


def owner_of(name: str) -> Optional[Owner]:
    """The owner a tracefs instance or event group name states; None: not undertow's."""
    if not name.startswith(PREFIX):
        return None
    parts = name[len(PREFIX):].split("_")
    if len(parts) == 2 and parts[0] == "sh" and parts[1].isdigit():
        return Owner(int(parts[1]), legacy="script")
    if not all(p.isdigit() for p in parts):
        return None
    if len(parts) in (1, 2):
        return Owner(int(parts[0]), legacy="old")
    if len(parts) == 4:
        pid, start, ns = int(parts[0]), int(parts[1]), int(parts[2])
        return Owner(pid, Identity(ns, pid, start))
    return None


def owner_pid(name: str) -> Optional[int]:
    o = owner_of(name)
    return o.pid if o is not None else None


def pid_is_undertow(pid: int, proc: str = "/proc") -> bool:
    """Whether ``pid`` is alive and still an undertow/python/sh process (the rule for
    names without a start time: a reused pid is caught only when its program differs)."""
    if pid == os.getpid():
        return True
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as f:
            cmd = f.read().replace(b"\x00", b" ")
    except OSError:
        return False
    return any(w in cmd for w in (b"undertow", b"python", b"sh"))


class Leftover:
    """One undertow-named object in tracefs and the verdict on its owner.

    ``where`` is ``instances`` or the definition file; ``name`` the instance name or
    ``group/event``; ``alive`` True/False/None (None: cannot be judged from here);
    ``why`` says so in words (``pid 42 has exited``)."""

    __slots__ = ("where", "name", "owner", "alive", "why")

    def __init__(self, where: str, name: str, owner: Owner, alive: Optional[bool], why: str) -> None:
        self.where, self.name, self.owner, self.alive, self.why = where, name, owner, alive, why

    def __str__(self) -> str:
        return f"instances/{self.name}" if self.where == "instances" else f"{self.where} {self.name}"

    def __repr__(self) -> str:
        return f"Leftover({str(self)!r}, alive={self.alive!r}, why={self.why!r})"


def _verdict(owner: Owner, view: ProcView) -> Tuple[Optional[bool], str]:
    """(alive, why) for ``owner`` through ``view``."""
    if owner.ident is None:
        what = "an exported script" if owner.legacy == "script" else "an older undertow"
        if not view.sees_all:
            return None, (f"named by {what} with pid {owner.pid} only: judged from the initial "
                          "pid namespace only")
        if pid_is_undertow(owner.pid, view.proc):
            return True, f"pid {owner.pid} is running"
        return False, f"pid {owner.pid} has exited"
    ident = owner.ident
    where = "" if ident.pidns == view.view_ns else f" in pid namespace {ident.pidns}"
    if not ident.pidns or not ident.start:
        return None, f"pid {ident.pid}: its namespace and start time are unknown"
    found = view.find(ident)
    if found is not None:
        host = f", pid {found} here" if where else ""
        return True, f"pid {ident.pid}{where} is running{host}"
    alive = view.alive(ident)
    if alive is None:
        return None, f"pid {ident.pid}{where} cannot be seen from this pid namespace"
    return False, f"pid {ident.pid}{where} has exited"


def survey(tfs: Tracefs, proc: str = "/proc", view: Optional[ProcView] = None) -> List[Leftover]:
    """Every instance and dynamic event named by undertow, with its owner's verdict."""
    view = view or ProcView(proc)
    cache: dict = {}
    out: List[Leftover] = []

    def judge(where: str, name: str, group: str) -> None:
        owner = owner_of(group)
        if owner is None:
            return
        if group not in cache:
            cache[group] = _verdict(owner, view)
        alive, why = cache[group]
        out.append(Leftover(where, name, owner, alive, why))

    for name in tfs.instances():
        if name.startswith(PREFIX):
            judge("instances", name, name)
    for dfile in DEFINITION_FILES:
        if not tfs.has(dfile):
            continue
        try:
            text = tfs.read(dfile)
        except TracefsError:
            continue
        for line in text.splitlines():
            # "p:GROUP/EVENT ...", "r10:GROUP/EVENT ..." (Documentation/trace/kprobetrace.rst)
            head = line.split(" ", 1)[0]
            kind, sep, ev = head.partition(":")
            if not sep or kind[:1] not in ("p", "r") or "/" not in ev:
                continue
            judge(dfile, ev, ev.split("/", 1)[0])
    return out


def _mine(owner: Owner) -> bool:
    if owner.ident is None:
        return owner.pid == os.getpid()
    return owner.ident == self_identity()


def removable(item: Leftover, force: bool = False) -> bool:
    """Stale (its owner is gone), or with ``force`` anything but this process's own."""
    if force:
        return not _mine(item.owner)
    return item.alive is False


def stale_state(tfs: Tracefs, force: bool = False, proc: str = "/proc") -> List[str]:
    """Describe what :func:`remove_stale` would remove (``instances/NAME``, ``uprobe_events G/E``)."""
    return [str(i) for i in survey(tfs, proc) if removable(i, force)]


def remove(tfs: Tracefs, items: List[Leftover]) -> List[Leftover]:
    """Remove ``items``: instances first (they may have the events enabled), then the
    definitions. Returns what was removed; one failure does not stop the rest."""
    removed: List[Leftover] = []
    for item in items:
        if item.where == "instances":
            try:
                tfs.remove_instance(item.name, missing_ok=False)
                removed.append(item)
            except TracefsError:
                continue
    for item in items:
        if item.where != "instances":
            try:
                tfs.write(item.where, f"-:{item.name}")
                removed.append(item)
            except TracefsError:
                continue
    return removed


def remove_stale(tfs: Tracefs, force: bool = False, proc: str = "/proc") -> List[str]:
    """Remove what :func:`stale_state` lists; returns what was removed."""
    items = [i for i in survey(tfs, proc) if removable(i, force)]
    return [str(i) for i in remove(tfs, items)]


def report_removed(removed: List[str]) -> None:
    """Hand what a session's start removed to ``undertow.backends.leftovers_reporter``
    (when set and ``removed`` is not empty)."""
    from .. import backends

    if removed and backends.leftovers_reporter is not None:
        backends.leftovers_reporter(list(removed))
