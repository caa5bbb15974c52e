"""Formatting of field values by their display format (``EmitField.fmt``).

Shared by text and JSON output so both say the same thing: ``ipv4`` values
become dotted quads, ``b16``/``b32``/``b64`` byte-swapped decimals,
``B16``/... byte-swapped hex, ``x`` hex. Raw bytes stay bytes until the
renderer decides how to show them.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are strings: typing is not imported at run time (start-up)
    from typing import Any, Optional


def bswap(value: int, size: int) -> int:
    """Swap the byte order of the low ``size`` bytes of ``value``."""
    mask = (1 << (8 * size)) - 1
    return int.from_bytes((value & mask).to_bytes(size, "little"), "big")


def ipv4_from_raw(value: int) -> str:
    """A u32 loaded little-endian from network-order bytes -> ``a.b.c.d``."""
    return "%d.%d.%d.%d" % tuple((value & 0xFFFFFFFF).to_bytes(4, "little"))


def ipv6(raw: bytes) -> str:
    """16 network-order bytes -> the RFC 5952 text (``::1``, ``::ffff:127.0.0.1``)."""
    import ipaddress  # imported on first use: ~2 ms of start-up otherwise

    return str(ipaddress.IPv6Address(raw))


def format_value(value: Any, fmt: Optional[str]) -> Any:
    """The display value of ``value`` under ``fmt`` (a str for formatted ints)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if fmt == "s" and value >= 1 << 63:
            return value - (1 << 64)
        if fmt == "s32":
            v = value & 0xFFFFFFFF
            return v - (1 << 32) if v >= 1 << 31 else v
        if fmt in ("str", "ustr"):
            # a pointer the backend could not dereference (ftrace tracepoints)
            return hex(value)
        if fmt == "x":
            return hex(value & 0xFFFFFFFFFFFFFFFF) if value < 0 else hex(value)
        if fmt == "ipv4":
            return ipv4_from_raw(value)
        if fmt in ("b16", "b32", "b64"):
            return bswap(value, int(fmt[1:]) // 8)
        if fmt in ("B16", "B32", "B64"):
            return hex(bswap(value, int(fmt[1:]) // 8))
        return value
    if isinstance(value, (bytes, bytearray)) and fmt == "ipv6" and len(value) == 16:
        return ipv6(bytes(value))
    if isinstance(value, (bytes, bytearray)) and fmt == "ipv4" and len(value) == 4:
        return "%d.%d.%d.%d" % tuple(value)
    if isinstance(value, list) and fmt == "ipv6" and len(value) == 16:
        return ipv6(bytes(v & 0xFF for v in value))
    return value
