"""`undertow icmp`: ICMP and ICMPv6 sent and received, with the process, and tunnel indicators.

Hooks (no kprobes needed), one BPF program in the bpftrace language on syscall
tracepoints, plus the kernel's own ICMP:

- ``socket()`` with protocol ICMP (1) or ICMPv6 (58) — ping sockets (``SOCK_DGRAM``) and
  raw sockets (``SOCK_RAW``) — is remembered per (process, fd); ``close()`` forgets it;
- ``sendto()``/``sendmsg()`` on such an fd copy the ICMP message (up to 512 bytes) and the
  destination; ``recvfrom()``/``recvmsg()`` copy what the process received (a raw IPv4
  socket receives the IP header first: user space skips it);
- ``icmp:icmp_send`` reports the ICMP errors the kernel itself sends (port unreachable...),
  marked ``kernel`` (no process is responsible).

User space decodes the message (tools/decode/icmp.py) and flags echo payloads unlike a
ping (size, entropy, text): an ICMP tunnel hides in pings.
"""

from __future__ import annotations

import socket
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

from .decode.icmp import decode_icmp

__all__ = ["PROGRAM", "parse_record"]

_OUT = 'printf("%s %d %d %d %d %r %r", "out", {fd}, $k.0, $k.1, $k.2, {addr}, {payload});'

PROGRAM = """
tracepoint:syscalls:sys_enter_socket /args.protocol == 1 || args.protocol == 58/
{
  @sk[tid] = (args.family, args.type & 15, args.protocol);
}

tracepoint:syscalls:sys_exit_socket
{
  $s = @sk[tid];
  if ($s.2 != 0) {
    if (args.ret >= 0) {
      @icmp[pid, args.ret] = $s;
    }
    delete(@sk[tid]);
  }
}

tracepoint:syscalls:sys_enter_close
{
  delete(@icmp[pid, args.fd]);
}

tracepoint:syscalls:sys_enter_sendto /args.len >= 4/
{
  $k = @icmp[pid, args.fd];
  if ($k.2 != 0) {
    """ + _OUT.format(fd="args.fd", addr="buf(args.addr, 28)", payload="buf(args.buff, args.len)") + """
  }
}

tracepoint:syscalls:sys_enter_sendmsg
{
  $k = @icmp[pid, args.fd];
  if ($k.2 != 0) {
    $m = (struct user_msghdr *)args.msg;
    $iov = (struct iovec *)uptr($m->msg_iov);
    """ + _OUT.format(fd="args.fd", addr="buf(uptr($m->msg_name), 28)",
                      payload="buf(uptr($iov->iov_base), $iov->iov_len)") + """
  }
}

tracepoint:syscalls:sys_enter_recvfrom
{
  $k = @icmp[pid, args.fd];
  if ($k.2 != 0) {
    @rx[tid] = (args.ubuf, args.fd, (uint64)args.addr);
  }
}

tracepoint:syscalls:sys_enter_recvmsg
{
  $k = @icmp[pid, args.fd];
  if ($k.2 != 0) {
    $m = (struct user_msghdr *)args.msg;
    $iov = (struct iovec *)uptr($m->msg_iov);
    @rx[tid] = ((uint64)uptr($iov->iov_base), args.fd, (uint64)uptr($m->msg_name));
  }
}

tracepoint:syscalls:sys_exit_recvfrom, tracepoint:syscalls:sys_exit_recvmsg
{
  $r = @rx[tid];
  if ($r.0 != 0) {
    $k = @icmp[pid, $r.1];
    if (args.ret > 0) {
      printf("%s %d %d %d %d %r %r", "in", $r.1, $k.0, $k.1, $k.2, buf(uptr($r.2), 28),
             buf(uptr($r.0), args.ret));
    }
    delete(@rx[tid]);
  }
}

tracepoint:icmp:icmp_send
{
  printf("%s %d %d %d %d %d %d %r %r", "kernel", args.type, args.code, args.sport, args.dport, args.ulen,
         0, buf(args.saddr, 4), buf(args.daddr, 4));
}
"""

_SOCK = {2: "ping", 3: "raw"}


def parse_record(rec: Any) -> Optional[Dict[str, Any]]:
    """The event a record of :data:`PROGRAM` describes (JSON-ready dict)."""
    v = rec.values
    d: Dict[str, Any] = {"ts": rec.ts, "pid": rec.pid, "tid": rec.tid, "comm": rec.comm}
    if v[0] == "kernel":
        _k, typ, code, sport, dport, ulen, _z, saddr, daddr = v
        d.update(direction="kernel", family="ipv4", socket=None, type=typ, code=code,
                 type_name=decode_icmp(bytes([typ & 0xFF, code & 0xFF, 0, 0])).type_name,
                 peer=_ip(bytes(daddr), 2), source=_ip(bytes(saddr), 2), sport=sport, dport=dport,
                 size=ulen, id=None, seq=None, indicators=[], pid=None, comm=None)
        return d
    direction, fd, fam, stype, proto, addr, payload = v
    data = bytes(payload)
    v6 = proto == 58
    if direction == "in" and stype == 3 and not v6 and data and data[0] >> 4 == 4:
        data = data[(data[0] & 0x0F) * 4:]  # a raw IPv4 socket hands over the IP header too
    m = decode_icmp(data, v6)
    peer = _sockaddr(bytes(addr))
    d.update(direction=direction, fd=fd, family="ipv6" if fam == 10 else "ipv4", socket=_SOCK.get(stype, str(stype)),
             type=m.type, code=m.code, type_name=m.type_name, id=m.id, seq=m.seq, size=len(m.payload),
             peer=peer, indicators=list(m.indicators), error=m.error)
    return d


def _ip(raw: bytes, fam: int) -> Optional[str]:
    try:
        return socket.inet_ntop(socket.AF_INET if fam == 2 else socket.AF_INET6, raw)
    except (ValueError, OSError):
        return None


def _sockaddr(raw: bytes) -> Optional[str]:
    if len(raw) < 8:
        return None
    fam = struct.unpack_from("<H", raw, 0)[0]
    if fam == 2:
        return _ip(raw[4:8], 2)
    if fam == 10 and len(raw) >= 24:
        return _ip(raw[8:24], 10)
    return None
