"""`undertow dns`: every DNS query leaving the host, with the process that sent it.

No kprobes needed: the BPF program hangs off the syscall tracepoints and reads the user's
buffers in the kernel (``probe_read_user``), so it works on this machine's kernel and any
kernel with BTF and syscall tracepoints:

- ``connect()`` to port 53 or 853 remembers the destination per (process, fd) in a map
  (glibc's resolver connects its UDP socket first, then sends without an address);
  ``close()`` forgets it;
- ``sendto()``, ``sendmsg()``, ``sendmmsg()`` (glibc sends the A and AAAA queries in one
  call: both messages are read) and ``write()`` (TCP DNS, after connect) copy up to 512
  bytes of the message when the destination is port 53/853 (given in the call or
  remembered from connect).

User space decodes the message (tools/decode/dns.py: hostile bytes are normal) and adds
the process details. Port 853 is DNS over TLS: reported (``dot``), not decodable.
The program is written in the bpftrace language and compiled by undertow's own backend.
"""

from __future__ import annotations

import socket
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

from .decode.dns import Message, decode_message, decode_tcp_stream

__all__ = ["PROGRAM", "ANSWERS", "DnsQuery", "parse_record"]

PAYLOAD = 512

_SEND = '''printf("%s %d %d %d %r %r", "{call}", {fd}, {fam}, {port}, {addr}, {payload});'''


def _by_addr(call: str, fd: str, sa: str, payload: str) -> str:
    """Report the message when the address the call names is port 53/853."""
    return f"""
    $sa = (struct sockaddr_in *){sa};
    $fam = $sa->sin_family;
    $port = bswap($sa->sin_port);
    if (($fam == 2 || $fam == 10) && ($port == 53 || $port == 853)) {{
      {_SEND.format(call=call, fd=fd, fam="$fam", port="$port", addr=f"buf({sa}, 28)", payload=payload)}
      @dst[pid, {fd}] = ($fam, $port, buf({sa}, 28));
    }}"""


def _by_fd(call: str, fd: str, payload: str) -> str:
    """Report the message when this fd was connected to port 53/853."""
    return f"""
    $d = @dst[pid, {fd}];
    if ($d.0 != 0) {{
      {_SEND.format(call=call, fd=fd, fam="$d.0", port="$d.1", addr="$d.2", payload=payload)}
    }}"""


PROGRAM = f"""
tracepoint:syscalls:sys_enter_connect
{{
  $sa = (struct sockaddr_in *)args.uservaddr;
  $fam = $sa->sin_family;
  $port = bswap($sa->sin_port);
  if (($fam == 2 || $fam == 10) && ($port == 53 || $port == 853)) {{
    @dst[pid, args.fd] = ($fam, $port, buf(args.uservaddr, 28));
  }} else {{
    delete(@dst[pid, args.fd]);
  }}
}}

tracepoint:syscalls:sys_enter_close
{{
  delete(@dst[pid, args.fd]);
}}

tracepoint:syscalls:sys_enter_sendto /args.len >= 12/
{{
  if (args.addr != 0) {{{_by_addr("sendto", "args.fd", "args.addr", "buf(args.buff, args.len)")}
  }} else {{{_by_fd("sendto", "args.fd", "buf(args.buff, args.len)")}
  }}
}}

tracepoint:syscalls:sys_enter_write /args.count >= 12/
{{{_by_fd("write", "args.fd", "buf(args.buf, args.count)")}
}}

tracepoint:syscalls:sys_enter_sendmsg
{{
  $m = (struct user_msghdr *)args.msg;
  $iov = (struct iovec *)uptr($m->msg_iov);
  if ($m->msg_name != 0) {{{_by_addr("sendmsg", "args.fd", "uptr($m->msg_name)",
                                    "buf(uptr($iov->iov_base), $iov->iov_len)")}
  }} else {{{_by_fd("sendmsg", "args.fd", "buf(uptr($iov->iov_base), $iov->iov_len)")}
  }}
}}

tracepoint:syscalls:sys_enter_sendmmsg
{{
  $mm = (struct mmsghdr *)args.mmsg;
  $iov = (struct iovec *)uptr($mm->msg_hdr.msg_iov);{_by_fd("sendmmsg", "args.fd",
                                                              "buf(uptr($iov->iov_base), $iov->iov_len)")}
  if (args.vlen > 1) {{
    $iov2 = (struct iovec *)uptr($mm[1].msg_hdr.msg_iov);{_by_fd("sendmmsg", "args.fd",
                                                                  "buf(uptr($iov2->iov_base), $iov2->iov_len)")}
  }}
}}
"""


#: Added with ``--answers``: what comes back on a DNS fd (recvfrom/recvmsg/read, read at exit).
ANSWERS = """
tracepoint:syscalls:sys_enter_recvfrom
{
  $d = @dst[pid, args.fd];
  if ($d.0 != 0) {
    @rx[tid] = ((uint64)args.ubuf, args.fd);
  }
}

tracepoint:syscalls:sys_enter_read
{
  $d = @dst[pid, args.fd];
  if ($d.0 != 0) {
    @rx[tid] = ((uint64)args.buf, args.fd);
  }
}

tracepoint:syscalls:sys_enter_recvmsg
{
  $d = @dst[pid, args.fd];
  if ($d.0 != 0) {
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
      printf("%s %d %d %d %r %r", "answer", $r.1, $d.0, $d.1, $d.2, buf(uptr($r.0), args.ret));
    }
    delete(@rx[tid]);
  }
}
"""


class DnsQuery:
    """One DNS message as sent: who, where to, and what it asks."""

    __slots__ = ("ts", "pid", "tid", "comm", "syscall", "fd", "family", "resolver", "port", "transport",
                 "message", "raw", "answer")

    def __init__(self) -> None:
        self.ts = self.pid = self.tid = self.fd = self.port = 0
        self.family = 0
        self.comm = self.syscall = self.resolver = self.transport = ""
        self.message: Optional[Message] = None
        self.raw = b""
        self.answer = False

    def to_dict(self) -> Dict[str, Any]:
        m = self.message
        q = m.questions[0] if m is not None and m.questions else None
        return {
            "ts": self.ts, "pid": self.pid, "tid": self.tid, "comm": self.comm, "syscall": self.syscall,
            "resolver": self.resolver, "resolver_port": self.port, "transport": self.transport,
            "id": m.id if m is not None else None,
            "qname": q.name if q is not None else None,
            "qtype": q.type_name if q is not None else None,
            "qclass": q.class_name if q is not None else None,
            "questions": [{"name": x.name, "type": x.type_name} for x in m.questions] if m is not None else [],
            "truncated": m.truncated if m is not None else None,
            "kind": "answer" if self.answer else "query",
            "rcode": m.rcode if m is not None and self.answer else None,
            "answers": [{"name": a.name, "type": a.type_name, "ttl": a.ttl, "data": _jsonable(a.data)}
                        for a in m.answers] if m is not None and self.answer else None,
            "error": m.error if m is not None else None,
            "size": len(self.raw),
        }


def parse_record(rec: Any) -> Optional[DnsQuery]:
    """A :class:`DnsQuery` from a record of :data:`PROGRAM` (None when it is not DNS)."""
    call, fd, fam, port, addr, payload = rec.values
    if call == "answer":
        return _answer(rec, fd, fam, port, addr, payload)
    q = DnsQuery()
    q.ts, q.syscall, q.fd, q.family, q.port, q.raw = 0, call, fd, fam, port, bytes(payload)
    addr = bytes(addr)
    try:
        if fam == socket.AF_INET:
            q.resolver = socket.inet_ntop(socket.AF_INET, addr[4:8])
        elif fam == socket.AF_INET6:
            q.resolver = socket.inet_ntop(socket.AF_INET6, addr[8:24])
    except (ValueError, OSError):
        q.resolver = addr.hex()
    if port == 853:
        q.transport = "dot"  # TLS: the question is encrypted
        return q
    msgs: List[Message] = []
    if call == "write":
        # write() is only looked at on fds connected to port 53/853, but an fd number is
        # reused: demand a well-formed TCP DNS stream (length prefix, one sane question)
        msgs = [m for m in decode_tcp_stream(q.raw) if _plausible(m)]
        if not msgs:
            m = decode_message(q.raw)
            msgs = [m] if _plausible(m) else []
        if not msgs:
            return None
        q.transport = "tcp" if len(q.raw) >= 2 and int.from_bytes(q.raw[:2], "big") <= len(q.raw) - 2 else "udp"
    else:
        m = decode_message(q.raw)
        if m.error is None and m.questions:
            q.transport = "udp"
            msgs = [m]
        else:
            msgs = decode_tcp_stream(q.raw)
            if msgs and msgs[0].questions:
                q.transport = "tcp"
    if not msgs:
        return q  # sent to port 53 but not decodable: reported with the error (raw kept)
    q.message = msgs[0]
    return q


def _plausible(m: Message) -> bool:
    """A DNS query a resolver would send: no decoding error, 1-4 questions, opcode QUERY."""
    return m.error is None and 1 <= len(m.questions) <= 4 and (m.flags >> 11) & 0xF == 0


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, tuple):
        return list(v)
    return v


def _answer(rec: Any, fd: int, fam: int, port: int, addr: Any, payload: Any) -> Optional[DnsQuery]:
    """A DNS response read by the process (``--answers``)."""
    q = parse_record(type("R", (), {"values": ("sendto", fd, fam, port, addr, payload)})())
    if q is None or q.message is None or not q.message.is_response:
        return None
    q.syscall, q.answer = "recv", True
    return q
