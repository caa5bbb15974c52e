"""`undertow connect`: outbound TCP connects with their outcome and how long they took.

One BPF program (bpftrace language) on ``sock:inet_sock_set_state``, no kprobes:

- CLOSE -> SYN_SENT happens inside ``connect()``: the process (pid, comm) and the time are
  saved per socket;
- SYN_SENT -> ESTABLISHED: established, with the handshake's latency;
- SYN_SENT -> CLOSE: failed; why is ``sk->sk_err`` (read through BTF), which the kernel
  sets just before (``tcp_reset``: ECONNREFUSED; ``tcp_write_err``: ETIMEDOUT;
  ``tcp_v4_err``: EHOSTUNREACH/ENETUNREACH from an ICMP error); 0 means the process gave up
  (closed the socket first).
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any, Dict, Optional

__all__ = ["PROGRAM", "parse_record", "OUTCOMES"]

PROGRAM = r"""
tracepoint:sock:inet_sock_set_state /args.protocol == 6/
{
  if (args.newstate == 2) {
    @c[args.skaddr] = (nsecs, pid, comm);
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
    if newstate == 1:
        outcome = "established"
    else:
        outcome = OUTCOMES.get(err, "failed")
    return {
        "ts": rec.ts, "pid": pid, "comm": comm, "proto": "tcp", "family": "ipv6" if v6 else "ipv4",
        "saddr": _ip(bytes(s6), True) if v6 else _ip(struct.pack("<I", s4 & 0xFFFFFFFF), False), "sport": sport,
        "daddr": _ip(bytes(d6), True) if v6 else _ip(struct.pack("<I", d4 & 0xFFFFFFFF), False), "dport": dport,
        "outcome": outcome, "latency_ms": round(ns / 1e6, 3),
        "error": errno.errorcode.get(err) if err else None,
    }
