"""IPv4/IPv6/TCP/UDP headers and ``struct sockaddr`` as copied from syscall arguments.

Header lengths are the real ones (IPv4 IHL, TCP data offset, the IPv6
extension-header chain), never assumed fixed. Truncated or malicious input
yields a partial result with ``error`` set; nothing raises.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Optional

AF_NAMES = {0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}
IPPROTO = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre", 50: "esp", 51: "ah",
           58: "icmpv6", 132: "sctp", 136: "udplite", 255: "raw"}
TCP_FLAGS = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR")
IPV6_EXT = {0, 43, 44, 60, 51}  # hop-by-hop, routing, fragment, destination options, AH


@dataclass
class SockAddr:
    family: int
    family_name: str
    address: str = ""
    port: Optional[int] = None
    error: Optional[str] = None

    def __str__(self) -> str:
        if self.port is None:
            return self.address
        if self.family == socket.AF_INET6:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


def decode_sockaddr(data: bytes) -> SockAddr:
    """A ``struct sockaddr_*`` (family in host order, port and addresses in network order)."""
    if len(data) < 2:
        return SockAddr(-1, "?", error="shorter than sa_family")
    fam = struct.unpack_from("=H", data)[0]
    name = AF_NAMES.get(fam, f"AF_{fam}")
    sa = SockAddr(fam, name)
    if fam == socket.AF_INET:
        if len(data) < 8:
            sa.error = "sockaddr_in cut short"
            return sa
        sa.port = struct.unpack_from("!H", data, 2)[0]
        sa.address = str(ipaddress.IPv4Address(data[4:8]))
    elif fam == socket.AF_INET6:
        if len(data) < 24:
            sa.error = "sockaddr_in6 cut short"
            return sa
        sa.port = struct.unpack_from("!H", data, 2)[0]
        addr = ipaddress.IPv6Address(data[8:24])
        scope = struct.unpack_from("=I", data, 24)[0] if len(data) >= 28 else 0
        sa.address = str(addr) + (f"%{scope}" if scope else "")
    elif fam == socket.AF_UNIX:
        path = data[2:110]
        if path[:1] == b"\x00":
            sa.address = "@" + path[1:].split(b"\x00", 1)[0].decode("utf-8", "backslashreplace")
        else:
            sa.address = path.split(b"\x00", 1)[0].decode("utf-8", "backslashreplace")
    elif fam == socket.AF_NETLINK:
        if len(data) >= 12:
            pid, groups = struct.unpack_from("=II", data, 4)
            sa.address = f"pid={pid} groups={groups:#x}"
        else:
            sa.error = "sockaddr_nl cut short"
    elif fam == 17:  # AF_PACKET: sockaddr_ll
        if len(data) >= 20:
            proto, ifindex, hatype, pkttype, halen = struct.unpack_from("!H", data, 2) + \
                struct.unpack_from("=iHBB", data, 4)
            mac = ":".join(f"{b:02x}" for b in data[12:12 + min(halen, 8)])
            sa.address = f"ifindex={ifindex} proto={proto:#06x} mac={mac}"
        else:
            sa.error = "sockaddr_ll cut short"
    else:
        sa.address = data[2:].hex()
    return sa


@dataclass
class IPHeader:
    version: int
    src: str
    dst: str
    proto: int
    header_len: int
    total_len: int
    ttl: int = 0
    error: Optional[str] = None

    @property
    def proto_name(self) -> str:
        return IPPROTO.get(self.proto, str(self.proto))


def decode_ip(data: bytes) -> Optional[IPHeader]:
    """The IPv4 or IPv6 header at the start of ``data`` (None when not even the version fits)."""
    if not data:
        return None
    v = data[0] >> 4
    if v == 4:
        if len(data) < 20:
            return IPHeader(4, "", "", 0, 0, 0, error="IPv4 header cut short")
        ihl = (data[0] & 0xF) * 4
        total, ttl, proto = struct.unpack_from("!H", data, 2)[0], data[8], data[9]
        h = IPHeader(4, str(ipaddress.IPv4Address(data[12:16])), str(ipaddress.IPv4Address(data[16:20])),
                     proto, ihl, total, ttl)
        if ihl < 20:
            h.error = f"bad IHL {ihl}"
        return h
    if v == 6:
        if len(data) < 40:
            return IPHeader(6, "", "", 0, 0, 0, error="IPv6 header cut short")
        plen, nxt, hop = struct.unpack_from("!HBB", data, 4)
        h = IPHeader(6, str(ipaddress.IPv6Address(data[8:24])), str(ipaddress.IPv6Address(data[24:40])),
                     nxt, 40, plen + 40, hop)
        off = 40
        for _ in range(8):
            if h.proto not in IPV6_EXT:
                break
            if off + 2 > len(data):
                h.error = "extension header cut short"
                break
            nxt2, hlen = data[off], data[off + 1]
            size = 8 if h.proto == 44 else (hlen + 2) * 4 if h.proto == 51 else (hlen + 1) * 8
            h.proto, off = nxt2, off + size
        h.header_len = off
        return h
    return IPHeader(v, "", "", 0, 0, 0, error=f"not IP (version {v})")


@dataclass
class L4Header:
    sport: int
    dport: int
    header_len: int
    flags: str = ""
    seq: int = 0
    error: Optional[str] = None


def decode_tcp(data: bytes) -> Optional[L4Header]:
    if len(data) < 20:
        return None
    sport, dport, seq = struct.unpack_from("!HHI", data)
    doff = (data[12] >> 4) * 4
    flags = "|".join(n for i, n in enumerate(TCP_FLAGS) if data[13] & (1 << i))
    h = L4Header(sport, dport, doff, flags, seq)
    if doff < 20:
        h.error = f"bad data offset {doff}"
    return h


def decode_udp(data: bytes) -> Optional[L4Header]:
    if len(data) < 8:
        return None
    sport, dport = struct.unpack_from("!HH", data)
    return L4Header(sport, dport, 8)
