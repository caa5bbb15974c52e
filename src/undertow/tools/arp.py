"""`undertow arp`: ARP requests and replies, with the process where one is responsible.

Hooks (tracepoints + BPF reading the packet; no kprobes, no packet capture):

- ``net:net_dev_queue``: every frame handed to a device; an ARP one (``skb->protocol``) is
  read from ``skb->data`` (the Ethernet header, then ARP);
- ``net:netif_receive_skb``: every received frame; ARP read from ``skb->data`` (the ARP
  header: Ethernet is already pulled);
- who sent it: the frame's socket. A frame a process wrote to an ``AF_PACKET`` socket carries
  it (``skb->sk``, ``skb_set_owner_w`` in net/packet/af_packet.c ``packet_snd``); the kernel's
  own ARP (neighbour resolution, and the replies it sends, ``arp_create``) has none: it is
  marked ``kernel`` even when it is queued in a process's context (a reply to a request the
  process sent over a veth is built in the same softirq, on the sender's thread). The
  socket's inode (``sk->sk_socket->file->f_inode``) names the process holding it:
  ``socket(AF_PACKET)`` fds are remembered per process and a send on one marks the thread
  while it runs (then the frame is that thread's); sockets made before the tool are found at
  start (sock_diag ``packet_diag``, /proc/PID/net/packet, /proc/PID/fd: tools/sockets.py),
  and an inode not known yet makes one /proc rescan (at most one a second).

Every record carries the network namespace of the device (``dev->nd_net``). User space
decodes (tools/decode/arp.py), flags gratuitous ARP, and remembers IP -> MAC per namespace
to flag a MAC change for a known IP (ARP spoofing).
"""

from __future__ import annotations

import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

from .decode.arp import ArpWatch, decode_arp
from .icmp import PIDNS

__all__ = ["PROGRAM", "BYPASS", "Parser", "program", "hook_set", "seed"]

# a frame handed to a device: its socket decides who sent it (see the module's docstring)
_OUT = r"""
    $sk = $skb->sk;
    $mine = 0;
    $ino = 0;
    if ($sk != 0) {{
      if ($sk->__sk_common.skc_family == 17) {{
        $ino = $sk->sk_socket->file->f_inode->i_ino;
        $mine = @sending[tid];
      }}
    }}
    printf("%s %d %d %d %d %r %s", "out", $mine, $ino, $skb->dev->nd_net.net->ns.inum, PIDNS,
           buf($skb->data, 42), {name});"""

#: Added where BPF kprobes work: frames of packet sockets with ``PACKET_QDISC_BYPASS`` go to
#: the driver through ``__dev_direct_xmit`` (net/core/dev.c), not ``__dev_queue_xmit``, so
#: ``net:net_dev_queue`` never sees them.
BYPASS = r"""
kprobe:__dev_direct_xmit
{
  $skb = (struct sk_buff *)arg0;
  if ($skb->protocol == 0x0608) {""" + _OUT.format(name="str($skb->dev->name)") + r"""
  }
}
"""

_SENDS = ", ".join(f"tracepoint:syscalls:sys_{{when}}_{c}" for c in ("sendto", "sendmsg", "sendmmsg", "write",
                                                                      "writev"))

_PROGRAM = r"""
tracepoint:syscalls:sys_enter_socket /args.family == 17/
{
  @pk[tid] = 1;
}

tracepoint:syscalls:sys_exit_socket /@pk[tid]/
{
  if (args.ret >= 0) {
    @pkt[pid, args.ret] = 1;
  }
  delete(@pk[tid]);
}

tracepoint:syscalls:sys_enter_close
{
  delete(@pkt[pid, args.fd]);
}

""" + _SENDS.format(when="enter") + r"""
/@pkt[pid, args.fd]/
{
  @sending[tid] = 1;
}

""" + _SENDS.format(when="exit") + r"""
/@sending[tid]/
{
  delete(@sending[tid]);
}

tracepoint:net:net_dev_queue
{
  $skb = (struct sk_buff *)args.skbaddr;
  if ($skb->protocol == 0x0608) {""" + _OUT.format(name="str(args.name)") + r"""
  }
}

tracepoint:net:netif_receive_skb
{
  $skb = (struct sk_buff *)args.skbaddr;
  if ($skb->protocol == 0x0608) {
    printf("%s %d %d %d %d %r %s", "in", 0, 0, $skb->dev->nd_net.net->ns.inum, 0, buf($skb->data, 28),
           str(args.name));
  }
}
"""


#: The tool's program on tracepoints (every kernel).
PROGRAM = _PROGRAM.replace("PIDNS", PIDNS)


def program(bypass: bool = False) -> str:
    """The tool's program; ``bypass``: also :data:`BYPASS` (kprobes)."""
    return PROGRAM + (BYPASS.replace("PIDNS", PIDNS) if bypass else "")


def hook_set() -> str:
    """``kprobes`` when BPF kprobes work and ``__dev_direct_xmit`` is there, else ``tracepoints``
    (:func:`undertow.tools.hooksets.choose`)."""
    from .hooksets import choose

    return choose("arp").hooks


def seed(session: Any, proc: str = "/proc") -> Dict[int, Tuple[int, int]]:
    """Put the packet sockets that exist now into ``@pkt`` under every (pid, fd) holding one;
    returns ``{socket inode: (pid, fd)}``."""
    import socket
    import struct

    from ..kernel.bpfsys import map_update_elem
    from .sockets import find_sockets

    fd_map = session.map_fds.get("@pkt")
    owners: Dict[int, Tuple[int, int]] = {}
    for s, pid, fd in find_sockets([], ["packet"], packet=True, proc=proc):
        if s.family != socket.AF_PACKET:
            continue
        owners.setdefault(s.inode, (pid, fd))
        if fd_map is not None:
            map_update_elem(fd_map, struct.pack("<QQ", pid, fd), struct.pack("<Q", 1))
    return owners


class Parser:
    """Records to events; keeps the IP -> MAC table (per network namespace) that flags changes,
    and the socket inode -> (pid, fd) table that names a frame's process."""

    def __init__(self, owners: Optional[Dict[int, Tuple[int, int]]] = None, proc: str = "/proc") -> None:
        self.watch: Dict[int, ArpWatch] = {}
        self.owners: Dict[int, Tuple[int, int]] = dict(owners or {})
        self.proc = proc
        self._rescanned = 0.0

    def owner(self, inode: int) -> Optional[Tuple[int, int]]:
        """The (pid, fd) holding socket ``inode``; an unknown inode rescans /proc/PID/fd (at
        most once a second: a burst of frames from a socket already gone costs one scan)."""
        hit = self.owners.get(inode)
        if hit is None and time.monotonic() - self._rescanned > 1.0:
            from .sockets import socket_fds

            self._rescanned = time.monotonic()
            found, _ns = socket_fds(self.proc)
            for ino, held in found.items():
                self.owners.setdefault(ino, held[0])
            hit = self.owners.get(inode)
        return hit

    def __call__(self, rec: Any) -> Optional[Dict[str, Any]]:
        direction, by_thread, inode, netns, pidns, data, ifname = rec.values
        pkt = decode_arp(bytes(data), ethernet=direction == "out")
        d: Dict[str, Any] = {"ts": rec.ts, "direction": direction, "interface": ifname, "op": pkt.op_name,
                             "sender_mac": pkt.sender_mac, "sender_ip": pkt.sender_ip,
                             "target_mac": pkt.target_mac, "target_ip": pkt.target_ip,
                             "gratuitous": pkt.gratuitous, "error": pkt.error, "mac_changed_from": None,
                             "netns": netns or None, "socket_inode": inode or None}
        if direction == "out" and by_thread:
            d.update(origin="process", pid=rec.pid, tid=rec.tid, comm=rec.comm, pidns=pidns or None)
        elif direction == "out" and inode:
            # a packet socket's frame sent by a path not followed (sendmmsg from a thread not
            # marked, io_uring...) or queued later: the socket's holder, from /proc
            held = self.owner(inode)
            pid = held[0] if held is not None else None
            d.update(origin="process", pid=pid, tid=None, comm=_comm(self.proc, pid), pidns=None)
        else:
            d.update(origin="kernel" if direction == "out" else "network", pid=None, tid=None, comm=None,
                     pidns=None)
        w = self.watch.get(netns)
        if w is None:
            w = self.watch[netns] = ArpWatch()
        moved = w.observe(pkt)
        if moved is not None:
            d["mac_changed_from"] = moved[1]
        return d


def _comm(proc: str, pid: Optional[int]) -> Optional[str]:
    if pid is None:
        return None
    try:
        with open(f"{proc}/{pid}/comm", "rb") as f:
            return f.read(64).decode("utf-8", "replace").rstrip("\n")
    except OSError:
        return None
