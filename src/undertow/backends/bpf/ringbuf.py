"""Consumer of a ``BPF_MAP_TYPE_RINGBUF`` map through mmap (no libbpf).

Layout (kernel/bpf/ringbuf.c, Documentation/bpf/ringbuf.rst): mapping the map fd
at offset 0 gives the consumer page (read-write: ``consumer_pos`` u64); at
offset ``page_size`` the producer page (``producer_pos`` u64) followed by the
data area, mapped twice back to back so a record that wraps is contiguous.
Each record starts with an 8-byte header: ``u32 len`` (bit 31 BUSY: not yet
committed; bit 30 DISCARD: skip it) and ``u32 pg_off``; the next record starts
at ``round_up(len + 8, 8)``.

The data area is not mapped whole: a read-only mapping may start at any page of it
(``bpf_ringbuf_mmap_user`` only restricts writable mappings; ``remap_vmalloc_range``
checks the bounds), so the consumer maps a WINDOW-sized slice at its position and
moves it along. Every page of a mapping is inserted at mmap time and counts in the
process's RSS: mapping a 64 MiB ring whole (twice, for the wrap) made a one-liner's
RSS ~150 MiB; the window keeps it near 25 MiB with the same kernel buffer.

``consumer_pos`` and ``producer_pos`` are read and written through a memoryview cast to
``Q``: one aligned 8-byte load or store each (CPython's ``memoryview`` copies the item with a
fixed-size ``memcpy``). ``struct.pack_into`` must not be used on them: it zeroes the field with
``memset`` before writing the value byte by byte, and a ``bpf_ringbuf_reserve`` on another CPU
that read ``consumer_pos`` in between saw 0 (or a torn, smaller value) and, once the producer
had gone round the ring once, refused the record as if the ring were full (~1000 records per
1M lost on Linux 6.18 before this; bench/ringbuf_wrap.py).

Programs submit with ``BPF_RB_NO_WAKEUP`` and the consumer polls on a timer:
waking the reader on every event costs the traced process 5-45 us per event
(DESIGN.md); a timed poll costs nothing per event.
"""

from __future__ import annotations

import collections
import mmap
import os
import select
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Callable, Deque, List, Optional

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HDR_SIZE = 8
_U32 = struct.Struct("<I")
#: Bytes of the data area mapped at a time (a record longer than this gets its own window).
WINDOW = 2 << 20
#: When the ring is more than half full, its committed records are copied out in one go
#: (a memcpy, not a callback per record) into a user-space backlog of at most this many
#: bytes, so a burst the consumer cannot keep up with waits in user memory instead of
#: being lost when the kernel ring fills. Past the cap the programs count their losses.
#: 8 MiB (was 256): a storm the consumer cannot follow grew `undertow run` to 100-130 MB
#: RSS and kept it printing for seconds after the storm. With the 16 MiB ring this holds
#: ~200k printf records besides what the consumer (~300k/s) prints meanwhile; peak RSS
#: under a 1.2M-records/s storm: 39-40 MiB (16 MiB backlog: 47, bench/bt_storm.py).
BACKLOG_BYTES = 8 << 20
CHUNK = 4096


def u64_words(mm: mmap.mmap) -> memoryview:
    """``mm`` as native u64 words: ``w[i]`` is one aligned 8-byte load, ``w[i] = v`` one store
    (a position shared with the kernel must never be seen half-written)."""
    return memoryview(mm).cast("Q")


class RingBuffer:
    """Reads records from a ring buffer map fd of ``size`` bytes (a power of two)."""

    def __init__(self, map_fd: int, size: int, window: int = WINDOW) -> None:
        if size <= 0 or size & (size - 1):
            raise ValueError("ring buffer size must be a power of two")
        self.fd = map_fd
        self.size = size
        self.mask = size - 1
        page = self.page = mmap.PAGESIZE
        self._cons = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._prod = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self._cpos = u64_words(self._cons)  # [0]: consumer_pos
        self._ppos = u64_words(self._prod)  # [0]: producer_pos
        self.window = max(page, min(size, window))
        self._win: Optional[mmap.mmap] = None
        self._win_start = 0   # offset of the window in the (double) data area
        self._win_end = 0
        self._backlog: Deque[bytes] = collections.deque()
        self._backlog_bytes = 0
        self._backlog_pos = 0
        self.spills = 0  # times a ring over half full was moved to the backlog
        self._ep = select.epoll()
        self._ep.register(map_fd, select.EPOLLIN)

    def _map(self, rel: int, need: int) -> mmap.mmap:
        """A window over data-area bytes [rel, rel + need) (rel < size; the area is
        mapped twice back to back, so rel + need <= 2 * size stays in bounds)."""
        if self._win is not None:
            try:
                self._win.close()
            except BufferError:
                pass  # a caller kept a view: unmapped when the last reference goes
            self._win = None
        start = rel & ~(self.page - 1)
        length = max(self.window, (rel + need - start + self.page - 1) & ~(self.page - 1))
        length = min(length, 2 * self.size - start)
        self._win = mmap.mmap(self.fd, length, mmap.MAP_SHARED, mmap.PROT_READ, offset=2 * self.page + start)
        self._win_start, self._win_end = start, start + length
        return self._win

    def _spill(self) -> None:
        """Copy the committed records at the consumer position into the backlog and give
        their space back to the producers."""
        cons = self._cpos[0]
        prod = self._ppos[0]
        end = cons
        room = BACKLOG_BYTES - self._backlog_bytes
        while end < prod and end - cons < room:
            rel = end & self.mask
            win = self._win
            if win is None or rel < self._win_start or rel + HDR_SIZE > self._win_end:
                win = self._map(rel, HDR_SIZE)
            hdr = _U32.unpack_from(win, rel - self._win_start)[0]
            if hdr & BUSY_BIT:
                break
            end += ((hdr & ~(BUSY_BIT | DISCARD_BIT)) + HDR_SIZE + 7) & ~7
        if end == cons:
            return
        rel = cons & self.mask
        win = self._map(rel, end - cons)  # the area is mapped twice: a wrap is contiguous
        off = rel - self._win_start
        self._backlog.append(win[off: off + end - cons])
        self._backlog_bytes += end - cons
        self.spills += 1
        self._cpos[0] = end
        if end - cons > self.window:
            self._map(end & self.mask, HDR_SIZE)  # back to a small window (RSS)

    def _consume_backlog(self, callback: Callable[[memoryview], None], limit: int) -> int:
        n = 0
        while self._backlog and n < limit:
            blob = self._backlog[0]
            view = memoryview(blob)
            pos = self._backlog_pos
            try:
                while pos < len(blob) and n < limit:
                    hdr = _U32.unpack_from(blob, pos)[0]
                    length = hdr & ~(BUSY_BIT | DISCARD_BIT)
                    if not hdr & DISCARD_BIT:
                        callback(view[pos + HDR_SIZE: pos + HDR_SIZE + length])
                        n += 1
                    pos += (length + HDR_SIZE + 7) & ~7
            finally:
                view.release()
            if pos >= len(blob):
                self._backlog.popleft()
                self._backlog_bytes -= len(blob)
                self._backlog_pos = 0
            else:
                self._backlog_pos = pos
        return n

    def consume(self, callback: Callable[[memoryview], None], limit: int = 1 << 20) -> int:
        """Hand every committed record to ``callback`` (a memoryview valid during the call):
        the backlog's first, then the ring's."""
        n = 0
        while n < limit:
            # checked every CHUNK records: a long drain must not let the ring fill behind it
            ring = self._ppos[0] - self._cpos[0]
            if ring > self.size // 2 and self._backlog_bytes < BACKLOG_BYTES:
                self._spill()
            if self._backlog:
                n += self._consume_backlog(callback, min(limit - n, CHUNK))
                continue
            k = self._consume_ring(callback, min(limit - n, CHUNK))
            n += k
            if k < min(limit - n + k, CHUNK):
                break  # caught up
        return n

    def _consume_ring(self, callback: Callable[[memoryview], None], limit: int) -> int:
        # the per-record loop reads its names from locals (the window's bounds change only
        # when it moves): ~0.5 us less per record than attribute lookups (issue 18)
        cons = self._cpos[0]
        prod = self._ppos[0]
        n = 0
        win = self._win
        view = None
        mask = self.mask
        cpos = self._cpos
        unpack_hdr = _U32.unpack_from
        w_start, w_end = self._win_start, self._win_end
        try:
            while cons < prod and n < limit:
                rel = cons & mask
                if win is None or rel < w_start or rel + HDR_SIZE > w_end:
                    if view is not None:
                        view.release()
                        view = None
                    win = self._map(rel, HDR_SIZE)
                    w_start, w_end = self._win_start, self._win_end
                off = rel - w_start
                hdr = unpack_hdr(win, off)[0]
                if hdr & BUSY_BIT:
                    break
                length = hdr & ~(BUSY_BIT | DISCARD_BIT)
                if not hdr & DISCARD_BIT:
                    if rel + HDR_SIZE + length > w_end:
                        if view is not None:
                            view.release()
                            view = None
                        win = self._map(rel, HDR_SIZE + length)
                        w_start, w_end = self._win_start, self._win_end
                        off = rel - w_start
                    if view is None:
                        view = memoryview(win)
                    callback(view[off + HDR_SIZE: off + HDR_SIZE + length])
                    n += 1
                cons += (length + HDR_SIZE + 7) & ~7
                # publish progress so the producer can reuse the space
                cpos[0] = cons
        finally:
            if view is not None:
                view.release()
        return n

    def poll(self, timeout: Optional[float]) -> bool:
        """Wait for a wake-up (programs that submit without one are drained on the timer)."""
        return bool(self._ep.poll(-1 if timeout is None else timeout))

    def wake_on(self, fd: int) -> None:
        """Also return from :meth:`poll` when ``fd`` is readable (undertow.stop's pipe)."""
        try:
            self._ep.register(fd, select.EPOLLIN)
        except (OSError, ValueError):
            pass  # already registered

    def skip_all(self) -> None:
        """Give every record produced so far back to the producers unread (the stop counted
        them: ProgramSession.count_unread). Call once the programs have stopped: a record
        still reserved (BUSY) at that moment is skipped too, so the caller lets in-flight
        programs finish first."""
        self._backlog.clear()
        self._backlog_bytes = 0
        self._backlog_pos = 0
        self._cpos[0] = self._ppos[0]

    def pending(self) -> int:
        """Bytes produced but not consumed yet (in the ring and in the backlog)."""
        return self._ppos[0] - self._cpos[0] + self._backlog_bytes

    def close(self) -> None:
        self._cpos.release()
        self._ppos.release()
        for m in (self._cons, self._prod, self._win):
            if m is None:
                continue
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
