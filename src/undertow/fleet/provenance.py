"""Where an event came from: the keys every event sent to a sink carries (docs/fleet.md).

``hostname`` (``uname -n`` at the start), ``machine_id`` (``/etc/machine-id``, the 32 hex
digits systemd writes once per installation, machine-id(5)), ``boot_id``
(``/proc/sys/kernel/random/boot_id``, a UUID the kernel makes at each boot,
Documentation/admin-guide/sysctl/kernel.rst "random"), ``run_id`` (one per undertow run:
random, or given with ``--run-id`` so that all hosts of one sweep share it), ``tool`` (the
command), ``seq`` (1, 2, ... per run) and ``wall_ns`` (the event's time on the wall clock, ns
since the epoch). The machine and boot ids are checked for their shape: a file someone
altered cannot put arbitrary text into every event.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, Optional

#: the JSON keys provenance adds (a public contract: docs/fleet.md)
KEYS = ("hostname", "machine_id", "boot_id", "run_id", "tool", "seq", "wall_ns")

_HEX32 = re.compile(r"[0-9a-f]{32}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _read_small(path: str) -> str:
    """The first line of a small root-owned file ('' when unreadable); never through a link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        return os.read(fd, 128).decode("ascii", "replace").strip().split("\n")[0]
    except OSError:
        return ""
    finally:
        os.close(fd)


def machine_id(path: str = "/etc/machine-id") -> str:
    """``/etc/machine-id`` (32 lower-case hex digits), ``""`` when absent or malformed."""
    v = _read_small(path)
    return v if _HEX32.fullmatch(v) else ""


def boot_id(path: str = "/proc/sys/kernel/random/boot_id") -> str:
    """The kernel's boot id (a UUID made at boot: drivers/char/random.c, proc_do_uuid)."""
    v = _read_small(path)
    return v if _UUID.fullmatch(v) else ""


class Provenance:
    """The provenance of one run; :meth:`stamp` adds it to an event dict."""

    __slots__ = ("hostname", "machine_id", "boot_id", "run_id", "tool", "seq", "offset_ns")

    def __init__(self, tool: str, run_id: Optional[str] = None) -> None:
        self.hostname = socket.gethostname()
        self.machine_id = machine_id()
        self.boot_id = boot_id()
        self.run_id = run_id or uuid.uuid4().hex
        self.tool = tool
        self.seq = 0
        # events carry CLOCK_MONOTONIC ns (bpf_ktime_get_ns, ftrace's mono clock): this turns them
        # into wall-clock time (a clock step during the run shifts later events by the step)
        self.offset_ns = time.time_ns() - time.monotonic_ns()

    def host_key(self) -> str:
        """Host and boot, as NATS message ids start (``machine_id`` or, without one, the hostname)."""
        return f"{self.machine_id or self.hostname}.{self.boot_id or 'noboot'}.{self.run_id}"

    def stamp(self, event: Dict[str, object]) -> int:
        """Add the provenance keys to ``event`` (they win over an event key of the same name);
        returns the event's sequence number."""
        self.seq += 1
        ts = event.get("ts")
        wall = ts + self.offset_ns if isinstance(ts, int) and not isinstance(ts, bool) and ts > 0 else time.time_ns()
        event.update(hostname=self.hostname, machine_id=self.machine_id, boot_id=self.boot_id, run_id=self.run_id,
                     tool=self.tool, seq=self.seq, wall_ns=wall)
        return self.seq
