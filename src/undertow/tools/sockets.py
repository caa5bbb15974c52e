"""Sockets that exist before a tool starts, and the processes that hold them.

A tool that learns about sockets from ``socket()``/``connect()`` calls misses every socket
made before it started: a running ICMP tunnel, an ARP spoofer's ``AF_PACKET`` socket, a
resolver's UDP socket connected to port 53 long ago. At start the tools read:

- the kernel's socket tables through ``NETLINK_SOCK_DIAG`` (``SOCK_DIAG_BY_FAMILY``, the
  interface of ``ss``; ``include/uapi/linux/inet_diag.h``, ``packet_diag.h``): inet sockets
  (UDP, TCP, and raw sockets through ``raw_diag``, which dumps every raw socket when asked for
  ``IPPROTO_RAW``; the real protocol is ``inet_sport``, net/ipv4/raw_diag.c) and packet
  sockets. A netlink socket sees the namespace it was made in: the tool's own;
- for processes in other network namespaces, and for ping sockets (``SOCK_DGRAM`` ICMP, which
  sock_diag does not dump: no ping handler in net/ipv4/inet_diag.c), the same tables as
  ``/proc/PID/net/{udp,tcp,raw,icmp,packet}[6]`` (seq files of the process's namespace);
- ``/proc/PID/fd``: which (process, fd) holds which socket inode (``socket:[N]`` links, read
  with ``readlink``, never followed).

Everything here is best effort: a process that exits while being read is skipped. Only the
standard library's ``socket`` module is used (no ``ss``, no ctypes).
"""

from __future__ import annotations

import os
import socket
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, Iterable, Iterator, List, Optional, Tuple

__all__ = ["Sock", "inet_diag", "packet_diag", "proc_net", "socket_fds", "find_sockets"]

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
AF_PACKET = 17


class Sock:
    """One socket: ``inode`` (what /proc/PID/fd links name), ``family`` (AF_*), ``type``
    (SOCK_*), ``protocol`` (IPPROTO_* / ethertype for packet sockets), ``dport`` and ``dst``
    (the peer, for connected inet sockets), ``netns`` (inode of the namespace it was seen in)."""

    __slots__ = ("inode", "family", "type", "protocol", "dport", "dst", "netns")

    def __init__(self, inode: int, family: int, type_: int, protocol: int, dport: int = 0,
                 dst: Optional[str] = None, netns: Optional[int] = None) -> None:
        self.inode, self.family, self.type, self.protocol = inode, family, type_, protocol
        self.dport, self.dst, self.netns = dport, dst, netns

    def __repr__(self) -> str:
        return (f"Sock(inode={self.inode}, family={self.family}, type={self.type}, protocol={self.protocol}, "
                f"dport={self.dport}, dst={self.dst!r})")


def _dump(req: bytes) -> Iterator[bytes]:
    """Send one sock_diag dump request; yield each answer's payload (after ``nlmsghdr``)."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(2.0)
        nl.send(struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + req)
        while True:
            data = nl.recv(65536)
            if not data:
                return
            off = 0
            while off + 16 <= len(data):
                ln, typ, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, off)
                if ln < 16 or off + ln > len(data):
                    return
                if typ == NLMSG_DONE:
                    return
                if typ == NLMSG_ERROR:
                    return  # e.g. ENOENT: no handler for this protocol (module not loaded)
                yield data[off + 16:off + ln]
                off += (ln + 3) & ~3


def _addr(family: int, raw: bytes) -> str:
    return socket.inet_ntop(family, raw[:4] if family == socket.AF_INET else raw[:16])


def inet_diag(family: int, protocol: int, raw_protocol: int = 0) -> List[Sock]:
    """Inet sockets of ``family`` (AF_INET, AF_INET6) and ``protocol`` (IPPROTO_UDP,
    IPPROTO_TCP; IPPROTO_RAW for raw sockets, then only those of ``raw_protocol``) in the
    caller's network namespace, every state (``struct inet_diag_req_v2`` /
    ``struct inet_diag_msg``)."""
    # inet_diag_req_v2: family, protocol, ext, pad (raw_diag: sdiag_raw_protocol), states,
    # inet_diag_sockid (sport, dport, src[16], dst[16], if, cookie[2])
    req = struct.pack("=BBBBI", family, protocol, 0, raw_protocol if protocol == socket.IPPROTO_RAW else 0,
                      0xFFFFFFFF) + bytes(48)
    styp = {socket.IPPROTO_TCP: socket.SOCK_STREAM, socket.IPPROTO_RAW: socket.SOCK_RAW}.get(protocol,
                                                                                           socket.SOCK_DGRAM)
    out: List[Sock] = []
    try:
        for msg in _dump(req):
            if len(msg) < 72:
                continue
            fam = msg[0]
            sport, dport = struct.unpack_from(">HH", msg, 4)
            dst = msg[24:40]
            inode = struct.unpack_from("=I", msg, 68)[0]
            proto = protocol
            if protocol == socket.IPPROTO_RAW:
                proto = sport  # a raw socket's "port" is its protocol (inet_num)
                if raw_protocol and proto != raw_protocol:
                    continue
            try:
                peer = _addr(fam, dst) if dport or protocol == socket.IPPROTO_RAW else None
            except (ValueError, OSError):
                peer = None
            out.append(Sock(inode, fam, styp, proto, dport, peer))
    except OSError:
        pass  # no sock_diag (CONFIG_INET_DIAG=n), or not allowed: the /proc tables remain
    return out


def packet_diag() -> List[Sock]:
    """The packet (``AF_PACKET``) sockets of the caller's network namespace
    (``struct packet_diag_req`` / ``struct packet_diag_msg``)."""
    req = struct.pack("=BBHIIII", AF_PACKET, 0, 0, 0, 0, 0, 0)
    out: List[Sock] = []
    try:
        for msg in _dump(req):
            if len(msg) < 16:
                continue
            _fam, typ, num, inode = struct.unpack_from("=BBHI", msg, 0)
            out.append(Sock(inode, AF_PACKET, typ, socket.ntohs(num)))
    except OSError:
        pass
    return out


def _hex_addr(text: str, family: int) -> Optional[str]:
    """An address of /proc/net/{udp,tcp,raw,icmp}[6]: the kernel prints each 32-bit word of
    the network-order address as a host-order hex number (``%08X``)."""
    try:
        words = [int(text[i:i + 8], 16) for i in range(0, len(text), 8)]
        return socket.inet_ntop(family, b"".join(struct.pack("=I", w) for w in words))
    except (ValueError, OSError, struct.error):
        return None


_INET_TABLES = (("udp", socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP),
                ("udp6", socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP),
                ("tcp", socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP),
                ("tcp6", socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP),
                ("raw", socket.AF_INET, socket.SOCK_RAW, 0),
                ("raw6", socket.AF_INET6, socket.SOCK_RAW, 0),
                ("icmp", socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP),
                ("icmp6", socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6))


def proc_net(pid: int, tables: Iterable[str], proc: str = "/proc") -> List[Sock]:
    """Sockets of process ``pid``'s network namespace from ``/proc/PID/net/<table>``
    (``udp tcp raw icmp packet``, ``6`` for IPv6). ``raw``: the local port is the protocol;
    ``icmp``/``icmp6``: ping sockets."""
    want = set(tables)
    out: List[Sock] = []
    for name, fam, styp, proto in _INET_TABLES:
        if name not in want:
            continue
        for cols in _rows(os.path.join(proc, str(pid), "net", name)):
            if len(cols) < 10 or ":" not in cols[1] or ":" not in cols[2]:
                continue
            laddr, lport = cols[1].split(":", 1)
            raddr, rport = cols[2].split(":", 1)
            try:
                inode, lp, rp = int(cols[9]), int(lport, 16), int(rport, 16)
            except ValueError:
                continue
            p = lp if styp == socket.SOCK_RAW else proto
            peer = _hex_addr(raddr, fam) if rp or styp == socket.SOCK_RAW else None
            out.append(Sock(inode, fam, styp, p, rp, peer))
    if "packet" in want:
        for cols in _rows(os.path.join(proc, str(pid), "net", "packet")):
            # sk RefCnt Type Proto Iface R Rmem User Inode
            if len(cols) < 9:
                continue
            try:
                out.append(Sock(int(cols[8]), AF_PACKET, int(cols[2]), int(cols[3], 16)))
            except ValueError:
                continue
    return out


def _rows(path: str) -> List[List[str]]:
    try:
        with open(path, "rb") as f:
            text = f.read(8 << 20).decode("ascii", "replace")
    except OSError:
        return []
    return [line.split() for line in text.splitlines()[1:]]


def _socket_inode(link: str) -> int:
    if link.startswith("socket:[") and link.endswith("]"):
        try:
            return int(link[8:-1])
        except ValueError:
            return 0
    return 0


def socket_fds(proc: str = "/proc") -> Tuple[Dict[int, List[Tuple[int, int]]], Dict[int, int]]:
    """Every socket fd on the host: ``{inode: [(pid, fd), ...]}`` from ``/proc/PID/fd``
    (``readlink``: ``socket:[N]``), and ``{pid: netns inode}`` of the processes holding one."""
    from .common import ns_inode

    from .proc import fd_entries

    owners: Dict[int, List[Tuple[int, int]]] = {}
    netns: Dict[int, int] = {}
    for pid, fd, path in fd_entries(proc):
        try:
            ino = _socket_inode(os.readlink(path))
        except OSError:
            continue
        if ino:
            owners.setdefault(ino, []).append((pid, fd))
            if pid not in netns:
                ns = ns_inode("net", str(pid), proc)
                if ns is not None:
                    netns[pid] = ns
    return owners, netns


def find_sockets(diag: Iterable[Tuple[int, int, int]], tables: Iterable[str], packet: bool = False,
                 proc: str = "/proc") -> List[Tuple[Sock, int, int]]:
    """Sockets that exist now, each with a process and fd holding it: ``[(sock, pid, fd)]``.

    ``diag``: the sock_diag dumps to make in the tool's namespace, ``(family, protocol,
    raw_protocol)`` (see :func:`inet_diag`); ``packet``: also :func:`packet_diag`; ``tables``:
    the ``/proc/PID/net`` tables read in every network namespace that a process holding a
    socket is in (other namespaces; ping sockets; raw sockets where raw_diag is not built)."""
    from .common import ns_inode

    owners, netns = socket_fds(proc)
    mine = ns_inode("net", "self", proc)
    socks: Dict[int, Sock] = {}
    for fam, proto, rawp in diag:
        for s in inet_diag(fam, proto, rawp):
            s.netns = mine
            socks[s.inode] = s
    if packet:
        for s in packet_diag():
            s.netns = mine
            socks[s.inode] = s
    tables = list(tables)
    seen_ns = set()
    for pid, ns in netns.items():
        if ns in seen_ns:
            continue
        seen_ns.add(ns)
        # every namespace's /proc tables: the other namespaces, ping sockets (not in
        # sock_diag), and what sock_diag cannot dump here (raw sockets without
        # CONFIG_INET_RAW_DIAG); sock_diag's answer wins where both have a socket
        for s in proc_net(pid, tables, proc):
            s.netns = ns
            socks.setdefault(s.inode, s)
    out: List[Tuple[Sock, int, int]] = []
    for ino, s in socks.items():
        for pid, fd in owners.get(ino, ()):
            out.append((s, pid, fd))
    return out
