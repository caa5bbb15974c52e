"""`undertow inbound`: every inbound connection attempt — completed, accepted, refused, dropped.

Hooks (tracepoints + BPF, no kprobes), one program in the bpftrace language:

- ``sock:inet_sock_set_state`` SYN_RECV -> ESTABLISHED on a TCP socket: the three-way
  handshake completed (the kernel did it; the application has not accepted it yet);
- ``accept()``/``accept4()`` returning: the socket behind the new fd
  (``curtask->files->fdt->fd[ret]->private_data->sk``) — the application accepted it;
- ``skb:kfree_skb`` with a drop reason, for packets that came in (``skb->skb_iif``): a
  TCP SYN to a port nobody listens on (``NO_SOCKET``: the kernel answers with a RST:
  refused), a UDP datagram to a closed port (``NO_SOCKET``), a full accept queue
  (``TCP_LISTEN_OVERFLOW``), a firewall drop (``NETFILTER_DROP``)... the reason's name comes
  from BTF (``enum skb_drop_reason``). Addresses and ports are read from the packet's
  IPv4/IPv6 and TCP/UDP headers.

User space names the listening process of a port from /proc (``/proc/net/tcp*`` listening
sockets -> the process holding that socket inode).
"""

from __future__ import annotations

import os
import socket
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple

__all__ = ["PROGRAM", "parse_record", "Listeners", "drop_reasons"]

PROGRAM = r"""
tracepoint:sock:inet_sock_set_state
/args.protocol == 6 && args.oldstate == 3 && args.newstate == 1/
{
  printf("%s %d %d %d %d %d %d %r %r %d", "handshake", args.skaddr, args.family, args.sport, args.dport,
         *(uint32 *)args.saddr, *(uint32 *)args.daddr, buf(args.saddr_v6, 16), buf(args.daddr_v6, 16), 0);
}

tracepoint:syscalls:sys_exit_accept4, tracepoint:syscalls:sys_exit_accept
/args.ret >= 0/
{
  $t = (struct task_struct *)curtask;
  $f = $t->files->fdt->fd[args.ret];
  $sock = (struct socket *)$f->private_data;
  $sk = $sock->sk;
  printf("%s %d %d %d %d %d %d %r %r %d", "accepted", (uint64)$sk, $sk->__sk_common.skc_family,
         $sk->__sk_common.skc_num, bswap($sk->__sk_common.skc_dport),
         $sk->__sk_common.skc_rcv_saddr, $sk->__sk_common.skc_daddr,
         buf($sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8, 16),
         buf($sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16), args.ret);
}

tracepoint:skb:kfree_skb
/args.reason > SKB_DROP_REASON_NOT_SPECIFIED && (args.protocol == 0x0800 || args.protocol == 0x86DD)/
{
  $skb = (struct sk_buff *)args.skbaddr;
  if ($skb->skb_iif != 0) {
    $nh = $skb->head + $skb->network_header;
    $th = $skb->head + $skb->transport_header;
    $ports = *(uint32 *)$th;
    $flags = *(uint8 *)($th + 13);
    if (args.protocol == 0x0800) {
      $ip = (struct iphdr *)$nh;
      printf("%s %d %d %d %d %d %d %r %r %d", "drop", args.reason, $ip->protocol, $ports, $flags,
             $ip->daddr, $ip->saddr, buf($ip->daddr, 0), buf($ip->saddr, 0), 4);
    } else {
      $ip6 = (struct ipv6hdr *)$nh;
      printf("%s %d %d %d %d %d %d %r %r %d", "drop", args.reason, $ip6->nexthdr, $ports, $flags, 0, 0,
             buf($ip6->daddr.in6_u.u6_addr8, 16), buf($ip6->saddr.in6_u.u6_addr8, 16), 6);
    }
  }
}
"""

#: Drop reasons that are not inbound attempts: data still queued on a socket being closed.
LOCAL_REASONS = frozenset(("QUEUE_PURGE", "SOCKET_CLOSE"))


def drop_reasons(kernel: Any) -> Dict[int, str]:
    """``enum skb_drop_reason`` value -> name without the ``SKB_DROP_REASON_`` prefix (from BTF)."""
    try:
        vals = kernel.btf().enum_values("skb_drop_reason")
    except Exception:  # noqa: BLE001 - names are a nicety; numbers still print
        return {}
    return {v: k.replace("SKB_DROP_REASON_", "") for k, v in vals.items()}


def _ip(raw: bytes, v6: bool) -> Optional[str]:
    try:
        return socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, raw[:16 if v6 else 4])
    except (ValueError, OSError):
        return None


def parse_record(rec: Any, reasons: Dict[int, str]) -> Optional[Dict[str, Any]]:
    """A JSON-ready event from one record of :data:`PROGRAM`.

    Every record is ``kind, a, b, c, d, local4, remote4, local6, remote6, x`` (IPv4 addresses
    as the u32 in memory order, IPv6 as 16 bytes)."""
    kind, a, b, c, dd, l4, r4, l6, r6, x = rec.values
    d: Dict[str, Any] = {"ts": rec.ts}
    if kind in ("handshake", "accepted"):
        v6 = b == socket.AF_INET6
        local = _ip(bytes(l6), True) if v6 else _ip4(l4)
        remote = _ip(bytes(r6), True) if v6 else _ip4(r4)
        if kind == "handshake":  # inet_sock_set_state: sport is the local (listening) port
            d.update(saddr=remote, sport=dd, daddr=local, dport=c)
        else:
            d.update(saddr=remote, sport=dd, daddr=local, dport=c, pid=rec.pid, comm=rec.comm, fd=x)
        d.update(outcome=kind, proto="tcp", family="ipv6" if v6 else "ipv4", reason=None, sock=hex(a))
        return d
    reason, proto, ports, flags = a, b, c, dd
    v6 = x == 6
    name = reasons.get(reason, str(reason))
    if name in LOCAL_REASONS:
        return None
    sport, dport = struct.unpack("!HH", struct.pack("<I", ports & 0xFFFFFFFF))
    pname = {6: "tcp", 17: "udp"}.get(proto)
    if pname is None:
        return None
    syn = bool(flags & 0x02) and not flags & 0x10
    if pname == "tcp" and name == "NO_SOCKET":
        outcome = "refused" if syn else "dropped"   # a SYN gets a RST; a stray segment is just dropped
    elif pname == "udp" and name == "NO_SOCKET":
        outcome = "udp-closed"
    else:
        outcome = "dropped"
    local = _ip(bytes(l6), True) if v6 else _ip4(l4)
    remote = _ip(bytes(r6), True) if v6 else _ip4(r4)
    d.update(outcome=outcome, proto=pname, family="ipv6" if v6 else "ipv4", saddr=remote, sport=sport,
             daddr=local, dport=dport, reason=name, syn=syn if pname == "tcp" else None)
    return d


def _ip4(v: int) -> Optional[str]:
    return _ip(struct.pack("<I", v & 0xFFFFFFFF), False)


class Listeners:
    """Which process listens on a port: /proc/net/{tcp,tcp6,udp,udp6} inodes -> /proc/PID/fd."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        self.by_port: Dict[Tuple[str, int], Tuple[int, str]] = {}
        self.refresh()

    def refresh(self) -> None:
        inodes: Dict[str, Tuple[str, int]] = {}
        for name, proto, want in (("tcp", "tcp", "0A"), ("tcp6", "tcp", "0A"), ("udp", "udp", "07"),
                                  ("udp6", "udp", "07")):
            try:
                with open(os.path.join(self.proc, "net", name)) as f:
                    next(f)
                    for line in f:
                        parts = line.split()
                        if len(parts) > 9 and parts[3] == want:
                            inodes[parts[9]] = (proto, int(parts[1].rsplit(":", 1)[1], 16))
            except (OSError, StopIteration, ValueError):
                continue
        found: Dict[Tuple[str, int], Tuple[int, str]] = {}
        try:
            pids = [p for p in os.listdir(self.proc) if p.isdigit()]
        except OSError:
            pids = []
        for pid in pids:
            fd_dir = os.path.join(self.proc, pid, "fd")
            try:
                fds = os.listdir(fd_dir)
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(os.path.join(fd_dir, fd))
                except OSError:
                    continue
                if target.startswith("socket:["):
                    key = inodes.get(target[8:-1])
                    if key is not None and key not in found:
                        try:
                            with open(os.path.join(self.proc, pid, "comm")) as f:
                                comm = f.read().strip()
                        except OSError:
                            comm = "?"
                        found[key] = (int(pid), comm)
        self.by_port = found

    def lookup(self, proto: str, port: int) -> Optional[Tuple[int, str]]:
        return self.by_port.get((proto, port))

