"""Pure decoders for what the incident-response tools capture.

Everything here is standard library only (``struct``, ``socket``, ``ipaddress``)
and works on bytes a BPF program copied out of the kernel (``sk_buff`` data,
``struct sockaddr`` from connect()/sendto()/bind() arguments, UDP/TCP payloads)
or on files under ``/proc``. Inputs are treated as hostile: a decoder never
raises on truncated or malicious bytes; it returns a partial result with
``truncated=True`` and/or ``error="..."`` and keeps the raw bytes. Escaping of
names for a terminal is the output layer's job, not the decoders'.

Modules:

- :mod:`.inet`  IPv4/IPv6/TCP/UDP headers and ``struct sockaddr`` families.
- :mod:`.dns`   DNS messages (UDP and TCP framing), names with compression.
- :mod:`.icmp`  ICMP/ICMPv6 headers, echo fields, the tunnel heuristic.
- :mod:`.arp`   Ethernet + ARP, gratuitous ARP, :class:`~.arp.ArpWatch`.
- :mod:`.proc`  process details read from ``/proc/<pid>`` at event time.
"""

from __future__ import annotations

from undertow.errors import UndertowError


class DecodeError(UndertowError, ValueError):
    """Bytes that cannot be decoded at all.

    The decoders in this package prefer partial results (``error=...``) and
    only raise this from the explicitly strict helpers that document it.
    """


__all__ = ["DecodeError"]
