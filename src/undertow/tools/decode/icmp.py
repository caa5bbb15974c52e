"""ICMP and ICMPv6 messages, with a heuristic that flags echo payloads unlike a ping.

Tunnel heuristic (``tunnel_indicators``): an echo request/reply is *normal*
when its data matches a common ping implementation —

- Linux iputils/BusyBox: optional 8- or 16-byte ``struct timeval``/timestamp,
  then bytes counting up from 0x08/0x10 (``ping -s N`` keeps the pattern);
- Windows: the 32-byte alphabet ``abcdefghijklmnopqrstuvwabcdefghi`` (repeated);
- all-zero or single-byte-repeated fill (``ping -p``).

Otherwise the reasons say why it looks unusual: a data size other than the
common ones (0, 8, 16, 32, 48, 56, 64 bytes) or above 64, high byte entropy
(encrypted/compressed data), mostly printable text, or text that looks like
HTTP, DNS names or shell commands. Limits: a tunnel that imitates the iputils
pattern, or uses only timing and sizes, is not caught; a legitimate
``ping -s 1400`` is flagged as "unusual size" (a hint, not a verdict).
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, field
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

ICMP_TYPES = {0: "echo-reply", 3: "dest-unreachable", 4: "source-quench", 5: "redirect",
              8: "echo-request", 9: "router-advert", 10: "router-solicit", 11: "time-exceeded",
              12: "parameter-problem", 13: "timestamp", 14: "timestamp-reply"}
ICMP6_TYPES = {1: "dest-unreachable", 2: "packet-too-big", 3: "time-exceeded", 4: "parameter-problem",
               128: "echo-request", 129: "echo-reply", 133: "router-solicit", 134: "router-advert",
               135: "neighbor-solicit", 136: "neighbor-advert", 137: "redirect"}
UNREACH_CODES = {0: "net", 1: "host", 2: "protocol", 3: "port", 4: "frag-needed", 9: "net-prohibited",
                 10: "host-prohibited", 13: "admin-prohibited"}
COMMON_SIZES = {0, 8, 16, 32, 48, 56, 64}
WINDOWS = b"abcdefghijklmnopqrstuvwabcdefghi"


@dataclass
class ICMPMessage:
    type: int
    code: int
    v6: bool = False
    id: Optional[int] = None
    seq: Optional[int] = None
    payload: bytes = b""
    indicators: List[str] = field(default_factory=list)
    error: Optional[str] = None

    @property
    def type_name(self) -> str:
        names = ICMP6_TYPES if self.v6 else ICMP_TYPES
        return names.get(self.type, f"type-{self.type}")

    @property
    def code_name(self) -> str:
        if not self.v6 and self.type == 3:
            return UNREACH_CODES.get(self.code, str(self.code))
        return str(self.code)

    @property
    def is_echo(self) -> bool:
        return self.type in ((128, 129) if self.v6 else (0, 8))


def decode_icmp(data: bytes, v6: bool = False, size: Optional[int] = None) -> ICMPMessage:
    """Decode an ICMP (or ICMPv6) message starting at its type byte. ``data`` may be the
    first bytes only: ``size`` is the message's true length (header included), which the
    size indicator judges."""
    if len(data) < 4:
        return ICMPMessage(data[0] if data else -1, data[1] if len(data) > 1 else -1, v6,
                           error="shorter than the 4-byte header", payload=bytes(data))
    m = ICMPMessage(data[0], data[1], v6)
    if m.is_echo:
        if len(data) < 8:
            m.error = "echo header cut short"
            return m
        m.id, m.seq = struct.unpack_from("!HH", data, 4)
        m.payload = bytes(data[8:])
        m.indicators = tunnel_indicators(m.payload, None if size is None else max(0, size - 8))
    else:
        m.payload = bytes(data[4:])
    return m


#: Bytes counting up from 0 and wrapping at 256: a counting run of up to 768 bytes is a slice
#: of it (the comparison runs in C: ~0.3 us for a 48-byte payload, ~3 us with a byte loop).
_RAMP = bytes(range(256)) * 4


def _counting(data: bytes) -> bool:
    """Whether ``data`` counts up by one from its first byte (wrapping 0xFF -> 0x00)."""
    n = len(data)
    if n == 0:
        return False
    if n <= len(_RAMP) - 256:
        return data == _RAMP[data[0]:data[0] + n]
    return all(data[i] == (data[0] + i) & 0xFF for i in range(n))


def looks_like_ping(payload: bytes) -> bool:
    """Whether ``payload`` matches a common ping implementation's fill."""
    if not payload or payload.count(payload[:1]) == len(payload):  # one byte repeated
        return True
    for skip in (0, 8, 16):
        rest = payload[skip:]
        if not rest or _counting(rest):
            return True
    reps = WINDOWS * (len(payload) // len(WINDOWS) + 1)
    return payload == reps[: len(payload)]


def entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte."""
    if not data:
        return 0.0
    counts = [0] * 256
    for b in data:
        counts[b] += 1
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in counts if c)


_TEXTY = [(re.compile(rb"(GET|POST|HTTP/1\.[01])"), "HTTP-like text"),
          (re.compile(rb"([a-z0-9-]{2,63}\.){2,}[a-z]{2,}"), "contains a host name"),
          (re.compile(rb"(/bin/|sh -c|wget |curl |bash)"), "contains shell commands")]


#: (payload, size) -> indicators, of the payloads seen last: a flood repeating one payload
#: (``ping -f -p``, a tool's fixed data) is judged once, not per packet (bounded; ~4 us per
#: echo for a 14-byte text payload, issue 18's bench). An iputils payload carries a timestamp:
#: each is judged (~2 us with the fill check in C, 5.9 us with the byte loop).
_JUDGED: Dict[Tuple[bytes, Optional[int]], List[str]] = {}


def tunnel_indicators(payload: bytes, size: Optional[int] = None) -> List[str]:
    """Reasons an echo payload does not look like a ping (empty: looks normal).
    ``payload`` may be its first bytes only; ``size``: the payload's true length."""
    key = (payload, size)
    hit = _JUDGED.get(key)
    if hit is None:
        hit = _judge(payload, size)
        if len(_JUDGED) >= 256:
            _JUDGED.clear()
        _JUDGED[key] = hit
    return list(hit)


def _judge(payload: bytes, size: Optional[int]) -> List[str]:
    if looks_like_ping(payload):
        return []
    out: List[str] = []
    n = len(payload) if size is None else size
    if n > 64 or n not in COMMON_SIZES:
        out.append(f"unusual size ({n} bytes)")
    if n >= 32 and entropy(payload) > 6.0:
        out.append(f"high entropy ({entropy(payload):.1f} bits/byte)")
    printable = sum(1 for b in payload if 0x20 <= b < 0x7F or b in (9, 10, 13))
    if n >= 8 and printable / n > 0.85:
        out.append("mostly printable text")
    for rx, why in _TEXTY:
        if rx.search(payload):
            out.append(why)
    if not out:
        out.append("payload is not a known ping pattern")
    return out
