"""A record decoded in one unpack gives what decoding value by value gives."""

from __future__ import annotations

import struct

import pytest

from undertow.backends.bpf.layout import Slot, decode, decoder


def by_value(args, raw):
    return [decode(s, raw[o:o + s.size]) for o, s in args]


CASES = [
    [(0, Slot("int", 8)), (8, Slot("int", 8, signed=True)), (16, Slot("ksym", 8))],
    [(0, Slot("int", 8)), (8, Slot("str", 16)), (24, Slot("int", 8, signed=True)), (32, Slot("str", 7))],
    [(8, Slot("int", 8)), (24, Slot("str", 8))],            # gaps
    [(0, Slot("kstack", 8)), (8, Slot("timestamp", 8))],
    # buf() values (a length, then the bytes) and byte arrays, between strings and integers
    [(0, Slot("int", 8)), (8, Slot("buf", 24)), (32, Slot("str", 16)), (48, Slot("buf", 16)),
     (64, Slot("bytes", 6)), (72, Slot("int", 8, signed=True))],
    [(0, Slot("buf", 520)), (520, Slot("record", 16))],
]


@pytest.mark.parametrize("args", CASES)
def test_same_values(args):
    size = max(o + s.size for o, s in args)
    for raw in (bytes(range(256))[:size], b"\xff" * size, b"ab\x00cd\xfe\xff" * (size // 7 + 1),
                ("snowman \u2603 and \udcff".encode("utf-8", "surrogateescape") * 8)[:size]):
        raw = raw.ljust(size, b"\x00")
        assert decoder(args)(raw) == by_value(args, raw)
    # buf() lengths: empty, short, exact, longer than the buffer (the kernel's count is not trusted)
    for n in (0, 3, 8, 16, 2 ** 64 - 1):
        raw = bytearray(b"\xab" * size)
        for o, s in args:
            if s.kind == "buf":
                raw[o:o + 8] = n.to_bytes(8, "little")
        assert decoder(args)(bytes(raw)) == by_value(args, bytes(raw))


def test_other_layouts_have_none():
    assert decoder([(0, Slot("int", 8)), (8, Slot("usym", 16))]) is None
    assert decoder([(0, Slot("int", 4))]) is None
    assert decoder([(0, Slot("tuple", 16, elems=[(0, Slot("int", 8)), (8, Slot("int", 8))]))]) is None
    assert decoder([(8, Slot("int", 8)), (0, Slot("int", 8))]) is None  # out of order


def test_short_payload_raises():
    with pytest.raises(struct.error):
        decoder([(0, Slot("int", 8)), (8, Slot("int", 8))])(b"\x00" * 12)
