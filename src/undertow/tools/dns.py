"""`undertow dns`: every DNS query leaving the host, with the process that sent it.

No kprobes needed: the BPF program hangs off the syscall tracepoints and reads the user's
buffers in the kernel (``probe_read_user``), so it works on this machine's kernel and any
kernel with BTF and syscall tracepoints:

- ``connect()`` to port 53 or 853 remembers the destination per (process, fd) in ``@dst``
  (glibc's resolver connects its UDP socket first, then sends without an address);
  ``close()`` forgets it. Sockets connected to port 53/853 before the tool started are put
  in ``@pre`` at start (:func:`seed`: sock_diag, /proc/PID/net, /proc/PID/fd; tools/sockets.py)
  and their destination kept in user space;
- ``sendto()``, ``sendmsg()``, ``sendmmsg()`` (every message of the batch up to
  :data:`MMSG`, each with its own address or the fd's), ``write()`` and ``writev()`` copy the
  first :data:`PAYLOAD` bytes of the message when the destination is port 53/853 (given in the
  call or remembered); the first two iovecs are read, so a TCP length prefix in its own iovec
  (``dig +tcp``'s writev) is joined to its message. The socket's type (``SOCK_STREAM`` or
  ``SOCK_DGRAM``, read through BTF from the fd) says TCP or UDP: a length prefix written
  alone (a 2-byte ``write``) leaves a message that is still labelled TCP.

Every record carries the sender's network and pid namespaces. User space decodes the
message (tools/decode/dns.py: hostile bytes are normal) and adds the process details. Port
853 is DNS over TLS: reported (``dot``), not decodable. The program is written in the
bpftrace language and compiled by undertow's own backend.
"""

from __future__ import annotations

import socket
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

from ..output.jsonl import templated
from .decode.dns import QTYPES, Message, decode_message, decode_tcp_stream, qtype_name
from .icmp import NETNS, PIDNS

__all__ = ["PROGRAM", "TRACK", "ANSWERS", "DnsQuery", "parse_record", "event_parser", "seed", "MMSG"]

PAYLOAD = 512
#: Messages of one sendmmsg() call read (the rest are counted in ``batch``).
MMSG = 8

_SOCK = "((struct socket *)((struct task_struct *)curtask)->files->fdt->fd[{fd}]->private_data)->type"
# a record: call, m1 = fd << 32 | prefix-apart << 28 | socket type << 24 | family << 16 | port,
# m2 = batch << 32 | payload length, ns = netns << 32 | pidns, address, payload (few values:
# each costs user space a decode, ~1 us)
_FMT = '"%s %d %d %d %r %r"'
_M1 = "((uint64){fd} << 32) | ({pre} << 28) | (({stype} & 15) << 24) | ({fam} << 16) | {port}"


def _send(call: str, fd: str, fam: str, port: str, addr: str, data: Tuple[str, str, str], batch: str = "0") -> str:
    ptr, n, pre = data
    m1 = _M1.format(fd=fd, pre=pre, stype=_SOCK.format(fd=fd), fam=fam, port=port)
    return (f'printf({_FMT}, "{call}", {m1}, ((uint64){batch} << 32) | {n}, ((uint64){NETNS} << 32) | {PIDNS}, '
            f'{addr}, buf({ptr}, {n}));')


def _by_addr(call: str, fd: str, sa: str, data: Tuple[str, str, str], batch: str = "0", prep: str = "") -> str:
    """Report the message when the address the call names is port 53/853 (``prep``: code that
    finds the message, run only then)."""
    return f"""
    $sa = (struct sockaddr_in *){sa};
    $fam = $sa->sin_family;
    $port = bswap($sa->sin_port);
    if (($fam == 2 || $fam == 10) && ($port == 53 || $port == 853)) {{{prep}
      {_send(call, fd, "$fam", "$port", f"buf({sa}, 28)", data, batch)}
      @dst[pid, {fd}] = ($fam, $port, buf({sa}, 28));
    }}"""


def _by_fd(call: str, fd: str, data: Tuple[str, str, str], batch: str = "0", prep: str = "") -> str:
    """Report the message when this fd was connected to port 53/853 (seen, or before the
    start; ``prep``: code that finds the message, run only then)."""
    return f"""
    $d = @dst[pid, {fd}];
    if ($d.0 != 0) {{{prep}
      {_send(call, fd, "$d.0", "$d.1", "$d.2", data, batch)}
    }} else {{
      $p = @pre[pid, {fd}];
      if ($p != 0) {{{prep}
        {_send(call, fd, "($p >> 16)", "($p & 0xffff)", "buf(uptr(0), 28)", data, batch)}
      }}
    }}"""


def _iovs(iov: str, count: str) -> str:
    """``$b``/``$n``/``$pre``: the message in the iovecs at ``iov`` (``count`` of them): the
    first, or the second when the first is a 2-byte TCP length prefix (``dig +tcp``)."""
    return f"""
    $b = (uint64)uptr({iov}[0].iov_base);
    $n = {iov}[0].iov_len;
    $pre = 0;
    if ($n == 2 && {count} > 1) {{
      $b = (uint64)uptr({iov}[1].iov_base);
      $n = {iov}[1].iov_len;
      $pre = 1;
    }}"""


_IOV = ("uptr($b)", "$n", "$pre")


#: connect()/close() kept per (process, fd): the tracepoint set's destinations, and --answers'
#: (both hook sets)
TRACK = """
tracepoint:syscalls:sys_enter_connect
{
  $sa = (struct sockaddr_in *)args.uservaddr;
  $fam = $sa->sin_family;
  $port = bswap($sa->sin_port);
  if (($fam == 2 || $fam == 10) && ($port == 53 || $port == 853)) {
    @dst[pid, args.fd] = ($fam, $port, buf(args.uservaddr, 28));
  } else {
    delete(@dst[pid, args.fd]);
  }
  delete(@pre[pid, args.fd]);
}

tracepoint:syscalls:sys_enter_close
{
  if (args.fd < -1) {
    @pre[pid, args.fd] = (uint64)0;  // never runs: gives @pre its types (seed() fills it)
  }
  delete(@dst[pid, args.fd]);
  delete(@pre[pid, args.fd]);
}
"""

PROGRAM = TRACK + f"""
tracepoint:syscalls:sys_enter_sendto /args.len >= 12/
{{
  if (args.addr != 0) {{{_by_addr("sendto", "args.fd", "args.addr", ("args.buff", "args.len", "0"))}
  }} else {{{_by_fd("sendto", "args.fd", ("args.buff", "args.len", "0"))}
  }}
}}

tracepoint:syscalls:sys_enter_write /args.count >= 12/
{{{_by_fd("write", "args.fd", ("args.buf", "args.count", "0"))}
}}

tracepoint:syscalls:sys_enter_writev
{{
  $v = (struct iovec *)args.vec;{_by_fd("writev", "args.fd", _IOV, prep=_iovs("$v", "args.vlen"))}
}}

tracepoint:syscalls:sys_enter_sendmsg
{{
  $m = (struct user_msghdr *)args.msg;
  $iov = (struct iovec *)uptr($m->msg_iov);
  if ($m->msg_name != 0) {{{_by_addr("sendmsg", "args.fd", "uptr($m->msg_name)", _IOV,
                                    prep=_iovs("$iov", "$m->msg_iovlen"))}
  }} else {{{_by_fd("sendmsg", "args.fd", _IOV, prep=_iovs("$iov", "$m->msg_iovlen"))}
  }}
}}

tracepoint:syscalls:sys_enter_sendmmsg
{{
  $mm = (struct mmsghdr *)args.mmsg;
  $i = 0;
  unroll({MMSG}) {{
    if ($i < args.vlen) {{
      $h = $mm[$i].msg_hdr;
      $iov = (struct iovec *)uptr($h.msg_iov);
      if ($h.msg_name != 0) {{{_by_addr("sendmmsg", "args.fd", "uptr($h.msg_name)", _IOV, "args.vlen",
                                        prep=_iovs("$iov", "$h.msg_iovlen"))}
      }} else {{{_by_fd("sendmmsg", "args.fd", _IOV, "args.vlen", prep=_iovs("$iov", "$h.msg_iovlen"))}
      }}
    }}
    $i++;
  }}
}}
"""


#: Added with ``--answers``: what comes back on a DNS fd (recvfrom/recvmsg/read, read at exit).
ANSWERS = """
tracepoint:syscalls:sys_enter_recvfrom
{
  if (@dst[pid, args.fd].0 != 0 || @pre[pid, args.fd] != 0) {
    @rx[tid] = ((uint64)args.ubuf, args.fd);
  }
}

tracepoint:syscalls:sys_enter_read
{
  if (@dst[pid, args.fd].0 != 0 || @pre[pid, args.fd] != 0) {
    @rx[tid] = ((uint64)args.buf, args.fd);
  }
}

tracepoint:syscalls:sys_enter_recvmsg
{
  if (@dst[pid, args.fd].0 != 0 || @pre[pid, args.fd] != 0) {
    $m = (struct user_msghdr *)args.msg;
    $iov = (struct iovec *)uptr($m->msg_iov);
    @rx[tid] = ((uint64)uptr($iov->iov_base), args.fd);
  }
}

tracepoint:syscalls:sys_exit_recvfrom, tracepoint:syscalls:sys_exit_read, tracepoint:syscalls:sys_exit_recvmsg
{
  $r = @rx[tid];
  if ($r.0 != 0) {
    if (args.ret >= 12) {
      $d = @dst[pid, $r.1];
      $p = @pre[pid, $r.1];
      $fam = $d.0 != 0 ? $d.0 : $p >> 16;
      $port = $d.0 != 0 ? $d.1 : $p & 0xffff;
      printf(FMT, "answer", M1, (uint64)args.ret, ((uint64)NETNS << 32) | PIDNS, $d.2, buf(uptr($r.0), args.ret));
    }
    delete(@rx[tid]);
  }
}
""".replace("FMT", _FMT).replace("M1", _M1.format(fd="$r.1", pre=0, stype=_SOCK.format(fd="$r.1"), fam="$fam",
                                                   port="$port")).replace("NETNS", NETNS).replace("PIDNS", PIDNS)


def seed(session: Any, proc: str = "/proc") -> Dict[Tuple[int, int], Tuple[int, str]]:
    """Put the UDP and TCP sockets connected to port 53/853 now (any namespace) into ``@pre``
    under every (pid, fd) holding one; returns ``{(pid, fd): (family, resolver address)}``."""
    from ..kernel.bpfsys import map_update_elem
    from .sockets import find_sockets

    fd_map = session.map_fds.get("@pre")
    out: Dict[Tuple[int, int], Tuple[int, str]] = {}
    diag = [(f, p, 0) for f in (socket.AF_INET, socket.AF_INET6) for p in (socket.IPPROTO_UDP, socket.IPPROTO_TCP)]
    for s, pid, fd in find_sockets(diag, ["udp", "udp6", "tcp", "tcp6"], proc=proc):
        if s.dport not in (53, 853) or s.dst is None:
            continue
        out[(pid, fd)] = (s.family, s.dst)
        if fd_map is not None:
            map_update_elem(fd_map, struct.pack("<QQ", pid, fd), struct.pack("<Q", (s.family << 16) | s.dport))
    return out


class DnsQuery:
    """One DNS message as sent: who, where to, and what it asks."""

    __slots__ = ("ts", "pid", "tid", "comm", "syscall", "fd", "family", "resolver", "port", "transport",
                 "message", "raw", "answer", "size", "netns", "pidns", "batch")

    def __init__(self) -> None:
        self.ts = self.pid = self.tid = self.fd = self.port = self.size = self.batch = 0
        self.family = 0
        self.comm = self.syscall = self.resolver = self.transport = ""
        self.message: Optional[Message] = None
        self.raw = b""
        self.answer = False
        self.netns: Optional[int] = None
        self.pidns: Optional[int] = None

    def to_dict(self) -> Dict[str, Any]:
        m = self.message
        if m is not None:
            qp = m.__dict__.get("_qpart")
            if qp is None:
                qp = m.__dict__["_qpart"] = _question_part(m)  # the copies _decode makes share it
            answer = self.answer
            d = {
                "ts": self.ts, "pid": self.pid, "tid": self.tid, "comm": self.comm, "syscall": self.syscall,
                "resolver": self.resolver, "resolver_port": self.port, "transport": self.transport,
                "id": m.id, "qname": qp[0], "qtype": qp[1], "qclass": qp[2], "questions": list(qp[3]),
                "truncated": m.truncated, "kind": "answer" if answer else "query",
                "rcode": m.rcode if answer else None,
                "answers": [{"name": a.name, "type": a.type_name, "ttl": a.ttl, "data": _jsonable(a.data)}
                            for a in m.answers] if answer else None,
                "error": m.error,
            }
        else:
            d = {"ts": self.ts, "pid": self.pid, "tid": self.tid, "comm": self.comm, "syscall": self.syscall,
                 "resolver": self.resolver, "resolver_port": self.port, "transport": self.transport, "id": None,
                 "qname": None, "qtype": None, "qclass": None, "questions": [], "truncated": None,
                 "kind": "answer" if self.answer else "query", "rcode": None, "answers": None, "error": None}
        d["size"] = self.size or len(self.raw)
        d["netns"], d["pidns"] = self.netns, self.pidns
        if self.batch:
            d["batch"] = self.batch
        return d


def _question_part(m: Message) -> Tuple[Any, ...]:
    """``(qname, qtype, qclass, questions)`` of an event for ``m``: worked out once per message
    body (:func:`_decode` hands out copies of a body seen before; a flood of one name costs
    one, ~1.5 us less per query, issue 18). The question dicts are shared: read-only."""
    qs = m.questions
    q = qs[0] if qs else None
    return (q.name if q is not None else None,
            (QTYPES.get(q.qtype) or qtype_name(q.qtype)) if q is not None else None,
            q.class_name if q is not None else None,
            tuple({"name": x.name, "type": QTYPES.get(x.qtype) or qtype_name(x.qtype)} for x in qs))


_U64 = (1 << 64) - 1

#: Recently decoded message bodies (all but the 2-byte id): a process resolving the same name
#: again and again (the common flood) is decoded once, not per query.
_BODIES: Dict[bytes, Message] = {}


def _decode(raw: bytes) -> Message:
    """:func:`decode_message` of ``raw``, from :data:`_BODIES` when its body was seen (the
    copy carries this message's id and bytes; the question and answer lists are shared,
    read-only)."""
    body = raw[2:]
    m = _BODIES.get(body)
    if m is None:
        m = decode_message(raw)
        m.__dict__["_qpart"] = _question_part(m)  # made once, handed on with every copy below
        if len(_BODIES) >= 1024:
            _BODIES.clear()
        _BODIES[body] = m
        return m
    c = Message.__new__(Message)
    c.__dict__.update(m.__dict__)
    c.id = (raw[0] << 8) | raw[1] if len(raw) >= 2 else 0
    c.raw = raw
    return c


def parse_record(rec: Any, seeds: Optional[Dict[Tuple[int, int], Tuple[int, str]]] = None) -> Optional[DnsQuery]:
    """A :class:`DnsQuery` from a record of :data:`PROGRAM` (None when it is not DNS);
    ``seeds``: what :func:`seed` returned (the destinations of sockets connected earlier)."""
    call, m1, m2, ns, addr, payload = rec.values
    m1, m2, ns = m1 & _U64, m2 & _U64, ns & _U64  # %d prints signed: netns << 32 is "negative"
    fd, pre, stype, fam, port = m1 >> 32, (m1 >> 28) & 1, (m1 >> 24) & 15, (m1 >> 16) & 0xFF, m1 & 0xFFFF
    n, netns, pidns = m2 & 0xFFFFFFFF, ns >> 32, ns & 0xFFFFFFFF
    q = DnsQuery()
    q.syscall, q.fd, q.family, q.port, q.size, q.batch = call, fd, fam, port, n + 2 * pre, m2 >> 32
    q.netns, q.pidns = netns or None, pidns or None
    # buf() copies at most PAYLOAD bytes (and a fixed size: the length says how many count)
    raw = q.raw = bytes(payload[:n])
    addr = bytes(addr)
    if any(addr):
        try:
            if len(addr) in (4, 16):  # the kprobe set: a connected socket's peer address (tools/dns_kprobes.py)
                q.resolver = socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)
            elif fam == socket.AF_INET:
                q.resolver = socket.inet_ntop(socket.AF_INET, addr[4:8])
            elif fam == socket.AF_INET6:
                q.resolver = socket.inet_ntop(socket.AF_INET6, addr[8:24])
        except (ValueError, OSError):
            q.resolver = addr.hex()
    elif seeds is not None:
        q.resolver = seeds.get((rec.pid, fd), (0, ""))[1]
    if port == 853:
        q.transport = "dot"  # TLS: the question is encrypted
        return q
    if call == "answer":
        q.syscall, q.answer = "recv", True
    msgs: List[Message] = []
    if stype == socket.SOCK_STREAM:
        q.transport = "tcp"
        # a length prefix; none when it was in an iovec of its own (``pre``: the kernel sent
        # the message's iovec) or written alone first (a 2-byte write(), not reported)
        if not pre and len(raw) >= 2 and 1 <= int.from_bytes(raw[:2], "big") <= n - 2:
            msgs = [m for m in decode_tcp_stream(raw) if _plausible(m, q.answer)]
        if not msgs:
            m = _decode(raw)
            msgs = [m] if _plausible(m, q.answer) else []
        if not msgs and call in ("write", "writev", "answer"):
            return None  # write() on an fd once connected to port 53 and reused: not DNS
    else:
        q.transport = "udp"
        m = _decode(raw)
        if call in ("write", "writev", "answer") and not _plausible(m, q.answer):
            return None
        msgs = [m]
    if q.answer and (not msgs or not msgs[0].is_response):
        return None
    if msgs:
        q.message = msgs[0]
    return q


def event_parser(seeds: Optional[Dict[Tuple[int, int], Tuple[int, str]]] = None,
                 fix: Optional[Callable[[DnsQuery], Any]] = None) -> Callable[[Any], Optional[Dict[str, Any]]]:
    """``parse(rec)``: the JSON-ready event of a record of :data:`PROGRAM` (None when it is not
    DNS): :func:`parse_record`'s query (``seeds``: :func:`seed`'s; ``fix``: the hook set's
    correction, dns_kprobes.fix_call) with the record's ts, pid, tid and comm.

    A process asking one name again and again (the common flood) sends records that differ
    only in the message id: the event of a UDP message whose record was seen before (its
    values, the message less its 2-byte id, the pid and comm: a seeded socket's resolver is
    the pid's) is a copy of the first one's with its own ts, tid and id, written through the
    first one's JSON template (output/jsonl.Template; ~7 us less per query than the query
    object, its dict and the encoder's walk, issue 18). TCP and DoT records are parsed each."""
    seen: Dict[Tuple[Any, ...], Optional[Dict[str, Any]]] = {}  # bounded

    def parse(rec: Any) -> Optional[Dict[str, Any]]:
        call, m1, m2, ns, addr, payload = rec.values
        key = None
        if (m1 >> 24) & 15 != socket.SOCK_STREAM and m1 & 0xFFFF != 853 and len(payload) >= 12:
            key = (call, m1, m2, ns, addr, payload[2:], rec.pid, rec.comm)
            first = seen.get(key, _UNSEEN)
            if first is None:
                return None  # not DNS, as the first time
            if first is not _UNSEEN:
                d = first.copy()
                d["ts"], d["tid"], d["id"] = rec.ts, rec.tid, (payload[0] << 8) | payload[1]
                return d
        q = parse_record(rec, seeds)
        if q is None:
            d = None
        else:
            if fix is not None:
                fix(q)
            q.ts, q.pid, q.tid, q.comm = rec.ts, rec.pid, rec.tid, rec.comm
            d = q.to_dict()
        if key is not None and (d is None or d["id"] is not None):
            if d is not None:
                d = templated(d, ("ts", "tid", "id"))
            if len(seen) >= 1024:
                seen.clear()
            seen[key] = d
        return d
    return parse


_UNSEEN = object()


def _plausible(m: Message, answer: bool = False) -> bool:
    """A DNS message a resolver would send (or get back): a header and 1-4 questions read
    (a name over 255 bytes is kept, with its error), opcode QUERY."""
    long_name = m.error is not None and m.error.startswith("name longer")
    return (m.error is None or long_name) and 1 <= len(m.questions) <= 4 and (m.flags >> 11) & 0xF == 0 and \
        m.is_response == answer


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, tuple):
        return list(v)
    return v
