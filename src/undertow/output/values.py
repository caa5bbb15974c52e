"""Formatting of field values by their display format (``EmitField.fmt``), and
:func:`escape`, which makes any text a traced process controls safe for a terminal.

Shared by text and JSON output so both say the same thing: ``ipv4`` values
become dotted quads, ``b16``/``b32``/``b64`` byte-swapped decimals,
``B16``/... byte-swapped hex, ``x`` hex. Raw bytes stay bytes until the
renderer decides how to show them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, List, Optional, Tuple


_ESC = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def escape(text: Any) -> str:
    """``text`` made safe for a terminal (str, or bytes shown with ``\\xNN`` escapes)."""
    if type(text) is not str:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", "surrogateescape")
        else:
            text = str(text)
    if text.isprintable() and "\\" not in text:
        return text  # the common case, checked in C: nothing to escape
    out: List[str] = []
    for ch in text:
        o = ord(ch)
        if ch in _ESC:
            out.append(_ESC[ch])
        elif o < 0x20 or o == 0x7F or 0x80 <= o < 0xA0:
            out.append(f"\\x{o:02x}")
        elif 0xDC80 <= o <= 0xDCFF:  # undecodable byte (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        elif 0xD800 <= o <= 0xDFFF or o in (0x2028, 0x2029, 0x200E, 0x200F, 0x202A, 0x202B,
                                              0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069):
            # lone surrogates; line separators and bidi overrides can disguise text
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


def _encode_error(e: UnicodeError) -> "Tuple[bytes, int]":
    """Encoding error handler ``undertow.out`` (see :func:`safe_stream`)."""
    if not isinstance(e, UnicodeEncodeError):
        raise e
    out = bytearray()
    for ch in e.object[e.start:e.end]:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(o - 0xDC00)
        else:
            out += (f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}").encode()
    return bytes(out), e.end


def safe_stream(stream: Any) -> None:
    """Make a text stream (``sys.stdout``) write any ``str`` instead of raising
    UnicodeEncodeError in a locale whose stdout is strict (``en_US.UTF-8``): an undecodable
    byte the user gave (argv, a file; kept as a surrogate escape) is written as that byte,
    as the C locale does, and what the encoding lacks becomes ``\\uXXXX``. What a traced
    process controls is escaped before it gets here (:func:`escape`)."""
    import codecs

    try:
        codecs.lookup_error("undertow.out")
    except LookupError:
        codecs.register_error("undertow.out", _encode_error)
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors="undertow.out")
        except (AttributeError, ValueError, OSError):  # a stream that cannot change: left as it is
            pass


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
