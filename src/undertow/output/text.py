"""Human text output: one event per line, control characters escaped.

A traced process can name itself with terminal escape sequences
(``prctl(PR_SET_NAME, "\\x1b]0;pwned\\x07")``); nothing it controls reaches the
terminal unescaped: control characters (C0, DEL, C1), backslashes and
undecodable bytes are shown as ``\\xNN``/``\\\\``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, TextIO, Tuple

from ..events import Event, Lost, Stats
from .values import escape, format_value  # escape: shared with output/bt.py


_BARE = frozenset(("x", "ipv4", "ipv6", "B16", "B32", "B64"))  # formats whose strings are shown unquoted


def show_value(value: Any, fmt: Optional[str]) -> str:
    if type(value) is int and (fmt is None or fmt == "u" or (fmt == "s" and value < 1 << 63)):
        return str(value)  # the common case: a plain number needs no formatting or escaping
    if type(value) is str:  # the next most common (a path, a name): format_value keeps a str as it is
        if fmt in _BARE or value.startswith("0x"):
            return escape(value)
        return '"' + escape(value).replace('"', '\\"') + '"'
    v = format_value(value, fmt)
    if type(v) is int:
        return str(v)
    if isinstance(v, str):
        if fmt in _BARE or v.startswith("0x"):
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
        self._lines: Dict[str, Any] = {}  # probe -> (compiled line formatter, fields, formats) or None
        self._comms: Dict[str, str] = {}  # comm -> escaped

    def batch(self, recs: List[Any]) -> None:
        """Write a batch of records with one ``write``: Events, Lost notices, and lines a
        reader formatted itself with :meth:`line_source` (``str``)."""
        parts: List[str] = []
        out, self.out = self.out, _Parts(parts)  # type: ignore[assignment]
        try:
            if not self._header_done and any(r.__class__ is not Lost for r in recs):
                self.header()
            event, lost = self.event, self.lost
            for rec in recs:
                cls = rec.__class__
                if cls is str:
                    parts.append(rec)
                elif cls is Event:
                    event(rec)
                else:
                    lost(rec)
        finally:  # what was formatted is written even if a record could not be
            self.out = out
            if parts:
                out.write("".join(parts))

    def line_source(self, probe: str, names: List[str], formats: Dict[str, str],
                    codes: Optional[List[str]] = None) -> Optional[Dict[str, Any]]:
        """For a reader that formats records as it decodes them (no Event built): source
        code giving the lines :meth:`event` would print, or None when the names are not
        plain identifiers. ``codes``: the ``struct`` code each value was unpacked with
        (``"q"``, ``"I"``, ``"16s"``...), so that ints are formatted without type checks.

        The reader runs ``setup`` (statements) before a run of records, binds
        ``pre = <prefix>`` whenever the thread changes, and appends ``<line>`` per record.
        They read the variables ``ts`` (ns), ``cpu``, ``tgid``, ``tid``, ``comm`` (already
        passed through :meth:`comm`) and ``v0``.. (the values of ``names`` as an Event's
        fields would hold them), and the names in ``env``. The reader sets ``self.t0`` (ns)
        before its first line.
        """
        if not all(n.isidentifier() and n.isascii() for n in names):
            return None
        env: Dict[str, Any] = {"sv": show_value, "P": escape(probe), "W": self}
        self._probe_width = max(self._probe_width, min(len(probe), 40))
        specs, args = ["%12.6f%s"], ["(ts - t0) / 1e9", "pre"]
        for i, n in enumerate(names):
            fmt = formats.get(n)
            env[f"F{i}"] = fmt
            code = codes[i] if codes is not None else ""
            spec, arg = "%s", f"sv(v{i}, F{i})"
            if code in _INT_CODES:  # an int for sure: as show_value prints it
                signed, v = code.islower(), f"v{i}"
                if fmt is None or fmt == "u" or (fmt == "s" and signed):
                    spec, arg = "%d", v
                elif fmt == "s":
                    spec, arg = "%d", f"({v} - 18446744073709551616 if {v} >= 9223372036854775808 else {v})"
                elif fmt == "s32":
                    spec, arg = "%d", f"(({v} & 4294967295) - 4294967296 if {v} & 2147483648 else {v} & 4294967295)"
                elif fmt in ("x", "str", "ustr") and not signed:
                    spec, arg = "%s", f"hex({v})"
            specs.append(f" {n}={spec}")
            args.append(arg)
        env["L"] = "".join(specs) + "\n"
        return {"setup": "t0 = W.t0",
                "prefix": 'f" {cpu:>3} {tgid:>7} {tid:>7} {comm:<16} {P:<{W._probe_width}}"',
                "line": "L % (" + ", ".join(args) + ")",
                "env": env}

    def reserve(self, probes: List[str]) -> None:
        """Make the EVENT column wide enough for ``probes`` from the first line on (as the
        first event of each would make it)."""
        for probe in probes:
            self._probe_width = max(self._probe_width, min(len(probe), 40))

    def comm(self, comm: str) -> str:
        """``comm`` escaped (cached); never cut: an escaped name longer than its 16-column
        field widens the line (issue 18: text output never cuts a field)."""
        comms = self._comms
        c = comms.get(comm)
        if c is None:
            if len(comms) > 4096:
                comms.clear()
            c = comms[comm] = escape(comm)
        return c

    def header(self) -> None:
        self.out.write(f"{'TIME(s)':>12} {'CPU':>3} {'PID':>7} {'TID':>7} {'COMM':<16} EVENT\n")
        self._header_done = True

    def event(self, ev: Event) -> None:
        if not self._header_done:
            self.header()
        if self.t0 is None:
            self.t0 = ev.ts
        fast = self._lines.get(ev.probe, 0)
        if fast == 0:
            fast = self._lines[ev.probe] = _compile_line(ev, escape(ev.probe))
            self._probe_width = max(self._probe_width, min(len(ev.probe), 40))
        if fast is not None and not ev.errors and (ev.formats is fast[3] or ev.formats == fast[2]) \
                and len(ev.fields) == fast[1]:
            comm = self._comms.get(ev.comm) or self.comm(ev.comm)
            try:
                line = fast[0](ev, self._probe_width, self.t0, comm)
            except KeyError:  # not the fields the formatter was made for
                pass
            else:
                self.out.write(line)
                if self.stacks and (ev.stack or ev.ustack):
                    self._stacks(ev)
                return
        self._generic(ev)

    def _generic(self, ev: Event) -> None:
        t = (ev.ts - self.t0) / 1e9  # type: ignore[operator]
        self._probe_width = max(self._probe_width, min(len(ev.probe), 40))
        names = self._names
        probe = names.get(ev.probe)
        if probe is None:
            probe = names[ev.probe] = escape(ev.probe)
        parts = [f"{t:12.6f} {ev.cpu:>3} {ev.pid:>7} {ev.tid:>7} {escape(ev.comm):<16} "
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
            self._stacks(ev)

    def _stacks(self, ev: Event) -> None:
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


# How a field's value is shown, per display format, for the common case (an int) without
# a call; anything else goes through show_value. Must print what show_value prints.
_INT_TEXT = {
    None: "str(v{i}) if type(v{i}) is int else sv(v{i}, F{i})",
    "u": "str(v{i}) if type(v{i}) is int else sv(v{i}, F{i})",
    "s": "str(v{i}) if type(v{i}) is int and v{i} < 9223372036854775808 else sv(v{i}, F{i})",
    "s32": "str((v{i} & 4294967295) - 4294967296 if v{i} & 2147483648 else v{i} & 4294967295) "
           "if type(v{i}) is int else sv(v{i}, F{i})",
    "str": "hex(v{i}) if type(v{i}) is int and v{i} >= 0 else sv(v{i}, F{i})",
    "ustr": "hex(v{i}) if type(v{i}) is int and v{i} >= 0 else sv(v{i}, F{i})",
}


_INT_CODES = frozenset("bBhHiIqQ")


class _Parts:
    """A write() that appends to a list (TextWriter.batch)."""

    __slots__ = ("write",)

    def __init__(self, parts: List[str]) -> None:
        self.write = parts.append


def _field_parts(names: List[str], formats: Dict[str, str], env: Dict[str, Any]) -> str:
    """The `` name=value`` parts of a line's f-string for values in ``v0``.. (formats in
    ``env`` as ``F0``..)."""
    parts = []
    for i, n in enumerate(names):
        fmt = formats.get(n)
        env[f"F{i}"] = fmt
        expr = _INT_TEXT.get(fmt, "sv(v{i}, F{i})").format(i=i)
        parts.append(f" {n}={{{expr}}}")
    return "".join(parts)


def _compile_line(ev: Event, probe: str) -> Optional[Tuple[Callable[..., str], int, Dict[str, str], Any]]:
    """A formatter for every event of ``ev``'s probe: the line ``_generic`` would print,
    built by one generated f-string (~1.5 us per event instead of ~5). ``None`` when the
    event's field names are not plain identifiers."""
    names = list(ev.fields)
    if not all(n.isidentifier() and n.isascii() for n in names):
        return None
    env: Dict[str, Any] = {"sv": show_value, "P": probe}
    loads = [f"    v{i} = f[{n!r}]" for i, n in enumerate(names)]
    src = ("def line(ev, pw, t0, comm):\n    f = ev.fields\n" + "\n".join(loads) + "\n"
           "    return f\"{(ev.ts - t0) / 1e9:12.6f} {ev.cpu:>3} {ev.pid:>7} {ev.tid:>7} {comm:<16} "
           "{P:<{pw}}" + _field_parts(names, ev.formats, env) + "\\n\"\n")
    exec(src, env)  # noqa: S102 - built from identifiers checked above
    # the formats dict is shared by every event of a decoded run: checked by identity first
    return env["line"], len(names), dict(ev.formats), ev.formats


def summary(stats: Stats, shown: Optional[int] = None) -> str:
    """The exit summary: events per probe, lost events by reason, and what a stop left unread.
    ``shown``: how many events were printed when fewer than were read (``--count`` stops in
    the middle of a read of the kernel buffers; the counts per probe are of what was read)."""
    head = f"# {stats.total_events} events, {stats.total_lost} lost"
    if shown is not None:
        head = f"# {shown} events shown of {stats.total_events} read, {stats.total_lost} lost"
    nd = getattr(stats, "not_drained", 0)
    if nd:
        head += f", {nd} not drained"
    lines = ["", head]
    for probe, n in sorted(stats.events.items(), key=lambda kv: -kv[1]):
        lines.append(f"#   {n:>10}  {escape(probe)}")
    for reason, n in sorted(stats.lost.items()):
        lines.append(f"#   {n:>10}  LOST ({reason})")
    if nd:
        lines.append(f"#   {nd:>10}  not drained: recorded before the stop, still unread when undertow stopped "
                     "(--drain shows them)")
    after = getattr(stats, "after_stop", 0)
    if after:
        lines.append(f"#   {after:>10}  made after the stop, not shown")
    return "\n".join(lines) + "\n"


def render_fields(fields: Dict[str, Any], formats: Dict[str, str]) -> str:
    return " ".join(f"{escape(k)}={show_value(v, formats.get(k))}" for k, v in fields.items())


_HMS = [-1, "", None]


def hms_now() -> str:
    """``time.strftime("%H:%M:%S")`` (local time, now), formatted once per second: the tools'
    text lines start with it (~1.5 us per line through strftime; issue 18). A memo of
    ``time.strftime``: made again when the second changes or the function does (a caller may
    replace it, as the unit tests do for a fixed clock)."""
    import time

    now = int(time.time())
    fmt = time.strftime
    if now != _HMS[0] or fmt is not _HMS[2]:
        _HMS[1] = fmt("%H:%M:%S")
        _HMS[0], _HMS[2] = now, fmt
    return _HMS[1]
