"""Ethernet + ARP frames, gratuitous ARP, and MAC changes for a known IP."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple

ETH_P_ARP = 0x0806
BROADCAST = "ff:ff:ff:ff:ff:ff"


def mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


@dataclass
class ARPPacket:
    op: int
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str
    eth_dst: Optional[str] = None
    eth_src: Optional[str] = None
    error: Optional[str] = None

    @property
    def op_name(self) -> str:
        return {1: "request", 2: "reply"}.get(self.op, f"op-{self.op}")

    @property
    def gratuitous(self) -> bool:
        """Announcing itself: sender IP == target IP, or a reply sent to broadcast."""
        if self.sender_ip and self.sender_ip == self.target_ip:
            return True
        return self.op == 2 and (self.eth_dst == BROADCAST or self.target_mac == BROADCAST)


def decode_arp(data: bytes, ethernet: bool = True) -> ARPPacket:
    """An ARP packet for Ethernet/IPv4, with the Ethernet header first when ``ethernet``."""
    eth_dst = eth_src = None
    if ethernet:
        if len(data) < 14:
            return ARPPacket(0, "", "", "", "", error="Ethernet header cut short")
        eth_dst, eth_src = mac_str(data[0:6]), mac_str(data[6:12])
        etype = struct.unpack_from("!H", data, 12)[0]
        if etype != ETH_P_ARP:
            return ARPPacket(0, "", "", "", "", eth_dst, eth_src, error=f"not ARP (ethertype {etype:#06x})")
        data = data[14:]
    if len(data) < 8:
        return ARPPacket(0, "", "", "", "", eth_dst, eth_src, error="ARP header cut short")
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", data)
    if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
        return ARPPacket(op, "", "", "", "", eth_dst, eth_src,
                         error=f"not Ethernet/IPv4 ARP (htype {htype}, ptype {ptype:#x})")
    if len(data) < 28:
        return ARPPacket(op, "", "", "", "", eth_dst, eth_src, error="ARP body cut short")
    return ARPPacket(op, mac_str(data[8:14]), str(ipaddress.IPv4Address(data[14:18])),
                     mac_str(data[18:24]), str(ipaddress.IPv4Address(data[24:28])), eth_dst, eth_src)


class ArpWatch:
    """Remembers IP -> MAC from ARP senders and reports changes (possible spoofing)."""

    def __init__(self) -> None:
        self.table: Dict[str, str] = {}

    def observe(self, pkt: ARPPacket) -> Optional[Tuple[str, str, str]]:
        """``(ip, old_mac, new_mac)`` when ``pkt`` moves a known IP to another MAC."""
        if pkt.error or not pkt.sender_ip or pkt.sender_ip == "0.0.0.0":
            return None
        old = self.table.get(pkt.sender_ip)
        self.table[pkt.sender_ip] = pkt.sender_mac
        if old is not None and old != pkt.sender_mac:
            return (pkt.sender_ip, old, pkt.sender_mac)
        return None
