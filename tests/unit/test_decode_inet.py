import socket
import struct

from hypothesis import given, strategies as st

from undertow.tools.decode.inet import decode_ip, decode_sockaddr, decode_tcp, decode_udp


def test_sockaddr_in_and_in6():
    sa = decode_sockaddr(struct.pack("=H", socket.AF_INET) + struct.pack("!H", 53) + bytes([127, 0, 0, 1]) + bytes(8))
    assert (sa.family_name, sa.address, sa.port, str(sa)) == ("AF_INET", "127.0.0.1", 53, "127.0.0.1:53")
    six = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 853, 0) + socket.inet_pton(socket.AF_INET6, "::1") + struct.pack("=I", 0)
    assert str(decode_sockaddr(six)) == "[::1]:853"
    un = struct.pack("=H", socket.AF_UNIX) + b"\x00abstract\x00"
    assert decode_sockaddr(un).address == "@abstract"
    assert decode_sockaddr(b"\x02").error


def test_ipv4_options_and_tcp_doff():
    ip = bytes([0x46, 0, 0, 64]) + bytes(4) + bytes([64, 6, 0, 0]) + bytes([10, 0, 0, 1, 10, 0, 0, 2]) + bytes(4)
    h = decode_ip(ip)
    assert (h.header_len, h.src, h.dst, h.proto_name) == (24, "10.0.0.1", "10.0.0.2", "tcp")
    tcp = struct.pack("!HHII", 1234, 80, 7, 0) + bytes([0x60, 0x02]) + bytes(6) + bytes(4)
    t = decode_tcp(tcp)
    assert (t.sport, t.dport, t.header_len, t.flags) == (1234, 80, 24, "SYN")
    assert decode_udp(struct.pack("!HHHH", 5353, 53, 8, 0)).dport == 53


def test_ipv6_extension_chain():
    hdr = bytes([0x60, 0, 0, 0]) + struct.pack("!HBB", 16, 0, 64) + bytes(15) + b"\x01" + bytes(15) + b"\x01"
    hop = bytes([17, 0]) + bytes(6)  # hop-by-hop -> UDP, 8 bytes
    h = decode_ip(hdr + hop + struct.pack("!HHHH", 1, 53, 8, 0))
    assert (h.proto_name, h.header_len, h.src) == ("udp", 48, "::1")


@given(st.binary(max_size=80))
def test_random(data):
    decode_sockaddr(data)
    decode_ip(data)
    decode_tcp(data)
    decode_udp(data)
