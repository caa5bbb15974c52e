"""`undertow connect`: outbound TCP connects with their outcome and how long they took,
connects that fail inside ``connect()``, and UDP ``connect()`` calls.

One BPF program (bpftrace language), in two hook sets (:func:`program`):

``tracepoints`` (every kernel with BPF on tracepoints; the only set where kprobes are missing):

- ``sock:inet_sock_set_state`` CLOSE -> SYN_SENT runs inside ``connect()``: the process (pid,
  comm, pid namespace) and the time are saved per socket;
- SYN_SENT -> ESTABLISHED: established, with the handshake's latency;
- SYN_SENT -> CLOSE: failed; why is ``sk->sk_err`` (BTF), which the kernel sets first
  (``tcp_reset``: ECONNREFUSED; ``tcp_write_err``: ETIMEDOUT). An ICMP error
  (``tcp_v4_err``/``tcp_v6_err``) wakes the process *before* the socket is closed, and the
  process's ``getsockopt(SO_ERROR)`` or ``connect()`` takes ``sk_err`` back to 0 (``sock_error``
  swaps it), so by the close it may be gone: then the record waits until the process's
  ``getsockopt(SO_ERROR)``/``connect()`` returns, which names the error the process got;
- ``connect()`` returning an error without the socket ever reaching SYN_SENT: the route said
  no (blackhole: EINVAL, unreachable: EHOSTUNREACH, prohibit: EACCES, no route: ENETUNREACH), a
  cgroup/LSM hook refused (EPERM), no local port (EADDRNOTAVAIL)...;
- UDP: ``connect()`` on a ``SOCK_DGRAM`` socket is reported at its return with the result.

``kprobes`` (kernels with BPF kprobes, e.g. 6.1/6.12): as above, plus ``tcp_v4_connect`` and
``tcp_v6_connect`` (entry and return) instead of the syscall for failures inside connect —
every path (``connect(2)``, io_uring ``IORING_OP_CONNECT``, in-kernel callers) goes through
them — and ``sk_error_report`` at entry, which sees ``sk_err`` before the process is woken.

Every record carries the socket's network namespace (``sk->__sk_common.skc_net``, its
``ns.inum``) and the connecting task's pid namespace (the one of ``task->thread_pid`` at its
level, as ``task_active_pid_ns()``).
"""

from __future__ import annotations

import errno
import socket
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

from ..output.jsonl import templated

__all__ = ["PROGRAM", "program", "parse_record", "event_parser", "OUTCOMES", "in_progress", "HOOKS"]

_PIDNS = "((struct task_struct *)curtask)->thread_pid->numbers[((struct task_struct *)curtask)->thread_pid->level].ns->ns.inum"

# one record layout for every probe: pid, ns, comm, kind, err, family, sport, dport, saddr4, daddr4,
# saddr6, daddr6, netns, pidns
_SYSCALL_ENTER = r"""
tracepoint:syscalls:sys_enter_connect
{
  $f = ((struct task_struct *)curtask)->files->fdt->fd[args.fd];
  $sock = (struct socket *)$f->private_data;
  if ($sock->type == 1 || $sock->type == 2) {
    @u[tid] = ((uint64)args.uservaddr, nsecs, $sock->type, (uint64)$sock->sk, $sock->state);
  }
}
"""

# the syscall's return: UDP results, TCP failures before SYN_SENT (tracepoint set only), and the
# error a process took back from sk_err before the kernel closed the socket
_SYSCALL_EXIT = r"""
tracepoint:syscalls:sys_exit_connect
{
  $u = @u[tid];
  if ($u.0 != 0) {
    delete(@u[tid]);
    $sa = (struct sockaddr_in *)uptr($u.0);
    $s6 = (struct sockaddr_in6 *)uptr($u.0);
    $fam = $sa->sin_family;
    $sk = (struct sock *)$u.3;
    $ns = $sk->__sk_common.skc_net.net->ns.inum;
    if ($u.2 == 2 && ($fam == 2 || $fam == 10)) {
      printf("%d %d %s %d %d %d %d %d %d %d %r %r %d %d", pid, nsecs - $u.1, comm, 100, -args.ret, $fam,
             0, bswap($sa->sin_port), 0, $sa->sin_addr.s_addr, buf($s6->sin6_addr.in6_u.u6_addr8, 16),
             buf($s6->sin6_addr.in6_u.u6_addr8, 16), $ns, PIDNS);
    }
    if ($u.2 == 1 && ($fam == 2 || $fam == 10)) {
      $r = -args.ret;
      // a fresh connect (SS_UNCONNECTED: not the second connect() of a non-blocking one, which
      // returns the handshake's error again) that never reached SYN_SENT
      if (@s[tid] == 0 && $u.4 == 1) {
        if (INSIDE && args.ret < 0 && $r != 115 && $r != 114 && $r != 106 && $r != 4) {
          printf("%d %d %s %d %d %d %d %d %d %d %r %r %d %d", pid, nsecs - $u.1, comm, 101, $r, $fam,
                 $sk->__sk_common.skc_num, bswap($sa->sin_port), $sk->__sk_common.skc_rcv_saddr,
                 $sa->sin_addr.s_addr, buf($sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8, 16),
                 buf($s6->sin6_addr.in6_u.u6_addr8, 16), $ns, PIDNS);
        }
      }
      if (args.ret < 0 && $r != 115 && $r != 114 && $r != 106 && $r != 4) {
        $l = @late[$u.3];
        if ($l.0 != 0) {
          printf("%d %d %s %d %d %d %d %d %d %d %r %r %d %d", $l.1, $l.4, $l.2, 7, $r, $l.3, $l.5, $l.6, $l.7,
                 $l.8, $l.9, $l.10, $l.11, $l.12);
          delete(@late[$u.3]);
        } else {
          if (@c[$u.3].0 != 0) { @soerr[$u.3] = $r; }
        }
      }
      delete(@s[tid]);
    }
  }
}

tracepoint:syscalls:sys_enter_getsockopt
/args.level == 1 && args.optname == 4/
{
  $f = ((struct task_struct *)curtask)->files->fdt->fd[args.fd];
  $sock = (struct socket *)$f->private_data;
  @g[tid] = ((uint64)args.optval, (uint64)$sock->sk);
}

tracepoint:syscalls:sys_exit_getsockopt
{
  $g = @g[tid];
  if ($g.0 != 0) {
    delete(@g[tid]);
    $e = *(int32 *)uptr($g.0);
    if (args.ret == 0 && $e != 0) {
      $l = @late[$g.1];
      if ($l.0 != 0) {
        printf("%d %d %s %d %d %d %d %d %d %d %r %r %d %d", $l.1, $l.4, $l.2, 7, $e, $l.3, $l.5, $l.6, $l.7,
               $l.8, $l.9, $l.10, $l.11, $l.12);
        delete(@late[$g.1]);
      } else {
        if (@c[$g.1].0 != 0) { @soerr[$g.1] = $e; }
      }
    }
  }
}

tracepoint:syscalls:sys_enter_close { @closing[tid] = 1; }
tracepoint:syscalls:sys_exit_close { delete(@closing[tid]); }
"""

_STATES = r"""
tracepoint:sock:inet_sock_set_state /args.protocol == 6/
{
  if (args.newstate == 2) {
    @c[args.skaddr] = (nsecs, pid, comm, args.family, args.dport, *(uint32 *)args.daddr, buf(args.daddr_v6, 16),
                       PIDNS);
    @s[tid] = 1;
  }
  if (args.oldstate == 2) {
    $c = @c[args.skaddr];
    if ($c.0 != 0) {
      $sk = (struct sock *)args.skaddr;
      $err = $sk->sk_err;
      if ($err == 0) { $err = @soerr[args.skaddr]; }
      $ns = $sk->__sk_common.skc_net.net->ns.inum;
      if ($err == 0 && args.newstate == 7 && @closing[tid] == 0) {
        // the process took sk_err before this close (an ICMP error): wait for what it got
        @late[args.skaddr] = (nsecs, $c.1, $c.2, args.family, nsecs - $c.0, args.sport, args.dport,
                              *(uint32 *)args.saddr, *(uint32 *)args.daddr, buf(args.saddr_v6, 16),
                              buf(args.daddr_v6, 16), $ns, $c.7);
      } else {
        printf("%d %d %s %d %d %d %d %d %d %d %r %r %d %d", $c.1, nsecs - $c.0, $c.2, args.newstate, $err,
               args.family, args.sport, args.dport, *(uint32 *)args.saddr, *(uint32 *)args.daddr,
               buf(args.saddr_v6, 16), buf(args.daddr_v6, 16), $ns, $c.7);
      }
      delete(@soerr[args.skaddr]);
      delete(@c[args.skaddr]);
    }
  }
}
"""

# kprobes: the error before the wake-up, and connect failures on every path
_KPROBES = r"""
kprobe:sk_error_report
{
  $sk = (struct sock *)arg0;
  if (@c[(uint64)$sk].0 != 0 && $sk->sk_err != 0) { @soerr[(uint64)$sk] = $sk->sk_err; }
}

kprobe:tcp_v4_connect, kprobe:tcp_v6_connect
{
  @k[tid] = ((uint64)arg0, (uint64)arg1, nsecs);
}

kretprobe:tcp_v4_connect, kretprobe:tcp_v6_connect
{
  $k = @k[tid];
  if ($k.0 != 0) {
    delete(@k[tid]);
    $r = -(int32)retval;
    if ((int32)retval < 0 && $r != 115 && $r != 114 && $r != 106 && $r != 4) {
      $sk = (struct sock *)$k.0;
      $sa = (struct sockaddr_in *)$k.1;
      $s6 = (struct sockaddr_in6 *)$k.1;
      printf("%d %d %s %d %d %d %d %d %d %d %r %r %d %d", pid, nsecs - $k.2, comm, 101, $r, $sa->sin_family,
             $sk->__sk_common.skc_num, bswap($sa->sin_port), $sk->__sk_common.skc_rcv_saddr,
             $sa->sin_addr.s_addr, buf($sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8, 16),
             buf($s6->sin6_addr.in6_u.u6_addr8, 16), $sk->__sk_common.skc_net.net->ns.inum, PIDNS);
    }
  }
}
"""

#: What each hook set hooks, as ``--verbose`` says it.
HOOKS = {
    "tracepoints": "sock:inet_sock_set_state (CLOSE->SYN_SENT in connect(), SYN_SENT->ESTABLISHED/CLOSE; "
                   "sk->sk_err says why), connect()/getsockopt(SO_ERROR) returns (errors inside connect(), "
                   "an ICMP error the process took first), connect() on UDP sockets",
    "kprobes": "sock:inet_sock_set_state (SYN_SENT and its end), kprobes tcp_v4_connect/tcp_v6_connect "
               "(entry+return: failures inside connect on every path), sk_error_report (sk_err before the "
               "wake-up), connect()/getsockopt(SO_ERROR) returns, connect() on UDP sockets",
}


def program(hooks: str = "tracepoints") -> str:
    """The program for a hook set (``tracepoints`` or ``kprobes``, :data:`HOOKS`)."""
    inside = "1" if hooks == "tracepoints" else "0"
    # maps get their types where first assigned: the states (@c, @late) come before their readers
    text = _SYSCALL_ENTER + _STATES + _SYSCALL_EXIT.replace("INSIDE", inside)
    if hooks == "kprobes":
        text += _KPROBES
    return text.replace("PIDNS", _PIDNS)


#: The tracepoint-only program (every kernel with BPF tracepoints).
PROGRAM = program("tracepoints")

#: The record's "new state" for a UDP connect() (TCP states are 1-12), and for a TCP connect()
#: that failed before a SYN was sent.
UDP = 100
INSIDE = 101

OUTCOMES = {errno.ECONNREFUSED: "refused", errno.ETIMEDOUT: "timed-out", errno.EHOSTUNREACH: "unreachable",
            errno.ENETUNREACH: "unreachable", errno.ECONNRESET: "reset", errno.EACCES: "denied",
            errno.EPERM: "denied", errno.EADDRNOTAVAIL: "no-address", 0: "aborted"}


def _ip(raw: bytes, v6: bool) -> Optional[str]:
    try:
        return socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, raw)
    except (ValueError, OSError):
        return None


#: u32 (memory order) -> dotted text, of the addresses seen last (bounded): a flood's addresses
#: repeat (~0.5 us less per address, issue 18)
_IP4: Dict[int, Optional[str]] = {}


def _ip4(v: int) -> Optional[str]:
    text = _IP4.get(v)
    if text is None:
        text = _ip(struct.pack("<I", v & 0xFFFFFFFF), False)
        if len(_IP4) >= 4096:
            _IP4.clear()
        _IP4[v] = text
    return text


def parse_record(rec: Any) -> Dict[str, Any]:
    """The JSON-ready connect outcome of one record of :func:`program`.

    ``stage`` says where it was decided: ``syscall`` (``connect()`` itself returned it: UDP, or
    a TCP connect refused before any packet left: routes, LSM, ports) or ``handshake`` (the TCP
    state machine after the SYN)."""
    vals = list(rec.values)
    pid, ns, comm, newstate, err, fam, sport, dport, s4, d4, s6, d6 = vals[:12]
    netns, pidns = (vals[12], vals[13]) if len(vals) >= 14 else (None, None)
    v6 = fam == socket.AF_INET6
    proto, stage = "tcp", "handshake"
    if newstate == UDP:
        # a UDP connect() only sets the default peer: it succeeds, or fails at once
        proto, stage, outcome = "udp", "syscall", "connected" if err == 0 else OUTCOMES.get(err, "failed")
    elif newstate == INSIDE:
        stage, outcome = "syscall", OUTCOMES.get(err, "failed") if err else "failed"
    elif newstate == 1:
        outcome = "established"
    else:
        outcome = OUTCOMES.get(err, "failed")
    return {
        "ts": rec.ts, "pid": pid, "comm": comm, "proto": proto, "family": "ipv6" if v6 else "ipv4",
        "saddr": _ip(bytes(s6), True) if v6 else _ip4(s4),
        "sport": sport or None,
        "daddr": _ip(bytes(d6), True) if v6 else _ip4(d4), "dport": dport,
        "outcome": outcome, "stage": stage, "latency_ms": round(ns / 1e6, 3),
        "error": errno.errorcode.get(err, str(err)) if err else None,
        "netns": netns or None, "pidns": pidns or None,
    }


def event_parser() -> Callable[[Any], Dict[str, Any]]:
    """:func:`parse_record` with a memo: one process connecting to one service again and again
    sends records that differ only in the time, the latency and the source port. The event
    of a record whose other values were seen before is a copy of the first one's with its
    own ts, sport and latency_ms, written through the first one's JSON template
    (output/jsonl.Template; ~3 us less per connect than the dict and the encoder's walk,
    issue 18)."""
    seen: Dict[Tuple[Any, ...], Dict[str, Any]] = {}  # bounded

    def parse(rec: Any) -> Dict[str, Any]:
        v = rec.values
        k = (v[0], v[2], v[3], v[4], v[5], *v[7:])  # all but the latency (1) and the source port (6)
        first = seen.get(k)
        if first is not None:
            d = first.copy()
            d["ts"], d["sport"], d["latency_ms"] = rec.ts, v[6] or None, round(v[1] / 1e6, 3)
            return d
        d = templated(parse_record(rec), ("ts", "sport", "latency_ms"))
        if len(seen) >= 1024:
            seen.clear()
        seen[k] = d
        return d
    return parse


def in_progress(session: Any, now_ns: int) -> List[Dict[str, Any]]:
    """Connects still in SYN_SENT when the tool stops (the ``@c`` map), and failed ones whose
    error the process took before the kernel closed the socket and never asked again
    (``@late``: outcome ``failed``, error unknown), as events."""
    out: List[Dict[str, Any]] = []
    spec = session.c.maps.get("@c")
    for _key, val in (session.read_map(spec) if spec is not None else ()):
        start, pid, comm, fam, dport, d4, d6, pidns = val
        v6 = fam == socket.AF_INET6
        out.append({
            "ts": start, "pid": pid, "comm": comm, "proto": "tcp", "family": "ipv6" if v6 else "ipv4",
            "saddr": None, "sport": None,
            "daddr": _ip(bytes(d6), True) if v6 else _ip(struct.pack("<I", d4 & 0xFFFFFFFF), False),
            "dport": dport, "outcome": "in-progress", "stage": "handshake",
            "latency_ms": round((now_ns - start) / 1e6, 3), "error": None, "netns": None, "pidns": pidns or None,
        })
    spec = session.c.maps.get("@late")
    for _key, val in (session.read_map(spec) if spec is not None else ()):
        ts, pid, comm, fam, ns, sport, dport, s4, d4, s6, d6, netns, pidns = val
        v6 = fam == socket.AF_INET6
        out.append({
            "ts": ts, "pid": pid, "comm": comm, "proto": "tcp", "family": "ipv6" if v6 else "ipv4",
            "saddr": _ip(bytes(s6), True) if v6 else _ip(struct.pack("<I", s4 & 0xFFFFFFFF), False),
            "sport": sport or None,
            "daddr": _ip(bytes(d6), True) if v6 else _ip(struct.pack("<I", d4 & 0xFFFFFFFF), False),
            "dport": dport, "outcome": "failed", "stage": "handshake", "latency_ms": round(ns / 1e6, 3),
            "error": None, "netns": netns or None, "pidns": pidns or None,
        })
    return out
