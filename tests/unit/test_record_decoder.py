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
]


@pytest.mark.parametrize("args", CASES)
def test_same_values(args):
    size = max(o + s.size for o, s in args)
    for raw in (bytes(range(256))[:size], b"\xff" * size, b"ab\x00cd\xfe\xff" * (size // 7 + 1),
                ("snowman \u2603 and \udcff".encode("utf-8", "surrogateescape") * 8)[:size]):
        raw = raw.ljust(size, b"\x00")
        assert decoder(args)(raw) == by_value(args, raw)


def test_other_layouts_have_none():
    assert decoder([(0, Slot("int", 8)), (8, Slot("bytes", 4))]) is None
    assert decoder([(0, Slot("int", 4))]) is None
    assert decoder([(0, Slot("tuple", 16, elems=[(0, Slot("int", 8)), (8, Slot("int", 8))]))]) is None
    assert decoder([(8, Slot("int", 8)), (0, Slot("int", 8))]) is None  # out of order


def test_short_payload_raises():
    with pytest.raises(struct.error):
        decoder([(0, Slot("int", 8)), (8, Slot("int", 8))])(b"\x00" * 12)
