import os
import struct

from hypothesis import given, strategies as st

from undertow.tools.decode.arp import ArpWatch, decode_arp
from undertow.tools.decode.icmp import decode_icmp


def echo(payload, t=8, ident=0x42, seq=1):
    return struct.pack("!BBHHH", t, 0, 0, ident, seq) + payload


def test_iputils_and_windows_pings_are_normal():
    iputils = bytes(8) + bytes(range(0x10, 0x10 + 48))
    m = decode_icmp(echo(iputils))
    assert (m.type_name, m.id, m.seq, len(m.payload), m.indicators) == ("echo-request", 0x42, 1, 56, [])
    assert decode_icmp(echo(b"abcdefghijklmnopqrstuvwabcdefghi", t=0)).indicators == []
    assert decode_icmp(echo(bytes(1400))).indicators == []  # ping -s 1400 keeps a fill pattern


def test_tunnel_payloads_are_flagged():
    m = decode_icmp(echo(os.urandom(512)))
    assert any("unusual size" in r for r in m.indicators)
    assert any("entropy" in r for r in m.indicators)
    m = decode_icmp(echo(b"GET /c2 HTTP/1.1\r\nHost: evil.example.com\r\n\r\n"))
    assert "HTTP-like text" in m.indicators and "contains a host name" in m.indicators


def test_icmpv6_and_unreachable():
    m = decode_icmp(struct.pack("!BBHHH", 128, 0, 0, 1, 2) + bytes(56), v6=True)
    assert m.type_name == "echo-request" and m.v6
    m = decode_icmp(struct.pack("!BBHI", 3, 3, 0, 0) + bytes(28))
    assert (m.type_name, m.code_name) == ("dest-unreachable", "port")
    assert decode_icmp(b"\x08").error


def arp(op, smac, sip, tmac, tip, dst=b"\xff" * 6):
    eth = dst + smac + b"\x08\x06"
    return eth + struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + smac + bytes(sip) + tmac + bytes(tip)


def test_arp_gratuitous_and_mac_change():
    a = b"\x02\x00\x00\x00\x00\x01"
    b = b"\x02\x00\x00\x00\x00\x02"
    req = decode_arp(arp(1, a, [10, 0, 0, 1], bytes(6), [10, 0, 0, 2]))
    assert (req.op_name, req.sender_ip, req.target_ip, req.gratuitous) == ("request", "10.0.0.1", "10.0.0.2", False)
    garp = decode_arp(arp(1, b, [10, 0, 0, 1], bytes(6), [10, 0, 0, 1]))
    assert garp.gratuitous
    w = ArpWatch()
    assert w.observe(req) is None
    assert w.observe(garp) == ("10.0.0.1", "02:00:00:00:00:01", "02:00:00:00:00:02")
    assert decode_arp(b"\x00" * 13).error


@given(st.binary(max_size=100), st.booleans())
def test_random(data, v6):
    decode_icmp(data, v6)
    decode_arp(data)
    decode_arp(data, ethernet=False)
