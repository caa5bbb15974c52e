"""Consumer of a ``BPF_MAP_TYPE_RINGBUF`` map through mmap (no libbpf).

Layout (kernel/bpf/ringbuf.c, Documentation/bpf/ringbuf.rst): mapping the map fd
at offset 0 gives the consumer page (read-write: ``consumer_pos`` u64); at
offset ``page_size`` the producer page (``producer_pos`` u64) followed by the
data area, mapped twice back to back so a record that wraps is contiguous.
Each record starts with an 8-byte header: ``u32 len`` (bit 31 BUSY: not yet
committed; bit 30 DISCARD: skip it) and ``u32 pg_off``; the next record starts
at ``round_up(len + 8, 8)``.

Programs submit with ``BPF_RB_NO_WAKEUP`` and the consumer polls on a timer:
waking the reader on every event costs the traced process 5-45 us per event
(DESIGN.md); a timed poll costs nothing per event.
"""

from __future__ import annotations

import mmap
import os
import select
import struct
from typing import Callable, List, Optional

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HDR_SIZE = 8
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


class RingBuffer:
    """Reads records from a ring buffer map fd of ``size`` bytes (a power of two)."""

    def __init__(self, map_fd: int, size: int) -> None:
        if size <= 0 or size & (size - 1):
            raise ValueError("ring buffer size must be a power of two")
        self.fd = map_fd
        self.size = size
        self.mask = size - 1
        page = mmap.PAGESIZE
        self._cons = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._prod = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self._data_off = page
        self._ep = select.epoll()
        self._ep.register(map_fd, select.EPOLLIN)

    def consume(self, callback: Callable[[memoryview], None], limit: int = 1 << 20) -> int:
        """Hand every committed record to ``callback`` (a memoryview valid during the call)."""
        cons = _U64.unpack_from(self._cons, 0)[0]
        prod = _U64.unpack_from(self._prod, 0)[0]
        n = 0
        view = memoryview(self._prod)
        try:
            while cons < prod and n < limit:
                off = self._data_off + (cons & self.mask)
                hdr = _U32.unpack_from(self._prod, off)[0]
                if hdr & BUSY_BIT:
                    break
                length = hdr & ~(BUSY_BIT | DISCARD_BIT)
                if not hdr & DISCARD_BIT:
                    callback(view[off + HDR_SIZE: off + HDR_SIZE + length])
                    n += 1
                cons += (length + HDR_SIZE + 7) & ~7
                # publish progress so the producer can reuse the space
                _U64.pack_into(self._cons, 0, cons)
        finally:
            view.release()
        return n

    def poll(self, timeout: Optional[float]) -> bool:
        """Wait for a wake-up (programs that submit without one are drained on the timer)."""
        return bool(self._ep.poll(-1 if timeout is None else timeout))

    def pending(self) -> int:
        """Bytes produced but not consumed yet."""
        return _U64.unpack_from(self._prod, 0)[0] - _U64.unpack_from(self._cons, 0)[0]

    def close(self) -> None:
        for m in (self._cons, self._prod):
            try:
                m.close()
            except (BufferError, ValueError):
                pass
        try:
            self._ep.close()
        except OSError:
            pass


def drain_all(rb: RingBuffer) -> List[bytes]:
    """Every committed record as bytes (tests, small tools)."""
    out: List[bytes] = []
    rb.consume(lambda v: out.append(bytes(v)))
    return out
