"""`undertow icmp`'s kprobe hook set: ICMP messages at the sockets' send functions, so that
every way of sending shows (io_uring, sendfile/splice, the syscalls), where the kernel lets
BPF attach kprobes (the lab's 6.1 and 6.12; not this host: CONFIG_KPROBES=n).

``kprobe:raw_sendmsg``/``rawv6_sendmsg`` (raw sockets of protocol ICMP/ICMPv6) and
``ping_v4_sendmsg``/``ping_v6_sendmsg`` (ping sockets: the echo id is the socket's bound
port, ``inet_sport``, already set by ``inet_send_prepare()`` before the protocol's sendmsg)
read the message through ``msg->msg_iter`` (:mod:`undertow.tools.sendpath`); records have the
tracepoint set's ``out`` shape (:data:`undertow.tools.icmp.PROGRAM`, fd 0). What is received
and the kernel's own errors keep the tracepoint set's hooks.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, List

from .icmp import NETNS, PIDNS, TRACK_AND_RECVS
from .sendpath import Facts, facts, locate

__all__ = ["FUNCS", "OPTIONAL", "program", "kernel_facts"]

#: needed for the set
FUNCS = ("raw_sendmsg", "ping_v4_sendmsg")
#: hooked where present (IPv6)
OPTIONAL = ("rawv6_sendmsg", "ping_v6_sendmsg")

_PROTO = {"raw_sendmsg": 1, "rawv6_sendmsg": 58, "ping_v4_sendmsg": 1, "ping_v6_sendmsg": 58}


def _probe(f: Facts, func: str) -> str:
    fmt = '"%s %d %d %d %d %d %d %d %r %r %r"'
    head = (f'"out", 0, $key, arg2, $id, {NETNS}, {PIDNS}, $sk->__sk_common.skc_daddr, '
            'buf((uint8 *)$msg->msg_name, 28), buf($sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16)')
    return f"""
kprobe:{func} /arg2 >= 4 && ((struct sock *)arg0)->sk_protocol == {_PROTO[func]}/
{{
  $sk = (struct sock *)arg0;
  $msg = (struct msghdr *)arg1;
  $key = ((uint64)$sk->__sk_common.skc_family << 16) | (($sk->sk_type & 15) << 8) | $sk->sk_protocol;
  $id = $sk->sk_type == 2 ? bswap(((struct inet_sock *)$sk)->inet_sport) : 0;{locate(f, "$msg", "arg2")}
  if ($user) {{
    printf({fmt}, {head}, buf(uptr($b), $n));
  }} else {{
    printf({fmt}, {head}, buf((uint8 *)$b, $n));
  }}
}}
"""


def kernel_facts(kernel: Any) -> Facts:
    """:func:`undertow.tools.sendpath.facts` for this tool's functions."""
    return facts(kernel, FUNCS + OPTIONAL)


def program(f: Facts) -> str:
    """The kprobe set's program for a kernel described by ``f``."""
    parts: List[str] = [TRACK_AND_RECVS]
    parts += [_probe(f, fn) for fn in FUNCS + OPTIONAL if fn in f.funcs]
    return "".join(parts)
