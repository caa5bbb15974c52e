"""`undertow arp`: ARP requests and replies, with the process where one is responsible.

Hooks (tracepoints + BPF reading the packet; no kprobes, no packet capture):

- ``net:net_dev_queue``: every frame handed to a device; an ARP one (``skb->protocol``) is
  read from ``skb->data`` (the Ethernet header, then ARP);
- ``net:netif_receive_skb``: every received frame; ARP read from ``skb->data`` (the ARP
  header: Ethernet is already pulled);
- who sent it: ``socket(AF_PACKET)`` fds are remembered per process, and a
  ``sendto``/``sendmsg`` on one marks the thread while it runs — a frame queued then comes
  from that process (the kernel transmits synchronously in the sender's context). Anything
  else is the kernel's own ARP (neighbour resolution, replies), marked ``kernel``.

User space decodes (tools/decode/arp.py), flags gratuitous ARP, and remembers IP -> MAC to
flag a MAC change for a known IP (ARP spoofing).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

from .decode.arp import ArpWatch, decode_arp

__all__ = ["PROGRAM", "Parser"]

PROGRAM = r"""
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

tracepoint:syscalls:sys_enter_sendto, tracepoint:syscalls:sys_enter_sendmsg, tracepoint:syscalls:sys_enter_write
/@pkt[pid, args.fd]/
{
  @sending[tid] = 1;
}

tracepoint:syscalls:sys_exit_sendto, tracepoint:syscalls:sys_exit_sendmsg, tracepoint:syscalls:sys_exit_write
/@sending[tid]/
{
  delete(@sending[tid]);
}

tracepoint:net:net_dev_queue
{
  $skb = (struct sk_buff *)args.skbaddr;
  if ($skb->protocol == 0x0608) {
    printf("%s %d %r %s", "out", @sending[tid], buf($skb->data, 42), str(args.name));
  }
}

tracepoint:net:netif_receive_skb
{
  $skb = (struct sk_buff *)args.skbaddr;
  if ($skb->protocol == 0x0608) {
    printf("%s %d %r %s", "in", 0, buf($skb->data, 28), str(args.name));
  }
}
"""


class Parser:
    """Records to events; keeps the IP -> MAC table that flags changes."""

    def __init__(self) -> None:
        self.watch = ArpWatch()

    def __call__(self, rec: Any) -> Optional[Dict[str, Any]]:
        direction, by_proc, data, ifname = rec.values
        pkt = decode_arp(bytes(data), ethernet=direction == "out")
        d: Dict[str, Any] = {"ts": rec.ts, "direction": direction, "interface": ifname, "op": pkt.op_name,
                             "sender_mac": pkt.sender_mac, "sender_ip": pkt.sender_ip,
                             "target_mac": pkt.target_mac, "target_ip": pkt.target_ip,
                             "gratuitous": pkt.gratuitous, "error": pkt.error, "mac_changed_from": None}
        if direction == "out" and by_proc:
            d.update(origin="process", pid=rec.pid, comm=rec.comm)
        else:
            d.update(origin="kernel" if direction == "out" else "network", pid=None, comm=None)
        moved = self.watch.observe(pkt)
        if moved is not None:
            d["mac_changed_from"] = moved[1]
        return d
