"""Where a protocol header of an ``struct sk_buff`` is: surftrace's ``@(struct iphdr *)l3%0``
and the payload views ``cdata/sdata/ldata/qdata[i]``, as ordinary IR.

surftrace's rule (seed 004, "skb 解析处理"): the marker ``l2``/``l3``/``l4`` after the type
says which layer ``skb->data`` points at (default ``l3``); a header of that layer is at
``skb->data``. A deeper header is found by stepping over the headers in between, with their
real lengths read from the packet:

- Ethernet: 14 bytes, plus 4 per 802.1Q (0x8100) or 802.1ad (0x88a8) tag (at most two);
- IPv4: IHL * 4 (the low nibble of the first byte); IPv6: 40 bytes (extension headers
  are not walked); any other version: no header (address 0: every read of it faults and
  shows 0).

``skb->data`` rather than ``skb->head + skb->network_header``: at the seed's probe point
(``__netif_receive_skb_core``'s entry) the skb's header offsets are not set yet for a
packet from a NIC (net/core/dev.c resets them a few lines later), while ``data`` points
at layer 3 (``eth_type_trans`` pulled the Ethernet header).

A payload element is at the header's address + the header's own length (IPv4 IHL,
TCP doff, fixed for the others) + index * element size.

The functions build *unresolved* IR from the address they start at (copied where it is
used more than once); the resolver types it like any expression, and each backend compiles
it with its usual means (the ftrace backend can when the address is a
chain of fixed offsets: a header at the marker's layer, a payload after a fixed-size one).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Optional

from . import ir

__all__ = ["LAYER", "header_addr", "payload_addr", "header_length", "FIXED_LENGTH"]

#: layer marker -> its number
LAYER = {"l2": 2, "l3": 3, "l4": 4}

#: Header struct -> its length when it does not depend on the packet
FIXED_LENGTH = {"ethhdr": 14, "ipv6hdr": 40, "udphdr": 8, "icmphdr": 8, "icmp6hdr": 8}

# Ethertypes as a little-endian u16 load of the big-endian field reads them (x86_64 and
# aarch64, the architectures undertow compiles for, are little-endian).
_ETH_P_8021Q_LE = 0x0081   # htons(0x8100)
_ETH_P_8021AD_LE = 0xa888  # htons(0x88a8)


def _c(v: int, span: "Optional[ir.Span]") -> ir.Expr:
    return ir.Const(v).at(span)


def _u(width: int, addr: ir.Expr, span: "Optional[ir.Span]") -> ir.Expr:
    """The ``width``-bit unsigned value at the integer address ``addr``."""
    return ir.Deref(ir.Cast(f"u{width} *", addr).at(span)).at(span)


def _add(a: ir.Expr, b: ir.Expr, span: "Optional[ir.Span]") -> ir.Expr:
    return ir.Binary("+", a, b).at(span)


def _eq(a: ir.Expr, v: int, span: "Optional[ir.Span]") -> ir.Expr:
    return ir.Binary("==", a, _c(v, span)).at(span)


def _is_vlan(a: ir.Expr, off: int, span: "Optional[ir.Span]") -> ir.Expr:
    """Whether the ethertype at ``a + off`` is a VLAN tag's (802.1Q or 802.1ad)."""
    proto = _u(16, _add(ir.clone(a), _c(off, span), span), span)
    return ir.Binary("||", _eq(proto, _ETH_P_8021Q_LE, span),
                     _eq(ir.clone(proto), _ETH_P_8021AD_LE, span)).at(span)


def _past_ethernet(a: ir.Expr, span: "Optional[ir.Span]") -> ir.Expr:
    """The address after the Ethernet header at ``a`` and its VLAN tags (at most two)."""
    two = ir.Ternary(_is_vlan(a, 16, span), _c(22, span), _c(18, span)).at(span)
    return _add(ir.clone(a), ir.Ternary(_is_vlan(a, 12, span), two, _c(14, span)).at(span), span)


def _past_ip(a: ir.Expr, span: "Optional[ir.Span]") -> ir.Expr:
    """The address after the IPv4/IPv6 header at ``a``; 0 when it is neither."""
    version = ir.Binary(">>", _u(8, ir.clone(a), span), _c(4, span)).at(span)
    v6 = ir.Ternary(_eq(ir.clone(version), 6, span), _add(ir.clone(a), _c(40, span), span), _c(0, span)).at(span)
    return ir.Ternary(_eq(version, 4, span), _add(ir.clone(a), header_length("iphdr", a, span), span), v6).at(span)


def header_addr(data: ir.Expr, marker: str, layer: str, span: "Optional[ir.Span]") -> ir.Expr:
    """The address (an integer) of a layer-``layer`` header when ``skb->data`` (``data``, an
    integer) points at layer ``marker``."""
    at, want = LAYER[marker], LAYER[layer]
    if want < at:
        raise ValueError(f"a layer-{want} header is before skb->data (layer {at})")
    addr = data
    if at == 2 and want >= 3:
        addr = _past_ethernet(addr, span)
    if at <= 3 and want == 4:
        addr = _past_ip(addr, span)
    return addr


def header_length(header: str, hdr: ir.Expr, span: "Optional[ir.Span]") -> ir.Expr:
    """The length of the ``struct header`` at the integer address ``hdr``, from the packet
    where the protocol says so (IPv4 IHL, TCP data offset)."""
    if header in FIXED_LENGTH:
        return _c(FIXED_LENGTH[header], span)
    if header == "iphdr":  # IHL: the low nibble of byte 0 (include/uapi/linux/ip.h)
        ihl = ir.Binary("&", _u(8, ir.clone(hdr), span), _c(15, span)).at(span)
        return ir.Binary("*", ihl, _c(4, span)).at(span)
    if header == "tcphdr":  # doff: the high nibble of byte 12 (include/uapi/linux/tcp.h)
        doff = ir.Binary(">>", _u(8, _add(ir.clone(hdr), _c(12, span), span), span), _c(4, span)).at(span)
        return ir.Binary("*", doff, _c(4, span)).at(span)
    raise ValueError(f"no length known for struct {header}")


def payload_addr(header: str, hdr: ir.Expr, elem_size: int, index: int, span: "Optional[ir.Span]") -> ir.Expr:
    """A ``u{8*elem_size} *`` to element ``index`` of the bytes after the header at ``hdr``."""
    length = header_length(header, hdr, span)
    skip = index * elem_size
    if isinstance(length, ir.Const) and isinstance(length.value, int):
        addr = _add(ir.clone(hdr), _c(length.value + skip, span), span)
    else:
        addr = _add(_add(ir.clone(hdr), length, span), _c(skip, span), span)
    return ir.Cast(f"u{8 * elem_size} *", addr).at(span)
