"""Human text output: one event per line, control characters escaped.

A traced process can name itself with terminal escape sequences
(``prctl(PR_SET_NAME, "\\x1b]0;pwned\\x07")``); nothing it controls reaches the
terminal unescaped: control characters (C0, DEL, C1), backslashes and
undecodable bytes are shown as ``\\xNN``/``\\\\``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, TextIO

from ..events import Event, Lost, Stats
from .values import format_value

_ESC = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def escape(text: Any) -> str:
    """``text`` made safe for a terminal (str, or bytes shown with ``\\xNN`` escapes)."""
    if isinstance(text, str) and text.isprintable() and "\\" not in text:
        return text  # the common case, checked in C: nothing to escape
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "surrogateescape")
    elif not isinstance(text, str):
        text = str(text)
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


def show_value(value: Any, fmt: Optional[str]) -> str:
    if type(value) is int and (fmt is None or fmt == "u" or (fmt == "s" and value < 1 << 63)):
        return str(value)  # the common case: a plain number needs no formatting or escaping
    v = format_value(value, fmt)
    if isinstance(v, str):
        if fmt in ("x", "ipv4", "ipv6", "B16", "B32", "B64") or v.startswith("0x"):
            return escape(v)
        return '"' + escape(v).replace('"', '\\"') + '"'
    if isinstance(v, (bytes, bytearray)):
        return 'b"' + escape(bytes(v)).replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ",".join(show_value(x, fmt) for x in v) + "]"
    return escape(v)


class TextWriter:
    """Writes events as aligned lines: ``TIME CPU PID COMM PROBE field=value ...``.

    ``TIME`` is seconds since the session started (``t0`` ns) or, when
    ``absolute``, the kernel monotonic timestamp in seconds.
    """

    def __init__(self, out: TextIO, *, t0: Optional[int] = None, stacks: bool = True) -> None:
        self.out = out
        self.t0 = t0
        self.stacks = stacks
        self._header_done = False
        self._probe_width = 12
        self._names: Dict[str, str] = {}  # escaped probe and field names (few, repeated per event)

    def header(self) -> None:
        self.out.write(f"{'TIME(s)':>12} {'CPU':>3} {'PID':>7} {'TID':>7} {'COMM':<16} EVENT\n")
        self._header_done = True

    def event(self, ev: Event) -> None:
        if not self._header_done:
            self.header()
        if self.t0 is None:
            self.t0 = ev.ts
        t = (ev.ts - self.t0) / 1e9
        self._probe_width = max(self._probe_width, min(len(ev.probe), 40))
        names = self._names
        probe = names.get(ev.probe)
        if probe is None:
            probe = names[ev.probe] = escape(ev.probe)
        parts = [f"{t:12.6f} {ev.cpu:>3} {ev.pid:>7} {ev.tid:>7} {escape(ev.comm)[:16]:<16} "
                 f"{probe:<{self._probe_width}}"]
        errors, formats = ev.errors, ev.formats
        for k, v in ev.fields.items():
            ek = names.get(k)
            if ek is None:
                ek = names[k] = escape(k)
            if errors and k in errors:
                parts.append(f"{ek}=<{escape(errors[k])}>")
            else:
                parts.append(f"{ek}={show_value(v, formats.get(k))}")
        self.out.write(" ".join(parts) + "\n")
        if self.stacks:
            for frames in (ev.stack, ev.ustack):
                if frames:
                    for addr, sym, off, mod in frames:
                        where = f"{escape(sym)}+{off:#x}" if sym else "?"
                        if mod:
                            where += f" [{escape(mod)}]"
                        self.out.write(f"{'':>14}{addr:#018x} {where}\n")

    def lost(self, rec: Lost) -> None:
        cpu = f" on cpu {rec.cpu}" if rec.cpu is not None else ""
        self.out.write(f"# LOST {rec.count} events{cpu} ({rec.reason})\n")


def summary(stats: Stats) -> str:
    """The exit summary: events per probe and lost events by reason."""
    lines = ["", f"# {stats.total_events} events, {stats.total_lost} lost"]
    for probe, n in sorted(stats.events.items(), key=lambda kv: -kv[1]):
        lines.append(f"#   {n:>10}  {escape(probe)}")
    for reason, n in sorted(stats.lost.items()):
        lines.append(f"#   {n:>10}  LOST ({reason})")
    return "\n".join(lines) + "\n"


def render_fields(fields: Dict[str, Any], formats: Dict[str, str]) -> str:
    return " ".join(f"{escape(k)}={show_value(v, formats.get(k))}" for k, v in fields.items())
