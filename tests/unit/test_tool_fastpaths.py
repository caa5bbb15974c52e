"""The per-event shortcuts of issue 18's CPU work give what the plain code gives."""

from __future__ import annotations

import time

from undertow.output.text import hms_now
from undertow.tools.decode import icmp as dicmp


def test_hms_now_is_strftime():
    for _ in range(3):
        before = time.strftime("%H:%M:%S")
        got = hms_now()
        after = time.strftime("%H:%M:%S")
        assert got in (before, after)


def _counting_by_loop(data: bytes) -> bool:
    return len(data) > 0 and all(data[i] == (data[0] + i) & 0xFF for i in range(len(data)))


def test_counting_fill_as_the_byte_loop():
    cases = [b"", b"\x00", bytes(range(8, 56)), bytes(range(250, 256)) + bytes(range(0, 10)),
             bytes((i + 7) & 0xFF for i in range(700)), bytes((i + 7) & 0xFF for i in range(769)),
             bytes((i + 255) & 0xFF for i in range(2000)), bytes(range(8, 56)) + b"x", b"\x05\x06\x08"]
    for data in cases:
        assert dicmp._counting(data) == _counting_by_loop(data), data[:16]


def test_tunnel_indicators_memo_hands_out_copies():
    payload = b"undertow-bench GET / HTTP/1.1"
    first = dicmp.tunnel_indicators(payload, len(payload))
    first.append("changed by a caller")
    again = dicmp.tunnel_indicators(payload, len(payload))
    assert again == dicmp._judge(payload, len(payload)) and "changed by a caller" not in again
    assert dicmp.tunnel_indicators(bytes(range(8, 56))) == []
