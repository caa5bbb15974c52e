"""`undertow dns`'s kprobe hook set: DNS messages at the protocols' send functions, so that
every way of sending shows (io_uring, sendfile/splice, the syscalls), where the kernel lets
BPF attach kprobes (the lab's 6.1 and 6.12; not this host: CONFIG_KPROBES=n).

``kprobe:udp_sendmsg`` (IPv4 sockets only: an IPv6 socket's v4-mapped send comes through
``udpv6_sendmsg`` first, which calls it), ``udpv6_sendmsg`` and ``tcp_sendmsg``, plus
``udp_sendpage``/``tcp_sendpage`` on kernels that have them (< 6.5: ``sendfile``/``splice``
to a socket). The message is found as :mod:`undertow.tools.sendpath` says; records have the
tracepoint set's shape (:data:`undertow.tools.dns.PROGRAM`) with the kernel function's name
as the call and, for a send without an address, the socket's peer address raw (4 or 16
bytes) in place of the sockaddr. The connect()/close() tracepoints stay (``--answers``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, List

from .dns import _FMT, _M1, TRACK
from .icmp import NETNS, PIDNS
from .sendpath import Facts, facts, locate, page_address, syscall_arg3, syscall_name, syscall_nr

__all__ = ["FUNCS", "SENDPAGE", "ANSWER_DST", "program", "kernel_facts", "fix_call"]

#: the send functions hooked (all needed for the set)
FUNCS = ("udp_sendmsg", "udpv6_sendmsg", "tcp_sendmsg")
#: hooked where present (kernels before 6.5)
SENDPAGE = ("udp_sendpage", "tcp_sendpage")

#: With ``--answers``: a send that names port 53/853 marks its fd as a DNS fd (``@dst``), as
#: the tracepoint set's sends do, so the answers read from it are shown (no record here).
ANSWER_DST = """
tracepoint:syscalls:sys_enter_sendto /args.addr != 0/
{
  $sa = (struct sockaddr_in *)args.addr;
  $fam = $sa->sin_family;
  $port = bswap($sa->sin_port);
  if (($fam == 2 || $fam == 10) && ($port == 53 || $port == 853)) {
    @dst[pid, args.fd] = ($fam, $port, buf(args.addr, 28));
  }
}

tracepoint:syscalls:sys_enter_sendmsg
{
  $m = (struct user_msghdr *)args.msg;
  if ($m->msg_name != 0) {
    $sa = (struct sockaddr_in *)uptr($m->msg_name);
    $fam = $sa->sin_family;
    $port = bswap($sa->sin_port);
    if (($fam == 2 || $fam == 10) && ($port == 53 || $port == 853)) {
      @dst[pid, args.fd] = ($fam, $port, buf(uptr($m->msg_name), 28));
    }
  }
}
"""

_V4 = "buf((uint8 *)((uint64)$sk + offsetof(struct sock_common, skc_daddr)), 4)"
_V6 = "buf($sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16)"


def _report(f: Facts, call: str, named: bool) -> str:
    """The record for the located message (``$b $n $pre $user``): to the address the send
    names (``named``: UDP's ``msg_name``, in ``$sa``) or the socket's peer; where the batch
    size goes, the syscall's number and, for ``sendmmsg`` (307), its ``vlen`` (:func:`fix_call`
    puts them back)."""
    m1 = _M1.format(fd=0, pre="$pre", stype="$sk->sk_type", fam="$fam", port="$port")
    rest = (f'"{call}", {m1}, (($bt & 0xffff) << 48) | (($nr & 0xffff) << 32) | $n, '
            f'((uint64){NETNS} << 32) | {PIDNS}')
    out = [f"""
    $nr = (uint64){syscall_nr(f)};
    $bt = $nr == 307 ? (uint64){syscall_arg3(f)} : 0;"""]
    for user, payload in ((True, "buf(uptr($b), $n)"), (False, "buf((uint8 *)$b, $n)")):
        out.append(f"""
    {"if ($user) {" if user else "} else {"}""")
        if named:
            out.append(f"""
      if ($sa != 0) {{
        printf({_FMT}, {rest}, buf((uint8 *)$sa, 28), {payload});
      }} else {{ if ($fam == 2) {{
        printf({_FMT}, {rest}, {_V4}, {payload});
      }} else {{
        printf({_FMT}, {rest}, {_V6}, {payload});
      }} }}""")
        else:
            out.append(f"""
      if ($fam == 2) {{
        printf({_FMT}, {rest}, {_V4}, {payload});
      }} else {{
        printf({_FMT}, {rest}, {_V6}, {payload});
      }}""")
    out.append("""
    }""")
    return "".join(out)


def _sendmsg(f: Facts, func: str) -> str:
    udp = func.startswith("udp")
    only_v4 = " && ((struct sock *)arg0)->__sk_common.skc_family == 2" if func == "udp_sendmsg" else ""
    head = f"""
kprobe:{func} /arg2 >= 12{only_v4}/
{{
  $sk = (struct sock *)arg0;
  $msg = (struct msghdr *)arg1;
  $fam = $sk->__sk_common.skc_family;"""
    if udp:
        head += """
  $sa = (struct sockaddr_in *)$msg->msg_name;
  $port = $sa != 0 ? bswap($sa->sin_port) : bswap($sk->__sk_common.skc_dport);
  $fam = $sa != 0 ? $sa->sin_family : $fam;"""
    else:
        head += """
  $port = bswap($sk->__sk_common.skc_dport);"""
    return head + f"""
  if ($port == 53 || $port == 853) {{{locate(f, "$msg", "arg2")}{_report(f, func, udp)}
  }}
}}
"""


def _sendpage(f: Facts, func: str) -> str:
    return f"""
kprobe:{func} /arg3 >= 12/
{{
  $sk = (struct sock *)arg0;
  $fam = $sk->__sk_common.skc_family;
  $port = bswap($sk->__sk_common.skc_dport);
  if ($port == 53 || $port == 853) {{
    $b = {page_address(f, "arg1")};
    $b = $b != 0 ? $b + arg2 : 0;
    $n = $b != 0 ? (uint64)arg3 : 0;
    $pre = 0;
    $user = 0;{_report(f, func, False)}
  }}
}}
"""


def kernel_facts(kernel: Any) -> Facts:
    """:func:`undertow.tools.sendpath.facts` for this tool's functions."""
    return facts(kernel, FUNCS + SENDPAGE)


def program(f: Facts) -> str:
    """The kprobe set's program for a kernel described by ``f``."""
    parts: List[str] = [TRACK]
    parts += [_sendmsg(f, fn) for fn in FUNCS]
    parts += [_sendpage(f, fn) for fn in SENDPAGE if fn in f.funcs]
    return "".join(parts)


def fix_call(q: Any) -> Any:
    """A :class:`undertow.tools.dns.DnsQuery` from this set's record: ``syscall`` named after
    the syscall that was running (``sendto``, ``io_uring_enter``, ``sendfile``...), or
    ``io_uring`` for an io_uring worker, or the kernel function when unknown; ``batch``: a
    ``sendmmsg``'s message count (else 0)."""
    if q.syscall in FUNCS or q.syscall in SENDPAGE:
        nr, q.batch = q.batch & 0xFFFF, q.batch >> 16
        if nr == 0xFFFF:  # -1: a thread that did not enter by a syscall (an io_uring worker)
            q.syscall = "io_uring"
        else:
            q.syscall = syscall_name(nr) or q.syscall
    return q
