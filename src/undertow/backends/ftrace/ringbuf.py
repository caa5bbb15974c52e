"""Decoding ftrace ring-buffer pages as read from ``per_cpu/cpuN/trace_pipe_raw``.

Layout (kernel/trace/ring_buffer.c, Documentation/trace/ring-buffer-design.rst;
the offsets come from ``events/header_page`` and ``events/header_event``):

- page: ``u64 timestamp`` (time of the first event), ``local_t commit`` (bytes of
  data; flag bits ``RB_MISSED_EVENTS`` 1<<31: events were lost before this page,
  ``RB_MISSED_STORED`` 1<<30: their count is stored as an ``unsigned long`` right
  after the data), then the data.
- event header: one u32, ``type_len`` (5 low bits) and ``time_delta`` (27 high bits).
  ``type_len`` 1..28: a data record of ``type_len * 4`` bytes follows; 0: the
  next u32 (``array[0]``) holds the data length + 4 and the data follows it;
  29: padding (``time_delta == 0``: the rest of the page is empty, else
  ``array[0]`` bytes of padding); 30: time extend (delta = time_delta +
  array[0] << 27); 31: absolute time stamp (same encoding).

Hostile or truncated pages end decoding cleanly; nothing here raises.
"""

from __future__ import annotations

import struct
from typing import Iterator, List, Tuple

from ...kernel.formats import HeaderPage

RB_MISSED_EVENTS = 1 << 31
RB_MISSED_STORED = 1 << 30
_FLAGS = RB_MISSED_EVENTS | RB_MISSED_STORED
PADDING, TIME_EXTEND, TIME_STAMP = 29, 30, 31

_U32 = struct.Struct("<I")


def decode_page(page: bytes, hp: HeaderPage) -> Tuple[List[Tuple[int, int, int]], int]:
    """``([(ts, start, end), ...], missed)`` for one page.

    ``start:end`` is a record (beginning with ``common_type``); ``missed`` is the
    number of events the kernel dropped before this page (-1: some, count unknown).
    """
    out: List[Tuple[int, int, int]] = []
    if len(page) < hp.data_offset:
        return out, 0
    ts = int.from_bytes(page[hp.timestamp_offset: hp.timestamp_offset + hp.timestamp_size], "little")
    commit = int.from_bytes(page[hp.commit_offset: hp.commit_offset + hp.commit_size], "little")
    flags = commit & _FLAGS
    length = commit & ~_FLAGS & ((1 << (8 * hp.commit_size)) - 1)
    end = min(len(page), hp.data_offset + length)
    missed = 0
    if flags & RB_MISSED_EVENTS:
        missed = -1
        if flags & RB_MISSED_STORED and end + hp.commit_size <= len(page):
            missed = int.from_bytes(page[end: end + hp.commit_size], "little")
    pos = hp.data_offset
    unpack = _U32.unpack_from
    while pos + 4 <= end:
        (word,) = unpack(page, pos)
        tl = word & 31
        delta = word >> 5
        if tl == 0:
            if pos + 8 > end:
                break
            (ln,) = unpack(page, pos + 4)
            ts += delta
            nxt = pos + 4 + ln
            if ln < 4 or nxt > end:
                break
            out.append((ts, pos + 8, nxt))
        elif tl <= 28:
            ts += delta
            nxt = pos + 4 + tl * 4
            if nxt > end:
                break
            out.append((ts, pos + 4, nxt))
        elif tl == PADDING:
            if delta == 0 or pos + 8 > end:
                break
            (ln,) = unpack(page, pos + 4)
            nxt = pos + 4 + ln
            ts += delta
        elif tl == TIME_EXTEND:
            if pos + 8 > end:
                break
            (hi,) = unpack(page, pos + 4)
            ts += delta + (hi << 27)
            nxt = pos + 8
        else:  # TIME_STAMP: absolute
            if pos + 8 > end:
                break
            (hi,) = unpack(page, pos + 4)
            ts = (delta + (hi << 27)) | (ts & ~((1 << 59) - 1))
            nxt = pos + 8
        if nxt <= pos:
            break
        pos = nxt
    return out, missed


def iter_pages(data: bytes, page_size: int) -> Iterator[bytes]:
    """Split a read of several pages into pages (a read returns whole pages)."""
    for off in range(0, len(data), page_size):
        yield data[off: off + page_size]
