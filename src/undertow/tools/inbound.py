"""`undertow inbound`: every inbound connection attempt — completed, accepted, refused, dropped,
overflowed, half-open (knocks).

One program in the bpftrace language, in two hook sets (:func:`program`, :data:`HOOKS`):

- ``sock:inet_sock_set_state`` SYN_RECV -> ESTABLISHED on a TCP socket: the three-way
  handshake completed (the kernel did it; the application has not accepted it yet);
- ``accept()``/``accept4()`` returning: the socket behind the new fd
  (``curtask->files->fdt->fd[ret]->private_data->sk``) — the application accepted it;
- ``skb:kfree_skb`` with a drop reason, for packets that came in (``skb->skb_iif``): a
  TCP SYN to a port nobody listens on (``NO_SOCKET``: the kernel answers with a RST:
  refused), a UDP datagram to a closed port (``NO_SOCKET``), a final ACK finding the accept
  queue full (``TCP_LISTEN_OVERFLOW``, 6.15+), a firewall drop (``NETFILTER_DROP``)... the
  reason's name comes from BTF (``enum skb_drop_reason``). Addresses and ports are read from
  the packet's IPv4/IPv6 and TCP/UDP headers;
- a SYN dropped because the listener's accept queue is full (``tcp_conn_request``: no drop
  reason, the SYN is consumed): kprobe ``tcp_conn_request``, or (tracepoints) ``skb:consume_skb``
  of a SYN whose listener, learned at ``listen()``/``accept()``/``getsockopt(SO_ACCEPTCONN)``
  (:func:`seed_listeners` for listeners older than the tool), has a full queue;
- knocks: a RST that ends a pending connection request (a half-open SYN scan: SYN, SYN-ACK,
  RST): kprobe ``tcp_check_req``, or (tracepoints, 6.11+) ``skb:kfree_skb`` with
  ``NOT_SPECIFIED`` and ``rx_sk`` a socket in LISTEN; and ``tcp:tcp_retransmit_synack`` (the
  first retransmission: the peer never answered our SYN-ACK).

Every record carries the network namespace (of the socket, or of the packet's device) and, for
accepts, the accepting task's pid namespace. User space names the listening process of a port
from /proc, in every network namespace (:class:`Listeners`).
"""

from __future__ import annotations

import socket
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

from .listeners import Listeners, seed_listeners  # noqa: F401 - part of this tool's interface

__all__ = ["PROGRAM", "program", "HOOKS", "KNOCKS", "parse_record", "Listeners", "seed_listeners", "drop_reasons"]

_PIDNS = ("((struct task_struct *)curtask)->thread_pid->numbers["
          "((struct task_struct *)curtask)->thread_pid->level].ns->ns.inum")

# Every record: kind, a, b, c, d, local4, remote4, local6, remote6, x, netns, pidns.

_STATES = r"""
tracepoint:sock:inet_sock_set_state
/args.protocol == 6/
{
  $sk = (struct sock *)args.skaddr;
  $ns = $sk->__sk_common.skc_net.net->ns.inum;
  if (args.oldstate == 3 && args.newstate == 1) {
    printf("%s %d %d %d %d %d %d %r %r %d %d %d", "handshake", args.skaddr, args.family, args.sport, args.dport,
           *(uint32 *)args.saddr, *(uint32 *)args.daddr, buf(args.saddr_v6, 16), buf(args.daddr_v6, 16), 0,
           $ns, 0);
  }
  if (args.newstate == 10) {
    @lst[(uint16)args.sport, (uint16)args.family] = (uint64)args.skaddr;
  }
  if (args.oldstate == 10) {
    if (@lst[(uint16)args.sport, (uint16)args.family] == (uint64)args.skaddr) {
      delete(@lst[(uint16)args.sport, (uint16)args.family]);
    }
  }
}
"""

_ACCEPT = r"""
tracepoint:syscalls:sys_exit_accept4, tracepoint:syscalls:sys_exit_accept
/args.ret >= 0/
{
  $t = (struct task_struct *)curtask;
  $f = $t->files->fdt->fd[args.ret];
  $sock = (struct socket *)$f->private_data;
  $sk = $sock->sk;
  printf("%s %d %d %d %d %d %d %r %r %d %d %d", "accepted", (uint64)$sk, $sk->__sk_common.skc_family,
         $sk->__sk_common.skc_num, bswap($sk->__sk_common.skc_dport),
         $sk->__sk_common.skc_rcv_saddr, $sk->__sk_common.skc_daddr,
         buf($sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8, 16),
         buf($sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16), args.ret,
         $sk->__sk_common.skc_net.net->ns.inum, PIDNS);
}
"""

# the listening sockets' addresses by (port, family), for the accept-queue check of the
# tracepoint set (consume_skb's packet has no device left to name its namespace: two listeners
# on one port in two namespaces share the slot, the one learned last is checked): learned
# at listen() (above), at accept(), and from getsockopt(SO_ACCEPTCONN), which the tool itself
# calls at start on a copy of every listening socket that existed before it (pidfd_getfd)
_LEARN = r"""
tracepoint:syscalls:sys_enter_accept4, tracepoint:syscalls:sys_enter_accept,
tracepoint:syscalls:sys_enter_getsockopt
{
  $f = ((struct task_struct *)curtask)->files->fdt->fd[args.fd];
  $sock = (struct socket *)$f->private_data;
  $sk = $sock->sk;
  if ($sk->__sk_common.skc_state == 10 && $sock->type == 1) {
    @lst[(uint16)$sk->__sk_common.skc_num, (uint16)$sk->__sk_common.skc_family] = (uint64)$sk;
  }
}
"""


def _packet(kind: str, code: str, indent: str = "    ") -> str:
    """The printf of an IPv4 or IPv6 packet's addresses and TCP/UDP ports, ``$skb`` given;
    ``$nh``/``$th``/``$ports``/``$flags``/``$ns`` are set by the caller."""
    return f"""{indent}if ($v == 0x0800) {{
{indent}  $ip = (struct iphdr *)$nh;
{indent}  printf("%s %d %d %d %d %d %d %r %r %d %d %d", "{kind}", {code}, $ip->protocol, $ports, $flags,
{indent}         $ip->daddr, $ip->saddr, buf($ip->daddr, 0), buf($ip->saddr, 0), 4, $ns, 0);
{indent}}} else {{
{indent}  $ip6 = (struct ipv6hdr *)$nh;
{indent}  printf("%s %d %d %d %d %d %d %r %r %d %d %d", "{kind}", {code}, $ip6->nexthdr, $ports, $flags, 0, 0,
{indent}         buf($ip6->daddr.in6_u.u6_addr8, 16), buf($ip6->saddr.in6_u.u6_addr8, 16), 6, $ns, 0);
{indent}}}
"""


_HEADERS = r"""
    $nh = $skb->head + $skb->network_header;
    $th = $skb->head + $skb->transport_header;
    $ports = *(uint32 *)$th;
    $flags = *(uint8 *)($th + 13);
    $ns = $skb->dev->nd_net.net->ns.inum;
"""


def _drops(rx_sk: bool) -> str:
    """``skb:kfree_skb``: drops with a reason; with ``rx_sk`` (Linux 6.11+) also the RST that
    ends a pending connection request (a half-open SYN scan): ``tcp_check_req()`` drops it with
    NOT_SPECIFIED on the listener."""
    knock = rxns = ""
    if rx_sk:
        # once a socket took the packet its device may be gone (skb->dev NULL): its namespace
        rxns = """
    if (args.rx_sk != 0) { $ns = ((struct sock *)args.rx_sk)->__sk_common.skc_net.net->ns.inum; }
"""
        knock = r"""
    if (args.reason == SKB_DROP_REASON_NOT_SPECIFIED && ($flags & 0x04) && args.rx_sk != 0) {
      $rx = (struct sock *)args.rx_sk;
      if ($rx->__sk_common.skc_state == 10) {
""" + _packet("knock", "1", "        ") + """      }
    }"""
    return r"""
tracepoint:skb:kfree_skb
/args.reason >= SKB_DROP_REASON_NOT_SPECIFIED && (args.protocol == 0x0800 || args.protocol == 0x86DD)/
{
  $skb = (struct sk_buff *)args.skbaddr;
  $v = args.protocol;
  if ($skb->skb_iif != 0) {""" + _HEADERS + rxns + r"""
    if (args.reason > SKB_DROP_REASON_NOT_SPECIFIED) {
""" + _packet("drop", "args.reason", "      ") + "    }" + knock + r"""
  }
}
"""


# tracepoint set: a SYN consumed while its listener's accept queue is full was dropped by
# tcp_conn_request() ("if (sk_acceptq_is_full(sk)) ... goto drop"; LINUX_MIB_LISTENOVERFLOWS):
# tcp_rcv_state_process() frees it with consume_skb(), not with a drop reason
_OVERFLOW_CONSUMED = r"""
tracepoint:skb:consume_skb
{
  $skb = (struct sk_buff *)args.skbaddr;
  $v = bswap($skb->protocol);
  if ($skb->skb_iif != 0 && ($v == 0x0800 || $v == 0x86DD)) {""" + _HEADERS + r"""
    if (($flags & 0x17) == 0x02) {
      $port = (uint16)bswap(*(uint16 *)($th + 2));
      $l = @lst[$port, (uint16)($v == 0x0800 ? 2 : 10)];
      if ($l == 0) { $l = @lst[$port, (uint16)10]; }
      if ($l != 0) {
        $lsk = (struct sock *)$l;
        $ns = $lsk->__sk_common.skc_net.net->ns.inum;
        if ($lsk->sk_ack_backlog > $lsk->sk_max_ack_backlog) {
""" + _packet("overflow", "0", "          ") + r"""        }
      }
    }
  }
}
"""

# a connection request whose SYN-ACK was never answered: its first retransmission
_SYNACK = r"""
tracepoint:tcp:tcp_retransmit_synack
{
  $req = (struct request_sock *)args.req;
  if ($req->num_retrans == 0) {
    $sk = (struct sock *)args.skaddr;
    printf("%s %d %d %d %d %d %d %r %r %d %d %d", "knock", 2, args.family, args.sport, args.dport,
           *(uint32 *)args.saddr, *(uint32 *)args.daddr, buf(args.saddr_v6, 16), buf(args.daddr_v6, 16), 0,
           $sk->__sk_common.skc_net.net->ns.inum, 0);
  }
}
"""

# kprobe set: the functions every SYN and every RST to a pending request goes through (the
# packet's device is gone by then: the namespace is the listener's)
_KPROBES = r"""
kprobe:tcp_conn_request
{
  $lsk = (struct sock *)arg2;
  if ($lsk->sk_ack_backlog > $lsk->sk_max_ack_backlog) {
    $skb = (struct sk_buff *)arg3;
    $v = bswap($skb->protocol);""" + _HEADERS + r"""
    $ns = $lsk->__sk_common.skc_net.net->ns.inum;
""" + _packet("overflow", "0") + r"""  }
}

kprobe:tcp_check_req
{
  $skb = (struct sk_buff *)arg1;
  $th = $skb->head + $skb->transport_header;
  if (*(uint8 *)($th + 13) & 0x04) {
    $v = bswap($skb->protocol);""" + _HEADERS + r"""
    $ns = ((struct sock *)arg0)->__sk_common.skc_net.net->ns.inum;
""" + _packet("knock", "1") + r"""  }
}
"""

#: What each hook set hooks, as ``--verbose`` says it.
HOOKS = {
    "tracepoints": "sock:inet_sock_set_state (SYN_RECV->ESTABLISHED; listen()), accept()/accept4() returns, "
                   "skb:kfree_skb (drop reasons from BTF; with rx_sk: RSTs ending a pending request), "
                   "skb:consume_skb (SYNs dropped by a full accept queue of a known listener), "
                   "tcp:tcp_retransmit_synack (SYN-ACKs never answered)",
    "kprobes": "sock:inet_sock_set_state (SYN_RECV->ESTABLISHED), accept()/accept4() returns, "
               "skb:kfree_skb (drop reasons from BTF), kprobes tcp_conn_request (every SYN: accept queue "
               "full) and tcp_check_req (RSTs ending a pending request), tcp:tcp_retransmit_synack",
}


def program(hooks: str = "tracepoints", rx_sk: bool = True) -> str:
    """The program for a hook set (:data:`HOOKS`); ``rx_sk``: ``skb:kfree_skb`` has the field
    (Linux 6.11+; only the tracepoint set uses it)."""
    text = _STATES + _ACCEPT + _SYNACK
    if hooks == "kprobes":
        text += _drops(False) + _KPROBES
    else:
        text += _LEARN + _drops(rx_sk) + _OVERFLOW_CONSUMED
    return text.replace("PIDNS", _PIDNS)


#: The tracepoint-set program as a kernel with ``rx_sk`` (6.11+) runs it.
PROGRAM = program()

#: ``knock`` records' codes: how the half-open connection request ended.
KNOCKS = {1: "RST_AFTER_SYNACK", 2: "SYNACK_UNANSWERED"}

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
    """A JSON-ready event from one record of :func:`program`.

    Every record is ``kind, a, b, c, d, local4, remote4, local6, remote6, x[, netns, pidns]``
    (IPv4 addresses as the u32 in memory order, IPv6 as 16 bytes). Kinds: ``handshake`` and
    ``accepted`` (a socket), ``drop`` (a packet and the kernel's drop reason), ``overflow`` (a
    SYN dropped by a full accept queue), ``knock`` (a connection request that ended half-open:
    ``a`` is a :data:`KNOCKS` code; code 2 comes from a request socket, laid out like a
    handshake)."""
    vals = list(rec.values)
    kind, a, b, c, dd, l4, r4, l6, r6, x = vals[:10]
    netns, pidns = (vals[10] or None, vals[11] or None) if len(vals) >= 12 else (None, None)
    d: Dict[str, Any] = {"ts": rec.ts}
    if kind in ("handshake", "accepted") or (kind == "knock" and a == 2):
        fam = b
        v6 = fam == socket.AF_INET6
        local = _ip(bytes(l6), True) if v6 else _ip4(l4)
        remote = _ip(bytes(r6), True) if v6 else _ip4(r4)
        # inet_sock_set_state and tcp_retransmit_synack: sport is the local (listening) port
        d.update(saddr=remote, sport=dd, daddr=local, dport=c)
        if kind == "accepted":
            d.update(pid=rec.pid, comm=rec.comm, fd=x)
        if kind == "knock":
            d.update(outcome="knock", proto="tcp", family="ipv6" if v6 else "ipv4", reason=KNOCKS[2], syn=None)
        else:
            d.update(outcome=kind, proto="tcp", family="ipv6" if v6 else "ipv4", reason=None, sock=hex(a))
        d.update(netns=netns, pidns=pidns)
        return d
    reason, proto, ports, flags = a, b, c, dd
    v6 = x == 6
    if kind == "overflow":
        name = "TCP_LISTEN_OVERFLOW"
    elif kind == "knock":
        name = KNOCKS.get(reason, str(reason))
    else:
        name = reasons.get(reason, str(reason))
        if name in LOCAL_REASONS:
            return None
    sport, dport = struct.unpack("!HH", struct.pack("<I", ports & 0xFFFFFFFF))
    pname = {6: "tcp", 17: "udp"}.get(proto)
    if pname is None:
        return None
    syn = bool(flags & 0x02) and not flags & 0x10
    if kind == "knock":
        outcome = "knock"
    elif pname == "tcp" and name == "NO_SOCKET":
        outcome = "refused" if syn else "dropped"   # a SYN gets a RST; a stray segment is just dropped
    elif pname == "udp" and name == "NO_SOCKET":
        outcome = "udp-closed"
    else:
        outcome = "dropped"
    local = _ip(bytes(l6), True) if v6 else _ip4(l4)
    remote = _ip(bytes(r6), True) if v6 else _ip4(r4)
    d.update(outcome=outcome, proto=pname, family="ipv6" if v6 else "ipv4", saddr=remote, sport=sport,
             daddr=local, dport=dport, reason=name, syn=syn if pname == "tcp" else None, netns=netns, pidns=pidns)
    return d


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
