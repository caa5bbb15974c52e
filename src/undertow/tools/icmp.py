"""`undertow icmp`: ICMP and ICMPv6 sent and received, with the process, and tunnel indicators.

Hooks (no kprobes needed), one BPF program in the bpftrace language on syscall
tracepoints, plus the kernel's own ICMP:

- ``socket()`` with protocol ICMP (1) or ICMPv6 (58) — ping sockets (``SOCK_DGRAM``) and
  raw sockets (``SOCK_RAW``) — is remembered per (process, fd) in ``@icmp`` (one number:
  ``family << 16 | type << 8 | protocol``); ``close()`` forgets it. Sockets that existed
  before the tool are put in the same map at start (:func:`seed`: sock_diag, /proc/PID/net
  and /proc/PID/fd, tools/sockets.py), so a tunnel already running is seen;
- ``sendto()``/``sendmsg()``/``write()`` (and the first iovec of ``writev()``, the first
  message of ``sendmmsg()``) on such an fd note the buffer at entry and report at exit, when the kernel has done its part: a ping socket's echo id is the socket's port
  (``inet_sk(sk)->inet_sport``, bound at the first send by ``inet_send_prepare``; net/ipv4/
  ping.c ``ping_v4_sendmsg`` overwrites the id the process wrote), the peer of a connected
  socket is ``sk->__sk_common.skc_daddr``/``skc_v6_daddr``. The first ``bufsize`` bytes are
  copied for decoding, the true length is sent apart (a 1400-byte ping is 1400 bytes);
- ``recvfrom()``/``recvmsg()``/``read()`` copy what the process received (a raw IPv4
  socket receives the IP header first: user space skips it);
- ``icmp:icmp_send`` reports the ICMP errors the kernel itself sends (port unreachable...),
  marked ``kernel`` (no process is responsible), with the namespace of the packet's device.

Every record carries the network namespace (``nsproxy->net_ns``) and, for a process, its
pid namespace (``thread_pid->numbers[level].ns``: the one it runs in). User space decodes
the message (tools/decode/icmp.py) and flags echo payloads unlike a ping (size, entropy,
text): an ICMP tunnel hides in pings.
"""

from __future__ import annotations

import socket
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional, Tuple

from ..output.jsonl import templated
from .decode.icmp import ICMP_TYPES, decode_icmp

__all__ = ["PROGRAM", "TRACK_AND_RECVS", "parse_record", "event_parser", "seed", "NETNS", "PIDNS"]

#: The current task's network and pid namespace inode numbers (BTF; ``struct ns_common``).
NETNS = "((struct task_struct *)curtask)->nsproxy->net_ns->ns.inum"
PIDNS = ("((struct task_struct *)curtask)->thread_pid->numbers["
         "((struct task_struct *)curtask)->thread_pid->level].ns->ns.inum")


def _note_tx(fd: str, buf: str, length: str, addr: str) -> str:
    return f"""
  $k = @icmp[pid, {fd}];
  if ($k != 0) {{
    @tx[tid] = ($k, (uint64){fd}, (uint64){buf}, (uint64){length}, (uint64){addr});
  }}"""


def _note_rx(fd: str, buf: str, addr: str) -> str:
    return f"""
  $k = @icmp[pid, {fd}];
  if ($k != 0) {{
    @rx[tid] = ($k, (uint64){fd}, (uint64){buf}, (uint64){addr});
  }}"""


#: socket()/close(): which (process, fd) is an ICMP socket (both hook sets)
_TRACK = """
tracepoint:syscalls:sys_enter_socket /args.protocol == 1 || args.protocol == 58/
{
  @sk[tid] = (args.family << 16) | ((args.type & 15) << 8) | args.protocol;
}

tracepoint:syscalls:sys_exit_socket
{
  $s = @sk[tid];
  if ($s != 0) {
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
"""
_SENDS = """
tracepoint:syscalls:sys_enter_sendto /args.len >= 4/
{""" + _note_tx("args.fd", "args.buff", "args.len", "args.addr") + """
}

tracepoint:syscalls:sys_enter_write /args.count >= 4/
{""" + _note_tx("args.fd", "args.buf", "args.count", "0") + """
}

tracepoint:syscalls:sys_enter_sendmsg
{
  $m = (struct user_msghdr *)args.msg;
  $iov = (struct iovec *)uptr($m->msg_iov);""" + _note_tx("args.fd", "$iov->iov_base", "$iov->iov_len",
                                                          "$m->msg_name") + """
}

tracepoint:syscalls:sys_enter_writev
{
  $v = (struct iovec *)args.vec;""" + _note_tx("args.fd", "$v->iov_base", "$v->iov_len", "0") + """
}

tracepoint:syscalls:sys_enter_sendmmsg
{
  $mm = (struct mmsghdr *)args.mmsg;""" + _note_tx("args.fd", "((struct iovec *)uptr($mm->msg_hdr.msg_iov))->iov_base",
                                                  "((struct iovec *)uptr($mm->msg_hdr.msg_iov))->iov_len",
                                                  "$mm->msg_hdr.msg_name") + """
}

tracepoint:syscalls:sys_exit_sendto, tracepoint:syscalls:sys_exit_write, tracepoint:syscalls:sys_exit_sendmsg,
tracepoint:syscalls:sys_exit_writev, tracepoint:syscalls:sys_exit_sendmmsg
{
  $x = @tx[tid];
  if ($x.0 != 0) {
    delete(@tx[tid]);
    if (args.ret >= 0) {
      $t = (struct task_struct *)curtask;
      $sk = ((struct socket *)$t->files->fdt->fd[$x.1]->private_data)->sk;
      $id = 0;
      if ((($x.0 >> 8) & 15) == 2) {
        $id = bswap(((struct inet_sock *)$sk)->inet_sport);
      }
      printf("%s %d %d %d %d %d %d %d %r %r %r", "out", $x.1, $x.0, $x.3, $id, NETNS, PIDNS,
             $sk->__sk_common.skc_daddr, buf(uptr($x.4), 28),
             buf($sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16), buf(uptr($x.2), $x.3));
    }
  }
}
"""
_RECVS = """
tracepoint:syscalls:sys_enter_recvfrom
{""" + _note_rx("args.fd", "args.ubuf", "args.addr") + """
}

tracepoint:syscalls:sys_enter_read
{""" + _note_rx("args.fd", "args.buf", "0") + """
}

tracepoint:syscalls:sys_enter_recvmsg
{
  $m = (struct user_msghdr *)args.msg;
  $iov = (struct iovec *)uptr($m->msg_iov);""" + _note_rx("args.fd", "$iov->iov_base", "$m->msg_name") + """
}

tracepoint:syscalls:sys_exit_recvfrom, tracepoint:syscalls:sys_exit_recvmsg, tracepoint:syscalls:sys_exit_read
{
  $r = @rx[tid];
  if ($r.0 != 0) {
    delete(@rx[tid]);
    if (args.ret > 0) {
      $t = (struct task_struct *)curtask;
      $sk = ((struct socket *)$t->files->fdt->fd[$r.1]->private_data)->sk;
      printf("%s %d %d %d %d %d %d %d %r %r %r", "in", $r.1, $r.0, args.ret, 0, NETNS, PIDNS,
             $sk->__sk_common.skc_daddr, buf(uptr($r.3), 28),
             buf($sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16), buf(uptr($r.2), args.ret));
    }
  }
}

tracepoint:icmp:icmp_send
{
  $skb = (struct sk_buff *)args.skbaddr;
  $ns = 0;
  if ($skb->dev != 0) {
    $ns = $skb->dev->nd_net.net->ns.inum;
  }
  printf("%s %d %d %d %d %d %d %r %r", "kernel", args.type, args.code, args.sport, args.dport, args.ulen,
         $ns, buf(args.saddr, 4), buf(args.daddr, 4));
}
"""

#: The tracepoint set's program (every kernel).
PROGRAM = (_TRACK + _SENDS + _RECVS).replace("NETNS", NETNS).replace("PIDNS", PIDNS)
#: What the kprobe set keeps (tools/icmp_kprobes.py adds the sends).
TRACK_AND_RECVS = (_TRACK + _RECVS).replace("NETNS", NETNS).replace("PIDNS", PIDNS)

_SOCK = {2: "ping", 3: "raw"}


def seed(session: Any, proc: str = "/proc") -> int:
    """Put the ICMP sockets that exist now (raw and ping, IPv4 and IPv6, any namespace) into
    ``@icmp`` under every (pid, fd) holding one; returns how many entries."""
    from ..kernel.bpfsys import map_update_elem
    from .sockets import find_sockets

    fd_map = session.map_fds.get("@icmp")
    if fd_map is None:
        return 0
    n = 0
    found = find_sockets([(socket.AF_INET, socket.IPPROTO_RAW, 1), (socket.AF_INET6, socket.IPPROTO_RAW, 58)],
                         ["raw", "raw6", "icmp", "icmp6"], proc=proc)
    for s, pid, fd in found:
        if s.protocol not in (1, 58) or s.type not in (2, 3):
            continue
        key = (s.family << 16) | (s.type << 8) | s.protocol
        map_update_elem(fd_map, struct.pack("<QQ", pid, fd), struct.pack("<Q", key))
        n += 1
    return n


def parse_record(rec: Any) -> Optional[Dict[str, Any]]:
    """The event a record of :data:`PROGRAM` describes (JSON-ready dict)."""
    v = rec.values
    if v[0] == "kernel":
        _k, typ, code, sport, dport, ulen, netns, saddr, daddr = v
        d: Dict[str, Any] = {"ts": rec.ts, "pid": rec.pid, "tid": rec.tid, "comm": rec.comm}
        d.update(direction="kernel", family="ipv4", socket=None, type=typ, code=code,
                 type_name=ICMP_TYPES.get(typ & 0xFF) or f"type-{typ & 0xFF}",  # decode_icmp's name
                 peer=_ip(bytes(daddr), 2), source=_ip(bytes(saddr), 2), sport=sport, dport=dport,
                 size=ulen, id=None, seq=None, indicators=[], pid=None, tid=None, comm=None,
                 netns=netns or None, pidns=None)
        return d
    direction, fd, key, length, ident, netns, pidns, daddr4, addr, daddr6, payload = v
    fam, stype, proto = (key >> 16) & 0xFFFF, (key >> 8) & 0xF, key & 0xFF
    data = bytes(payload)
    v6 = proto == 58
    if direction == "in" and stype == 3 and not v6 and data and data[0] >> 4 == 4:
        ihl = (data[0] & 0x0F) * 4
        data, length = data[ihl:], length - ihl  # a raw IPv4 socket hands over the IP header too
    m = decode_icmp(data, v6, size=length)
    if m.id is not None:
        m.id = _echo_id(direction, stype, ident, m.id)
    peer = _sockaddr(bytes(addr))
    if peer is None:  # send()/write() on a connected socket, read(): the socket's peer
        raw6 = bytes(daddr6)
        peer = _ip(raw6, 10) if fam == 10 and any(raw6) else (
            _ip(struct.pack("<I", daddr4 & 0xFFFFFFFF), 2) if daddr4 else None)
    # one dict display, not a dict of keywords merged into another (~0.7 us less per event)
    return {"ts": rec.ts, "pid": rec.pid, "tid": rec.tid, "comm": rec.comm, "direction": direction, "fd": fd,
            "family": "ipv6" if fam == 10 else "ipv4", "socket": _SOCK.get(stype, str(stype)),
            "type": m.type, "code": m.code, "type_name": m.type_name, "id": m.id, "seq": m.seq,
            "size": max(0, length - (8 if m.is_echo else 4)), "captured": len(m.payload),
            "peer": peer, "indicators": list(m.indicators), "error": m.error, "netns": netns or None,
            "pidns": pidns or None}


def _echo_id(direction: str, stype: int, ident: int, msg_id: int) -> int:
    """The id an echo's event shows: a request sent on a ping socket carries the kernel's
    (the reply carries it: ping_v4_sendmsg), any other the message's."""
    return ident if direction == "out" and stype == 2 and ident else msg_id


def event_parser() -> Callable[[Any], Optional[Dict[str, Any]]]:
    """:func:`parse_record` with a memo: a flood (one process pinging one peer, one payload)
    sends records that differ only in the echo's checksum, id and sequence number. The event
    of a message whose record was seen before (its values less those 6 bytes, the pid and
    comm) is a copy of the first one's with its own ts, tid, id and seq, written through the
    first one's JSON template (output/jsonl.Template; ~8 us less per echo than the
    message's decode, its dict and the encoder's walk, issue 18). What the kernel sends and
    what a raw IPv4 socket reads (the IP header first) are parsed each."""
    seen: Dict[Tuple[Any, ...], Dict[str, Any]] = {}  # bounded

    def parse(rec: Any) -> Optional[Dict[str, Any]]:
        v = rec.values
        if v[0] == "kernel":
            return parse_record(rec)
        direction, fd, key, length, ident, netns, pidns, daddr4, addr, daddr6, payload = v
        stype = (key >> 8) & 0xF
        if len(payload) < 8 or (direction == "in" and stype == 3 and key & 0xFF != 58):
            return parse_record(rec)
        k = (direction, fd, key, length, ident, netns, pidns, daddr4, addr, daddr6, payload[:2], payload[8:],
             rec.pid, rec.comm)
        first = seen.get(k)
        if first is not None:
            d = first.copy()
            d["ts"], d["tid"] = rec.ts, rec.tid
            if d["seq"] is not None:  # an echo: the bytes after the checksum
                d["id"] = _echo_id(direction, stype, ident, (payload[4] << 8) | payload[5])
                d["seq"] = (payload[6] << 8) | payload[7]
            return d
        d = parse_record(rec)
        if d is None:
            return None
        d = templated(d, ("ts", "tid", "id", "seq") if d["seq"] is not None else ("ts", "tid"))
        if len(seen) >= 1024:
            seen.clear()
        seen[k] = d
        return d
    return parse


def _ip(raw: bytes, fam: int) -> Optional[str]:
    try:
        return socket.inet_ntop(socket.AF_INET if fam == 2 else socket.AF_INET6, raw)
    except (ValueError, OSError):
        return None


#: sockaddr bytes -> the address's text, of the destinations seen last (bounded): a flood's
#: repeat (~0.5 us less per event, issue 18)
_PEERS: Dict[bytes, Optional[str]] = {}


def _sockaddr(raw: bytes) -> Optional[str]:
    if raw in _PEERS:
        return _PEERS[raw]
    text = _sockaddr_text(raw)
    if len(_PEERS) >= 1024:
        _PEERS.clear()
    _PEERS[raw] = text
    return text


def _sockaddr_text(raw: bytes) -> Optional[str]:
    if len(raw) < 8:
        return None
    fam = struct.unpack_from("<H", raw, 0)[0]
    if fam == 2:
        return _ip(raw[4:8], 2)
    if fam == 10 and len(raw) >= 24:
        return _ip(raw[8:24], 10)
    return None
