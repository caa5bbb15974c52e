"""DNS messages (RFC 1035), as a BPF program copies them from sendto()/sendmmsg() buffers.

Hostile input is normal: names are followed through compression pointers with
a jump limit and loop detection, every length is bounds-checked, and a message
cut short (a tracer copies at most N bytes) still yields what could be read,
with ``truncated=True``. Nothing here raises on bad bytes.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

QTYPES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
    17: "RP", 18: "AFSDB", 24: "SIG", 25: "KEY", 28: "AAAA", 29: "LOC", 33: "SRV", 35: "NAPTR",
    36: "KX", 37: "CERT", 39: "DNAME", 41: "OPT", 43: "DS", 44: "SSHFP", 46: "RRSIG", 47: "NSEC",
    48: "DNSKEY", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 59: "CDS", 60: "CDNSKEY",
    61: "OPENPGPKEY", 64: "SVCB", 65: "HTTPS", 99: "SPF", 249: "TKEY", 250: "TSIG",
    251: "IXFR", 252: "AXFR", 255: "ANY", 256: "URI", 257: "CAA",
}
QCLASSES = {1: "IN", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}
OPCODES = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE", 6: "DSO"}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
          6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE"}

MAX_JUMPS = 32       # compression pointers followed per name
MAX_NAME = 255       # RFC 1035 2.3.4
MAX_RECORDS = 64     # per section: a hostile count cannot make us loop long


def qtype_name(t: int) -> str:
    return QTYPES.get(t, f"TYPE{t}")


@dataclass
class Question:
    name: str
    qtype: int
    qclass: int

    @property
    def type_name(self) -> str:
        return qtype_name(self.qtype)

    @property
    def class_name(self) -> str:
        return QCLASSES.get(self.qclass & 0x7FFF, f"CLASS{self.qclass}")


@dataclass
class Answer:
    name: str
    rtype: int
    rclass: int
    ttl: int
    data: object  # str for A/AAAA/CNAME/NS/PTR, (pref, host) for MX, [str] for TXT, bytes otherwise

    @property
    def type_name(self) -> str:
        return qtype_name(self.rtype)


@dataclass
class Message:
    """A decoded DNS message. ``error`` says why decoding stopped early."""

    id: int = 0
    flags: int = 0
    questions: List[Question] = field(default_factory=list)
    answers: List[Answer] = field(default_factory=list)
    counts: Tuple[int, int, int, int] = (0, 0, 0, 0)
    truncated: bool = False
    error: Optional[str] = None
    raw: bytes = b""

    @property
    def is_response(self) -> bool:
        return bool(self.flags & 0x8000)

    @property
    def opcode(self) -> str:
        op = (self.flags >> 11) & 0xF
        return OPCODES.get(op, f"OPCODE{op}")

    @property
    def rcode(self) -> str:
        rc = self.flags & 0xF
        return RCODES.get(rc, f"RCODE{rc}")

    @property
    def tc(self) -> bool:
        """The TC bit: the server truncated the answer (the client retries over TCP)."""
        return bool(self.flags & 0x0200)


class _Cut(Exception):
    """Internal: the data ended (truncated) or is malformed (error)."""

    def __init__(self, why: str, truncated: bool) -> None:
        super().__init__(why)
        self.why, self.truncated = why, truncated


class _Long(_Cut):
    """Internal: a name longer than 255 bytes (RFC 1035 2.3.4), read whole anyway: ``name``
    and ``end`` (the offset past it) let the question be kept; ``cut``: the data ended inside
    the name (the capture cut it)."""

    def __init__(self, name: str, end: int, size: int, cut: bool) -> None:
        why = f"name longer than 255 bytes ({size}{'+' if cut else ''} bytes" + \
            (", cut short by the capture)" if cut else ")")
        super().__init__(why, cut)
        self.name, self.end = name, end


def read_name(data: bytes, off: int) -> Tuple[str, int]:
    """The name at ``off`` and the offset just past it (pointers followed, loops refused).
    A name over 255 bytes raises ``_Long`` with what was read (tunnels exceed the limit)."""
    labels: List[str] = []
    end: Optional[int] = None
    jumps = 0
    seen = set()
    total = 0
    while True:
        if off >= len(data):
            if total > MAX_NAME:
                raise _Long(".".join(labels) + ".", end if end is not None else off, total, True)
            raise _Cut("name runs past the end", True)
        n = data[off]
        if n == 0:
            off += 1
            break
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(data):
                raise _Cut("compression pointer cut short", True)
            ptr = ((n & 0x3F) << 8) | data[off + 1]
            if end is None:
                end = off + 2
            jumps += 1
            if ptr in seen or jumps > MAX_JUMPS:
                raise _Cut("compression pointer loop", False)
            if ptr >= len(data):
                raise _Cut("compression pointer past the end", True)
            seen.add(ptr)
            off = ptr
            continue
        if n & 0xC0:
            raise _Cut(f"reserved label type {n >> 6:#x}", False)
        if off + 1 + n > len(data):
            if total > MAX_NAME or total + 1 + n > MAX_NAME:
                labels.append(_label_text(data[off + 1:]))
                raise _Long(".".join(labels) + ".", len(data), total + 1 + n, True)
            raise _Cut("label runs past the end", True)
        label = data[off + 1: off + 1 + n]
        total += n + 1
        labels.append(_label_text(label))
        off += 1 + n
    name = ".".join(labels) + "." if labels else "."
    if total > MAX_NAME:
        raise _Long(name, end if end is not None else off, total + 1, False)
    return name, (end if end is not None else off)


def _label_text(label: bytes) -> str:
    # Keep bytes exact and visible: escape anything but LDH-ish printable ASCII
    # the way dig does (\DDD), and escape dots inside labels.
    if label.isalnum() or label.replace(b"-", b"").replace(b"_", b"").isalnum():
        return label.decode("ascii")  # letters, digits, '-' and '_' (bytes.isalnum is ASCII-only)
    out = []
    for b in label:
        c = chr(b)
        if c == "." or c == "\\":
            out.append("\\" + c)
        elif 0x21 <= b <= 0x7E:
            out.append(c)
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)


def decode_message(data: bytes) -> Message:
    """Decode one DNS message from ``data`` (UDP payload, or one TCP frame without its prefix)."""
    msg = Message(raw=bytes(data))
    if len(data) < 12:
        msg.truncated, msg.error = True, "shorter than the 12-byte header"
        if len(data) >= 2:
            msg.id = struct.unpack_from("!H", data)[0]
        return msg
    msg.id, msg.flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", data)
    msg.counts = (qd, an, ns, ar)
    off = 12
    try:
        for _ in range(min(qd, MAX_RECORDS)):
            try:
                name, off = read_name(data, off)
            except _Long as long:
                # keep the question: the real id, the name as read, its type when captured
                name, off, msg.error = long.name, long.end, long.why
                qtype, qclass = struct.unpack_from("!HH", data, off) if off + 4 <= len(data) else (0, 0)
                msg.questions.append(Question(name, qtype, qclass))
                msg.truncated = long.truncated
                return msg
            if off + 4 > len(data):
                raise _Cut("question cut short", True)
            qtype, qclass = struct.unpack_from("!HH", data, off)
            off += 4
            msg.questions.append(Question(name, qtype, qclass))
        for _ in range(min(an, MAX_RECORDS)):
            ans, off = _read_rr(data, off)
            msg.answers.append(ans)
    except _Cut as c:
        msg.truncated, msg.error = c.truncated, c.why
    return msg


def _read_rr(data: bytes, off: int) -> Tuple[Answer, int]:
    name, off = read_name(data, off)
    if off + 10 > len(data):
        raise _Cut("record header cut short", True)
    rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", data, off)
    off += 10
    if off + rdlen > len(data):
        raise _Cut("record data cut short", True)
    rdata = data[off: off + rdlen]
    value: object = bytes(rdata)
    try:
        if rtype == 1 and rdlen == 4:
            value = str(ipaddress.IPv4Address(rdata))
        elif rtype == 28 and rdlen == 16:
            value = str(ipaddress.IPv6Address(rdata))
        elif rtype in (2, 5, 12, 39):
            value, _ = read_name(data, off)
        elif rtype == 15 and rdlen >= 3:
            value = (struct.unpack_from("!H", data, off)[0], read_name(data, off + 2)[0])
        elif rtype == 16:
            texts, i = [], 0
            while i < rdlen:
                n = rdata[i]
                texts.append(rdata[i + 1: i + 1 + n].decode("utf-8", "backslashreplace"))
                i += 1 + n
            value = texts
    except _Cut:
        value = bytes(rdata)  # keep it raw; the record itself was complete
    return Answer(name, rtype, rclass, ttl, value), off + rdlen


def decode_tcp_stream(data: bytes) -> List[Message]:
    """DNS over TCP: messages each preceded by a 2-byte length (RFC 7766)."""
    out: List[Message] = []
    off = 0
    while off + 2 <= len(data) and len(out) < MAX_RECORDS:
        n = struct.unpack_from("!H", data, off)[0]
        chunk = data[off + 2: off + 2 + n]
        m = decode_message(chunk)
        if len(chunk) < n:
            m.truncated = True
            m.error = m.error or "TCP frame cut short"
        out.append(m)
        off += 2 + n
    return out


def looks_like_dns(data: bytes) -> bool:
    """A cheap plausibility test for payloads on unusual ports (opcode QUERY, 1..16 questions)."""
    if len(data) < 17:
        return False
    _, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", data)
    if (flags >> 11) & 0xF not in (0, 4, 5) or not 1 <= qd <= 16:
        return False
    m = decode_message(data)
    return bool(m.questions) and m.error is None or (m.truncated and bool(m.questions))
