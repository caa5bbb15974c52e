"""trace_pipe_raw page decoding on synthetic pages (layout of this machine's header_page)."""

import struct

from hypothesis import given, strategies as st

from undertow.backends.ftrace.ringbuf import RB_MISSED_EVENTS, RB_MISSED_STORED, decode_page
from undertow.kernel.formats import parse_header_page

HP = parse_header_page("""\
\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;
\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;
\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;
\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;
""")


def hdr(type_len, delta):
    return struct.pack("<I", (delta << 5) | type_len)


def page(body, ts=1000, flags=0, missed=None):
    data = body + (struct.pack("<Q", missed) if missed is not None else b"")
    raw = struct.pack("<QQ", ts, len(body) | flags) + data
    return raw + bytes(4096 - len(raw))


def rec(etype, payload=b""):
    return struct.pack("<HBBi", etype, 0, 0, 42) + payload


def test_small_large_padding_and_time_extend():
    r1 = rec(7, b"\x01\x00\x00\x00")                     # 12 bytes -> type_len 3
    big = rec(8, bytes(200))                              # > 112 bytes: type_len 0, length word
    body = hdr(3, 5) + r1
    body += hdr(0, 10) + struct.pack("<I", len(big) + 4) + big
    body += hdr(30, 3) + struct.pack("<I", 2)             # time extend: 3 + (2 << 27)
    body += hdr(3, 1) + r1
    body += hdr(29, 1) + struct.pack("<I", 8) + bytes(4)  # padding record with length
    body += hdr(3, 0) + r1
    recs, missed = decode_page(page(body), HP)
    assert missed == 0
    ts = [t for t, _, _ in recs]
    assert ts == [1005, 1015, 1015 + 3 + (2 << 27) + 1, 1015 + 3 + (2 << 27) + 1 + 1]
    p = page(body)
    (t0, s0, e0), (t1, s1, e1) = recs[0], recs[1]
    assert p[s0:e0] == r1 and p[s1:e1] == big


def test_absolute_timestamp_and_end_of_page():
    body = hdr(31, 7) + struct.pack("<I", 1) + hdr(3, 2) + rec(1, bytes(4)) + hdr(29, 0)
    recs, _ = decode_page(page(body, ts=5), HP)
    assert [t for t, _, _ in recs] == [7 + (1 << 27) + 2]


def test_missed_events_flags():
    body = hdr(3, 1) + rec(1, bytes(4))
    assert decode_page(page(body, flags=RB_MISSED_EVENTS), HP)[1] == -1
    assert decode_page(page(body, flags=RB_MISSED_EVENTS | RB_MISSED_STORED, missed=17), HP)[1] == 17


@given(st.binary(max_size=600), st.integers(0, 2 ** 64 - 1))
def test_hostile_pages_never_raise(body, commit):
    raw = struct.pack("<QQ", 0, commit) + body
    recs, _ = decode_page(raw, HP)
    for _, s, e in recs:
        assert 16 <= s <= e <= len(raw)
