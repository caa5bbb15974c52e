"""JSON lines: one object per event, always valid UTF-8.

Strings from the kernel may hold undecodable bytes (kept as surrogateescape
code points by decoders) or lone surrogates; they are turned into ``\\xNN``
text so every line parses with a strict JSON parser. Raw ``bytes`` values
become ``{"hex": "..."}`` objects, never lossy text.
"""

from __future__ import annotations

import json
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, TextIO

from ..events import Event, Lost, Stats
from .values import format_value


def clean(value: Any) -> Any:
    """A JSON-safe copy of ``value``."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return _unsurrogate(value)
    if isinstance(value, (bytes, bytearray)):
        return {"hex": bytes(value).hex()}
    if isinstance(value, dict):
        return {str(clean(k)): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def _unsurrogate(s: str) -> str:
    """``s`` with each undecodable byte (U+DC80..U+DCFF) as ``\\xNN`` text and any other
    lone surrogate as ``\\uXXXX`` text: what is left encodes as strict UTF-8."""
    out = []
    for ch in s:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


def event_dict(ev: Event) -> Dict[str, Any]:
    d = ev.to_dict()
    d["fields"] = {k: format_value(v, ev.formats.get(k)) for k, v in ev.fields.items()}
    return clean(d)


class JsonWriter:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def event(self, ev: Event) -> None:
        self.out.write(json.dumps(event_dict(ev), ensure_ascii=False) + "\n")

    def lost(self, rec: Lost) -> None:
        self.out.write(json.dumps({"lost": rec.count, "reason": rec.reason, "cpu": rec.cpu}) + "\n")

    def summary(self, stats: Stats, shown: Optional[int] = None) -> None:
        """``{"summary": {"events": {probe: n}, "lost": {reason: n}}}`` (counts of what was
        read), with ``"shown": n`` when ``--count`` printed fewer events than were read,
        ``"not_drained": n`` for records made before the stop and left unread, and
        ``"after_stop": n`` for records made after it (not shown, not lost)."""
        data: Dict[str, Any] = {"events": stats.events, "lost": stats.lost}
        if shown is not None:
            data["shown"] = shown
        if getattr(stats, "not_drained", 0):
            data["not_drained"] = stats.not_drained
        if getattr(stats, "after_stop", 0):
            data["after_stop"] = stats.after_stop
        self.out.write(json.dumps({"summary": data}) + "\n")
