"""A running BPF session: maps, loaded programs, perf-event attachments, the ring buffer.

Everything is an fd this object owns; :meth:`BpfSession.close` closes them all
(detaching the programs), is idempotent and also runs at interpreter exit.
Nothing is pinned, so a killed session leaves nothing behind in the kernel.
"""

from __future__ import annotations

import atexit
import os
import struct
from typing import Any, Dict, List, Optional

from ...errors import SourceError, VerifierError
from ...events import Event, Lost, Record, Stats
from ...kernel import syscalls as sc
from ..base import Session
from .codegen import HEADER, ProbeCode, decode_record
from .ringbuf import RingBuffer


class BpfSession(Session):
    def __init__(self, plan: Any, kernel: Any) -> None:
        self.plan = plan
        self.kernel = kernel
        self.stats = Stats()
        self.fds: List[int] = []
        self.rb: Optional[RingBuffer] = None
        self.lost_fd: Optional[int] = None
        self._lost_seen = 0
        self._closed = False
        self._by_index: Dict[int, ProbeCode] = {}

    @classmethod
    def start(cls, plan: Any, kernel: Any) -> "BpfSession":
        s = cls(plan, kernel)
        atexit.register(s.close)
        try:
            s._setup()
        except BaseException:
            s.close()
            raise
        return s

    def _setup(self) -> None:
        sc.raise_memlock_rlimit()  # never fatal (memcg accounting on 6.x)
        rb_fd = sc.map_create(sc.MapType.RINGBUF, 0, 0, self.plan.ringbuf_size)
        self.fds.append(rb_fd)
        self.lost_fd = sc.map_create(sc.MapType.ARRAY, 4, 8, 1)
        self.fds.append(self.lost_fd)
        tfs = self.kernel.tracefs()
        for pc in self.plan.probes:
            raw = pc.program.relocate({"rb": rb_fd, "lost": self.lost_fd})
            try:
                prog = sc.prog_load(sc.ProgType.TRACEPOINT, raw, license="GPL", name=f"ut_{pc.index}")
            except VerifierError as e:
                raise _locate(e, pc) from None
            self.fds.append(prog)
            tp_id = tfs.event_format(pc.group, pc.event).id
            # one perf event runs the program on every CPU (it hangs off the tracepoint)
            pfd = sc.perf_event_open(sc.tracepoint_attr(tp_id), pid=-1, cpu=0)
            self.fds.append(pfd)
            sc.perf_event_set_bpf(pfd, prog)
            sc.perf_event_enable(pfd)
            self._by_index[pc.index] = pc
        self.rb = RingBuffer(rb_fd, self.plan.ringbuf_size)

    def poll(self, timeout: Optional[float] = None) -> List[Record]:
        if self._closed or self.rb is None:
            return []
        out: List[Record] = []
        if not self.rb.pending():
            self.rb.poll(timeout)
        self.rb.consume(lambda v: self._record(v, out))
        self._check_lost(out)
        return out

    def _record(self, view: memoryview, out: List[Record]) -> None:
        if len(view) < HEADER.size:
            return
        idx = struct.unpack_from("<I", view, 32)[0]
        pc = self._by_index.get(idx)
        if pc is None:
            return
        ts, cpu, tgid, tid, comm, fields, errors = decode_record(view, pc)
        formats = {s.name: s.fmt for s in pc.slots if s.fmt}
        ev = Event(ts, cpu, tgid, tid, comm, pc.name, fields, errors=errors, formats=formats)
        self.stats.count_event(pc.name)
        if errors:
            self.stats.count_lost("read_fault", len(errors))
        out.append(ev)

    def _check_lost(self, out: List[Record]) -> None:
        if self.lost_fd is None:
            return
        raw = sc.map_lookup_elem(self.lost_fd, struct.pack("<I", 0), 8)
        n = struct.unpack("<Q", raw)[0] if raw else 0
        if n > self._lost_seen:
            self.stats.count_lost("ringbuf_full", n - self._lost_seen)
            out.append(Lost(n - self._lost_seen, "ringbuf_full"))
            self._lost_seen = n

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.rb is not None:
            self.rb.close()
        for fd in reversed(self.fds):
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()
        try:
            atexit.unregister(self.close)
        except Exception:  # noqa: BLE001
            pass


def _locate(e: VerifierError, pc: ProbeCode) -> Exception:
    """Map the verifier's failing instruction back to the probe's text where possible."""
    import re

    m = None
    for line in reversed(e.log.splitlines()):
        m = re.match(r"^(\d+): \(", line)
        if m:
            break
    if m:
        origin = pc.program.origin_of(int(m.group(1)))
        span = getattr(origin, "span", None)
        if span is not None:
            e.add_hint(f"the verifier stopped at instruction {m.group(1)}, generated for this expression")
    return e
