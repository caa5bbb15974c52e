"""Where an event came from: the keys every event sent to a sink carries (docs/fleet.md).

``hostname`` (``uname -n`` at the start), ``machine_id`` (``/etc/machine-id``, the 32 hex
digits systemd writes once per installation, machine-id(5)), ``boot_id``
(``/proc/sys/kernel/random/boot_id``, a UUID the kernel makes at each boot,
Documentation/admin-guide/sysctl/kernel.rst "random"), ``run_id`` (one per undertow run:
random, or given with ``--run-id`` so that all hosts of one sweep share it), ``instance_id``
(random, one per undertow process: what keeps apart two processes that share a machine id,
boot id and run id — containers of one kernel, cloned images, a sweep's run id), ``tool`` (the
command), ``event_seq`` (1, 2, ... per process) and ``wall_ns`` (the event's time on the wall clock, ns
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
KEYS = ("hostname", "machine_id", "boot_id", "run_id", "instance_id", "tool", "event_seq", "wall_ns")

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

    __slots__ = ("hostname", "machine_id", "boot_id", "run_id", "instance_id", "tool", "seq", "offset_ns")

    def __init__(self, tool: str, run_id: Optional[str] = None) -> None:
        self.hostname = socket.gethostname()
        self.machine_id = machine_id()
        self.boot_id = boot_id()
        self.instance_id = uuid.uuid4().hex[:16]
        self.run_id = run_id or self.instance_id
        self.tool = tool
        self.seq = 0
        # events carry CLOCK_MONOTONIC ns (bpf_ktime_get_ns, ftrace's mono clock): this turns them
        # into wall-clock time (a clock step during the run shifts later events by the step)
        self.offset_ns = time.time_ns() - time.monotonic_ns()

    def msg_id(self, seq: int) -> str:
        """The NATS ``Nats-Msg-Id`` of event number ``seq``: :func:`msg_id`."""
        return msg_id({"machine_id": self.machine_id, "hostname": self.hostname, "boot_id": self.boot_id,
                       "instance_id": self.instance_id, "event_seq": seq})

    def stamp(self, event: Dict[str, object]) -> int:
        """Add the provenance keys to ``event`` (they win over an event key of the same name);
        returns the event's sequence number."""
        self.seq += 1
        ts = event.get("ts")
        wall = ts + self.offset_ns if isinstance(ts, int) and not isinstance(ts, bool) and ts > 0 else time.time_ns()
        event.update(hostname=self.hostname, machine_id=self.machine_id, boot_id=self.boot_id, run_id=self.run_id,
                     instance_id=self.instance_id, tool=self.tool, event_seq=self.seq, wall_ns=wall)
        return self.seq


def msg_id(event: Dict[str, object]) -> str:
    """``<machine_id>.<boot_id>.<instance_id>.<event_seq>`` of a stamped event: the host id, the boot
    id and the sequence, with the process's instance id between (the sequence restarts with each
    process; two processes on one machine and boot must not look like resends of each other)."""
    host = event.get("machine_id") or event.get("hostname")
    return f"{host}.{event.get('boot_id') or 'noboot'}.{event.get('instance_id')}.{event.get('event_seq')}"
