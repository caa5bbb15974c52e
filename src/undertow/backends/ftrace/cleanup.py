"""Remove tracefs state left behind by sessions that died without cleaning up (SIGKILL).

Every session names its instance and its dynamic-event group ``undertow_<pid>_<n>``
(scripts exported with ``-o`` use ``undertow_sh_<pid>``), so a later run can tell
whose state it is: when ``<pid>`` is gone — or now belongs to a program that is not
undertow (pid reuse) — the state is stale and removed. ``undertow cleanup`` runs
this on demand; every session runs it at start.
"""

from __future__ import annotations

import os
import re
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are strings: typing is not imported at run time (start-up)
    from typing import List, Optional

from ...errors import TracefsError
from ...kernel.tracefs import Tracefs

NAME = re.compile(r"^undertow_(?:sh_)?(\d+)(?:_(\d+))?$")
DEFINITION_FILES = ("kprobe_events", "uprobe_events")


def owner_pid(name: str) -> Optional[int]:
    m = NAME.match(name)
    return int(m.group(1)) if m else None


def pid_is_undertow(pid: int, proc: str = "/proc") -> bool:
    """Whether ``pid`` is alive and still an undertow/python/sh process (not a reused pid)."""
    if pid == os.getpid():
        return True
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as f:
            cmd = f.read().replace(b"\x00", b" ")
    except OSError:
        return False
    return any(w in cmd for w in (b"undertow", b"python", b"sh"))


def stale_state(tfs: Tracefs, force: bool = False) -> List[str]:
    """Describe what :func:`remove_stale` would remove (``instances/NAME``, ``kprobe_events:G/E``)."""
    out: List[str] = []
    for name in tfs.instances():
        pid = owner_pid(name)
        if pid is not None and (force and pid != os.getpid() or not pid_is_undertow(pid)):
            out.append(f"instances/{name}")
    for dfile in DEFINITION_FILES:
        if not tfs.has(dfile):
            continue
        for line in tfs.read(dfile).splitlines():
            m = re.match(r"^[pr](?:\d+)?:([^/\s]+)/(\S+)", line)
            if not m:
                continue
            pid = owner_pid(m.group(1))
            if pid is not None and (force and pid != os.getpid() or not pid_is_undertow(pid)):
                out.append(f"{dfile}:{m.group(1)}/{m.group(2)}")
    return out


def remove_stale(tfs: Tracefs, force: bool = False) -> List[str]:
    """Remove stale instances first (they may have the events enabled), then the probes.

    ``force`` also removes state of live undertow processes other than this one.
    Returns what was removed; failures to remove one item do not stop the rest.
    """
    removed: List[str] = []
    items = stale_state(tfs, force)
    for item in items:
        if item.startswith("instances/"):
            try:
                tfs.remove_instance(item.split("/", 1)[1])
                removed.append(item)
            except TracefsError:
                continue
    for item in items:
        if ":" in item and not item.startswith("instances/"):
            dfile, ev = item.split(":", 1)
            try:
                tfs.write(dfile, f"-:{ev}")
                removed.append(item)
            except TracefsError:
                continue
    return removed
