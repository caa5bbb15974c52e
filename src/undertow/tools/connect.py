"""`undertow connect`: outbound TCP connects with their outcome and how long they took,
and UDP ``connect()`` calls (a default peer set, or refused at once: ENETUNREACH...).

One BPF program (bpftrace language) on ``sock:inet_sock_set_state``, no kprobes:

- CLOSE -> SYN_SENT happens inside ``connect()``: the process (pid, comm) and the time are
  saved per socket;
- SYN_SENT -> ESTABLISHED: established, with the handshake's latency;
- SYN_SENT -> CLOSE: failed; why is ``sk->sk_err`` (read through BTF), which the kernel
  sets just before (``tcp_reset``: ECONNREFUSED; ``tcp_write_err``: ETIMEDOUT;
  ``tcp_v4_err``: EHOSTUNREACH/ENETUNREACH from an ICMP error); 0 means the process gave up
  (closed the socket first);
- UDP: ``connect()`` on a ``SOCK_DGRAM`` socket (``curtask->files->fdt->fd[fd]->private_data``,
  BTF) is reported at its return with the result.
"""

from __future__ import annotations

import errno
import socket
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

__all__ = ["PROGRAM", "parse_record", "OUTCOMES", "in_progress"]

PROGRAM = r"""
tracepoint:syscalls:sys_enter_connect
{
  $f = ((struct task_struct *)curtask)->files->fdt->fd[args.fd];
  $sock = (struct socket *)$f->private_data;
  if ($sock->type == 2) {
    @u[tid] = ((uint64)args.uservaddr, nsecs);
  }
}

tracepoint:syscalls:sys_exit_connect
{
  $u = @u[tid];
  if ($u.0 != 0) {
    $sa = (struct sockaddr_in *)uptr($u.0);
    $s6 = (struct sockaddr_in6 *)uptr($u.0);
    printf("%d %d %s %d %d %d %d %d %d %d %r %r", pid, nsecs - $u.1, comm, 100, -args.ret, $sa->sin_family,
           0, bswap($sa->sin_port), 0, $sa->sin_addr.s_addr, buf($s6->sin6_addr.in6_u.u6_addr8, 16),
           buf($s6->sin6_addr.in6_u.u6_addr8, 16));
    delete(@u[tid]);
  }
}

tracepoint:sock:inet_sock_set_state /args.protocol == 6/
{
  if (args.newstate == 2) {
    @c[args.skaddr] = (nsecs, pid, comm, args.family, args.dport, *(uint32 *)args.daddr, buf(args.daddr_v6, 16));
  }
  if (args.oldstate == 2) {
    $c = @c[args.skaddr];
    if ($c.0 != 0) {
      $sk = (struct sock *)args.skaddr;
      printf("%d %d %s %d %d %d %d %d %d %d %r %r", $c.1, nsecs - $c.0, $c.2, args.newstate, $sk->sk_err,
             args.family, args.sport, args.dport, *(uint32 *)args.saddr, *(uint32 *)args.daddr,
             buf(args.saddr_v6, 16), buf(args.daddr_v6, 16));
      delete(@c[args.skaddr]);
    }
  }
}
"""

#: The record's "new state" for a UDP connect() (TCP states are 1-12).
UDP = 100

OUTCOMES = {errno.ECONNREFUSED: "refused", errno.ETIMEDOUT: "timed-out", errno.EHOSTUNREACH: "unreachable",
            errno.ENETUNREACH: "unreachable", errno.ECONNRESET: "reset", 0: "aborted"}


def _ip(raw: bytes, v6: bool) -> Optional[str]:
    try:
        return socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, raw)
    except (ValueError, OSError):
        return None


def parse_record(rec: Any) -> Dict[str, Any]:
    """The JSON-ready connect outcome of one record of :data:`PROGRAM`."""
    pid, ns, comm, newstate, err, fam, sport, dport, s4, d4, s6, d6 = rec.values
    v6 = fam == socket.AF_INET6
    proto = "tcp"
    if newstate == UDP:
        # a UDP connect() only sets the default peer: it succeeds, or fails at once
        proto, outcome = "udp", "connected" if err == 0 else OUTCOMES.get(err, "failed")
        if err == 0:
            err = 0
    elif newstate == 1:
        outcome = "established"
    else:
        outcome = OUTCOMES.get(err, "failed")
    return {
        "ts": rec.ts, "pid": pid, "comm": comm, "proto": proto, "family": "ipv6" if v6 else "ipv4",
        "saddr": _ip(bytes(s6), True) if v6 else _ip(struct.pack("<I", s4 & 0xFFFFFFFF), False), "sport": sport,
        "daddr": _ip(bytes(d6), True) if v6 else _ip(struct.pack("<I", d4 & 0xFFFFFFFF), False), "dport": dport,
        "outcome": outcome, "latency_ms": round(ns / 1e6, 3),
        "error": errno.errorcode.get(err) if err else None,
    }


def in_progress(session: Any, now_ns: int) -> "list":
    """Connects still in SYN_SENT when the tool stops (the ``@c`` map), as events."""
    spec = session.c.maps.get("@c")
    if spec is None:
        return []
    out = []
    for _key, val in session.read_map(spec):
        start, pid, comm, fam, dport, d4, d6 = val
        v6 = fam == socket.AF_INET6
        out.append({
            "ts": start, "pid": pid, "comm": comm, "proto": "tcp", "family": "ipv6" if v6 else "ipv4",
            "saddr": None, "sport": None,
            "daddr": _ip(bytes(d6), True) if v6 else _ip(struct.pack("<I", d4 & 0xFFFFFFFF), False),
            "dport": dport, "outcome": "in-progress", "latency_ms": round((now_ns - start) / 1e6, 3), "error": None,
        })
    return out
