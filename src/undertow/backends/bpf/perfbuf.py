"""Consumer of a ``BPF_MAP_TYPE_PERF_EVENT_ARRAY`` (the perf buffer), for kernels without
the BPF ring buffer (before 5.8) or when asked (``UNDERTOW_BPF_OUTPUT=perfbuf``).

Programs copy their record from a per-CPU scratch value into
``bpf_perf_event_output(ctx, map, BPF_F_CURRENT_CPU, rec, size)``; each CPU has its own
``PERF_COUNT_SW_BPF_OUTPUT`` event whose fd sits in the map at the CPU's index, and its own
mmap'd ring: a metadata page (``struct perf_event_mmap_page``: ``data_head`` at 1024,
``data_tail`` at 1032) and ``2^n`` data pages of ``struct perf_event_header``-framed
records (include/uapi/linux/perf_event.h): ``PERF_RECORD_SAMPLE`` carries ``u32 size``
then the raw bytes (padded to 8), ``PERF_RECORD_LOST`` ``u64 id, u64 lost`` when the
kernel had to drop records (``lost``, informational: the programs count their failed
outputs themselves, exactly). The same interface as :class:`.ringbuf.RingBuffer`; wake-ups
only at half a ring (``watermark``), the consumer polls on a timer as with the ring buffer.
"""

from __future__ import annotations

import mmap
import os
import select
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional

from ...kernel import syscalls as sc
from .ringbuf import u64_words

PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
_HDR = struct.Struct("<IHH")
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_HEAD, _TAIL = 1024 // 8, 1032 // 8  # u64 word indexes of data_head, data_tail


class PerfBuffer:
    """Per-CPU perf rings behind the PERF_EVENT_ARRAY ``map_fd``, ``pages`` data pages each."""

    def __init__(self, map_fd: int, cpus: List[int], pages: int = 256) -> None:
        if pages <= 0 or pages & (pages - 1):
            raise ValueError("perf buffer pages must be a power of two")
        self.page = mmap.PAGESIZE
        self.size = pages * self.page
        self.lost = 0
        self.fds: List[int] = []
        self._rings: Dict[int, mmap.mmap] = {}
        self._words: Dict[int, memoryview] = {}  # data_head/data_tail: whole 8-byte loads/stores
        self._ep = select.epoll()
        try:
            for cpu in cpus:
                attr = sc.PerfEventAttr(type=sc.PerfType.SOFTWARE, config=int(sc.PerfSwConfig.BPF_OUTPUT),
                                        sample_period=1, sample_type=sc.PERF_SAMPLE_RAW,
                                        wakeup_events=self.size // 2).set_flag("watermark")
                fd = sc.perf_event_open(attr, pid=-1, cpu=cpu)
                self.fds.append(fd)
                ring = mmap.mmap(fd, self.page + self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
                self._rings[fd] = ring
                self._words[fd] = u64_words(ring)
                sc.map_update_elem(map_fd, _U32.pack(cpu), _U32.pack(fd))
                sc.perf_event_enable(fd)
                self._ep.register(fd, select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    def consume(self, callback: Callable[[memoryview], None], limit: int = 1 << 20) -> int:
        """Hand every record to ``callback`` (a memoryview valid during the call)."""
        n = 0
        size, base = self.size, self.page
        for fd, ring in self._rings.items():
            words = self._words[fd]
            head = words[_HEAD]
            tail = words[_TAIL]
            while tail < head and n < limit:
                off = tail % size
                if off + 8 <= size:
                    rtype, _misc, rsize = _HDR.unpack_from(ring, base + off)
                else:
                    rtype, _misc, rsize = _HDR.unpack(self._copy(ring, off, 8))
                if rsize < 8:
                    tail = head  # a corrupt header: skip what is there rather than loop
                    break
                if off + rsize <= size:
                    rec = memoryview(ring)[base + off: base + off + rsize]
                else:  # wraps around the end of the data area
                    rec = memoryview(self._copy(ring, off, rsize))
                try:
                    if rtype == PERF_RECORD_SAMPLE:
                        raw = _U32.unpack_from(rec, 8)[0]
                        callback(rec[12:12 + raw])
                        n += 1
                    elif rtype == PERF_RECORD_LOST:
                        self.lost += _U64.unpack_from(rec, 16)[0]
                finally:
                    rec.release()
                tail += rsize
            words[_TAIL] = tail  # never pack_into: it zeroes the field first (ringbuf.py)
        return n

    def _copy(self, ring: mmap.mmap, off: int, length: int) -> bytes:
        first = min(length, self.size - off)
        return ring[self.page + off: self.page + off + first] + ring[self.page: self.page + length - first]

    def poll(self, timeout: Optional[float]) -> bool:
        return bool(self._ep.poll(-1 if timeout is None else timeout))

    def wake_on(self, fd: int) -> None:
        """Also return from :meth:`poll` when ``fd`` is readable (undertow.stop's pipe)."""
        try:
            self._ep.register(fd, select.EPOLLIN)
        except (OSError, ValueError):
            pass

    def skip_all(self) -> None:
        """Give every record written so far back to the kernel unread (the kernel moves
        ``data_head`` only past complete records)."""
        for w in self._words.values():
            w[_TAIL] = w[_HEAD]

    def pending(self) -> int:
        """Bytes written by the kernel and not consumed yet, all CPUs."""
        return sum(w[_HEAD] - w[_TAIL] for w in self._words.values())

    def close(self) -> None:
        for w in self._words.values():
            w.release()
        self._words.clear()
        for ring in self._rings.values():
            try:
                ring.close()
            except (BufferError, ValueError):
                pass
        self._rings.clear()
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()
        try:
            self._ep.close()
        except OSError:
            pass
