"""Render what a bpftrace-language program produces, the way bpftrace 0.17 prints it.

- ``printf`` formats with C conversions (``%d %u %x %s %c %p``, flags, widths,
  ``l``/``ll``/``h`` length modifiers accepted and ignored: values are 64-bit);
- maps at exit or on ``print(@m)``: ``@name[k1, k2]: value`` lines sorted by
  value, log2 and linear histograms with bucket labels and ``@`` bars 52 wide,
  ``stats`` as ``count N, average N, total N``;
- ``-f json``: one JSON object per output (``{"type": "printf", "data": ...}``,
  ``{"type": "map", "data": {"@x": {...}}}``, ``"hist"``, ``"stats"``...).

Values that come from the kernel (strings a process controls) are escaped
(:func:`undertow.output.text.escape`); the user's own format text is not.
"""

from __future__ import annotations

import os
import pwd
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..lang.printf import conversions
from .values import escape


def _dumps(obj: Any, **kw: Any) -> str:
    import json  # only -f json needs it (~3 ms at start-up)

    from .jsonl import clean  # valid UTF-8 always: undecodable bytes become \\xNN text

    return json.dumps(clean(obj), **kw)

__all__ = ["BtRenderer", "format_printf", "hist_lines", "lhist_lines"]

_MASK64 = (1 << 64) - 1


def _kind(slot: Any) -> str:
    """A slot's kind for :meth:`BtRenderer.show`; a ``strftime`` value carries its format
    (``timestamp:%H:%M:%S``)."""
    if slot.kind == "timestamp":
        return "timestamp:" + (getattr(slot.ty, "fmt", "") or "%H:%M:%S")
    return slot.kind


def strftime_ns(fmt: str, ns: int) -> str:
    """bpftrace's ``strftime(fmt, nsecs)``: ``nsecs`` (CLOCK_MONOTONIC, as the ``nsecs``
    builtin) as local wall-clock time; ``%f`` is the microseconds."""
    wall = ns + (time.time_ns() - time.monotonic_ns())
    sec, rem = divmod(wall, 1_000_000_000)
    return time.strftime(fmt.replace("%f", f"{rem // 1000:06d}"), time.localtime(sec))


def format_printf(fmt: str, values: Sequence[Any], kinds: Sequence[str], show: Callable[[Any, str], str]) -> str:
    """C ``printf`` of ``values`` (already decoded); ``kinds`` are their layout kinds."""
    out: List[str] = []
    pos = 0
    i = 0
    for start, end, flags, width, prec, conv in conversions(fmt):
        out.append(fmt[pos:start])
        pos = end
        if conv == "%":
            out.append("%")
            continue
        if i >= len(values):
            out.append(fmt[start:end])
            continue
        v, kind = values[i], kinds[i]
        i += 1
        spec = flags + (width or "") + ("." + prec if prec is not None else "")
        if conv == "s" or kind not in ("int",):
            text = show(v, kind) if not isinstance(v, int) or kind != "int" else str(v)
            out.append(("%" + spec + "s") % text)
        elif conv in "di":
            out.append(("%" + spec + "d") % _as_int(v))
        elif conv == "u":
            out.append(("%" + spec + "d") % (_as_int(v) & _MASK64))
        elif conv in "xXo":
            out.append(("%" + spec + conv) % (_as_int(v) & _MASK64))
        elif conv == "p":
            out.append(("%" + spec + "s") % hex(_as_int(v) & _MASK64))
        elif conv == "c":  # a byte from the kernel: escaped like strings (\x1b, \xff)
            out.append(("%" + spec + "s") % escape(bytes((_as_int(v) & 0xFF,))))
        else:
            out.append(str(v))
    out.append(fmt[pos:])
    return "".join(out)


def _cat(path: str, limit: int = 1 << 16) -> str:
    """``cat(path)``: the first 64 KiB (``limit``: BPFTRACE_CAT_BYTES_MAX) of a regular file
    (/proc and /sys files are), read without blocking: a FIFO or a device at that path gets a
    one-line note, never a hang."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError) as e:
        return f"{escape(path)}: {getattr(e, 'strerror', None) or e}\n"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return f"{escape(path)}: not a regular file\n"
        chunks = []
        left = limit
        while left > 0:
            b = os.read(fd, left)
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        text = b"".join(chunks).decode("utf-8", "surrogateescape")
        # the file's lines and tabs as they are; anything else a process could put in it escaped
        return "\n".join("\t".join(escape(p) for p in line.split("\t")) for line in text.split("\n"))
    except OSError as e:
        return f"{escape(path)}: {e.strerror or e}\n"
    finally:
        os.close(fd)


def _as_int(v: Any) -> int:
    return v if isinstance(v, int) else 0


def _hist_label(power: int) -> str:
    for suffix, p in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if power >= p:
            return f"{1 << (power - p)}{suffix}"
    return str(1 << power)


def _lhist_label(n: int) -> str:
    if n == 0:
        return "0"
    if n % (1 << 20) == 0:
        return f"{n >> 20}M"
    if n % 1024 == 0:
        return f"{n >> 10}K"
    return str(n)


def _bar_line(label: str, count: int, top: int) -> str:
    width = int(count / top * 52) if top else 0
    return f"{label:<16}{count:>8} |{'@' * width:<52}|"


def hist_lines(buckets: Dict[int, int], div: int = 1) -> List[str]:
    """log2 histogram rows: bucket 0 is negative values, 1 is 0, i >= 2 is [2^(i-2), 2^(i-1))."""
    used = [b for b, c in buckets.items() if c > 0]
    if not used:
        return []
    lo, hi = min(used), max(used)
    top = max(buckets.values())
    out = []
    for i in range(lo, hi + 1):
        if i == 0:
            label = "(..., 0)"
        elif i == 1:
            label = "[0]"
        elif i == 2:
            label = "[1]"
        else:
            label = f"[{_hist_label(i - 2)}, {_hist_label(i - 1)})"
        out.append(_bar_line(label, buckets.get(i, 0) // max(div, 1), top))
    return out


def lhist_lines(buckets: Dict[int, int], lo: int, hi: int, step: int) -> List[str]:
    """Linear histogram rows (bucket 0 below ``lo``, the last at or above ``hi``)."""
    used = [b for b, c in buckets.items() if c > 0]
    if not used:
        return []
    n = (hi - lo) // step
    top = max(buckets.values())
    out = []
    for i in range(min(used), max(used) + 1):
        if i == 0:
            label = f"(..., {_lhist_label(lo)})"
        elif i == n + 1:
            label = f"[{_lhist_label(hi)}, ...)"
        else:
            label = f"[{_lhist_label((i - 1) * step + lo)}, {_lhist_label(i * step + lo)})"
        out.append(_bar_line(label, buckets.get(i, 0), top))
    return out


class BtRenderer:
    """Turns session records into bpftrace-style text or JSON lines.

    ``session`` gives stacks (``stack(id)``); ``kernel`` gives kallsyms for
    ``ksym``/``kstack``. Both are optional (unit tests render decoded values).
    """

    def __init__(self, session: Any = None, kernel: Any = None, json_mode: bool = False) -> None:
        self.session = session
        self.kernel = kernel
        self.json = json_mode
        self.cat_bytes_max = 1 << 16  # cat()'s bytes (BPFTRACE_CAT_BYTES_MAX)
        self._ksyms: Any = None
        self._users: Dict[int, str] = {}

    # -- values
    def ksym(self, addr: int, offset: bool = False) -> str:
        if self._ksyms is None:
            try:
                self._ksyms = self.kernel.kallsyms() if self.kernel is not None else False
            except Exception:  # noqa: BLE001 - symbols are a nicety
                self._ksyms = False
        hit = self._ksyms.symbolize(addr) if self._ksyms else None
        if not hit:
            return hex(addr)
        name, off, _mod = hit
        return f"{name}+{off}" if offset else name

    def username(self, uid: int) -> str:
        if uid not in self._users:
            try:
                self._users[uid] = pwd.getpwuid(uid).pw_name
            except (KeyError, OverflowError):
                self._users[uid] = str(uid)
        return self._users[uid]

    def kstack(self, stack_id: int, indent: int = 8) -> str:
        if stack_id < 0:
            # bpf_get_stackid failed (e.g. -EFAULT: a syscall tracepoint on 6.1 gets user regs)
            return "\n" + " " * indent + f"[no stack: {_errno(-stack_id)}]\n"
        addrs = self.session.stack(stack_id) if self.session is not None else []
        return "\n" + "".join(" " * indent + self.ksym(a, offset=True) + "\n" for a in addrs)

    def _usym(self, pid: int, addr: int, offset: bool = True) -> Optional[str]:
        if getattr(self, "_usyms", None) is None:
            from ..tools.usyms import UserSymbols

            self._usyms = UserSymbols()
        return self._usyms.symbolize(pid, addr, offset)

    def ustack(self, stack_id: int, pid: int, indent: int = 8) -> str:
        if stack_id < 0:
            return "\n" + " " * indent + f"[no stack: {_errno(-stack_id)}]\n"
        addrs = self.session.stack(stack_id) if self.session is not None else []
        return "\n" + "".join(" " * indent + (self._usym(pid, a) or hex(a)) + "\n" for a in addrs)

    def show(self, v: Any, kind: str) -> str:
        """A decoded value as bpftrace prints it (strings escaped)."""
        if kind == "str":
            return escape(v)
        if kind == "int":
            return str(v)
        if kind == "ksym":
            return self.ksym(v)
        if kind == "usym":
            return self._usym(v[1], v[0], offset=False) or hex(v[0])
        if kind == "username":
            return self.username(v)
        if kind == "strerror":
            try:
                return os.strerror(v)
            except (ValueError, OverflowError):
                return str(v)
        if kind == "inet":
            fam, raw = v
            try:
                import socket  # only ntop() needs it (~2 ms to import)

                if fam == socket.AF_INET6:
                    return socket.inet_ntop(socket.AF_INET6, raw[:16])
                return socket.inet_ntop(socket.AF_INET, raw[:4])
            except (ValueError, OSError):
                return raw.hex()
        if kind == "mac":
            return ":".join(f"{b:02X}" for b in v)
        if kind == "kstack":
            return self.kstack(v)
        if kind == "ustack":
            return self.ustack(v[0], v[1])
        if kind in ("buf", "bytes"):
            return "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02x}" for b in v)
        if kind.startswith("timestamp"):
            return strftime_ns(kind[10:], v)
        if kind == "tuple":
            return "(" + ", ".join(self.show(x, "int" if isinstance(x, int) else "str") for x in v) + ")"
        return escape(str(v))

    def show_slot(self, v: Any, slot: Any) -> str:
        if slot.kind == "tuple":
            return "(" + ", ".join(self.show_slot(x, s) for x, (_o, s) in zip(v, slot.elems)) + ")"
        return self.show(v, slot.kind)

    # -- records
    def _fast_printf(self, act: Any) -> Any:
        """A formatter for one printf action: a Python %-format and per-argument readers of
        the raw payload, built once (the storm path formats ~500k records/s)."""
        cache = self.__dict__.setdefault("_fast", {})
        hit = cache.get(id(act))
        if hit is not None:
            return hit
        parts: List[str] = []
        readers: List[Callable[[bytes], Any]] = []
        pos = 0
        i = 0
        ok = True
        for start, end, flags, width, prec, conv in conversions(act.fmt):
            parts.append(act.fmt[pos:start].replace("%", "%%"))
            pos = end
            if conv == "%":
                parts.append("%%")
                continue
            if i >= len(act.args):
                ok = False
                break
            off, slot = act.args[i]
            i += 1
            spec = flags + (width or "") + ("." + prec if prec is not None else "")
            if slot.kind == "str" and conv == "s":
                end = off + slot.size
                readers.append(lambda b, o=off, e=end: escape(b[o:e].split(b"\0", 1)[0].decode(
                    "utf-8", "surrogateescape")))
                parts.append("%" + spec + "s")
            elif slot.kind == "int" and conv in "diuxXo":
                signed = slot.signed and conv in "di"
                mask = conv not in "di"
                readers.append(lambda b, o=off, sg=signed, mk=mask: (
                    int.from_bytes(b[o:o + 8], "little", signed=sg) & ((1 << 64) - 1) if mk
                    else int.from_bytes(b[o:o + 8], "little", signed=sg)))
                parts.append("%" + spec + ("d" if conv in "diu" else conv))
            else:
                ok = False
                break
        parts.append(act.fmt[pos:].replace("%", "%%"))
        hit = ("".join(parts), readers) if ok and i == len(act.args) else None
        cache[id(act)] = hit
        return hit

    def printed(self, rec: Any) -> str:
        act = rec.action
        if act.kind == "printf" and not self.json and rec.raw:
            fast = self._fast_printf(act)
            if fast is not None:
                raw = rec.raw
                return fast[0] % tuple(r(raw) for r in fast[1])
        kinds = [_kind(s) for _o, s in act.args]
        if act.kind == "printf":
            text = format_printf(act.fmt, rec.values, kinds, self.show)
            if self.json:
                return _dumps({"type": "printf", "data": text}) + "\n"
            return text
        if act.kind == "time":
            text = time.strftime(act.fmt)
            return _dumps({"type": "time", "data": text}) + "\n" if self.json else text
        if act.kind == "join":
            parts = [p for p in rec.values if p != ""]
            sep = act.extra.get("sep", " ")
            text = sep.join(escape(p) for p in parts)
            return _dumps({"type": "join", "data": text}) + "\n" if self.json else text + "\n"
        if act.kind == "value":
            (o, s), = act.args
            text = self.show_slot(rec.values[0], s)
            return _dumps({"type": "value", "data": text}) + "\n" if self.json else text + "\n"
        if act.kind == "cat":
            text = format_printf(act.fmt, rec.values, kinds, self.show)
            data = _cat(text, self.cat_bytes_max)
            return _dumps({"type": "cat", "data": data}) + "\n" if self.json else data
        if act.kind == "system":
            return ""  # run by the CLI (needs --unsafe), never here
        return ""

    def map(self, mp: Any) -> str:
        """One map as bpftrace prints it (text ends with a blank line)."""
        spec = mp.spec
        entries = list(mp.entries)
        if spec.agg in ("hist", "lhist"):
            entries.sort(key=lambda kv: sum(kv[1].values()))
        elif spec.agg == "stats":
            entries.sort(key=lambda kv: kv[1][2])
        else:
            entries.sort(key=lambda kv: _sort_key(kv[1]))
        if mp.top:
            entries = entries[-mp.top:]
        div = max(1, mp.div or 1)
        if self.json:
            return self._map_json(spec, entries, div)
        lines: List[str] = []
        for key, val in entries:
            name = spec.name + (self._key(key, spec) if spec.key.elems else "")
            if spec.agg == "hist":
                lines.append(f"{name}: ")
                lines.extend(hist_lines(val, div))
                lines.append("")
            elif spec.agg == "lhist":
                lines.append(f"{name}: ")
                lines.extend(lhist_lines(val, *spec.lhist))
                lines.append("")
            elif spec.agg == "stats":
                c, avg, tot = val
                lines.append(f"{name}: count {c}, average {avg}, total {tot}")
            elif spec.agg in ("count", "sum", "min", "max", "avg"):
                lines.append(f"{name}: {val // div if isinstance(val, int) else val}")
            else:
                lines.append(f"{name}: {self.show_slot(val, spec.value)}")
        if spec.agg not in ("hist", "lhist"):
            lines.append("")
        return "\n".join(lines) + "\n"

    def _key(self, key: tuple, spec: Any) -> str:
        parts = [self.show_slot(k, s) for k, (_o, s) in zip(key, spec.key.elems)]
        return "[" + ", ".join(parts) + "]"

    def _map_json(self, spec: Any, entries: List[Tuple[tuple, Any]], div: int) -> str:
        def jv(val: Any) -> Any:
            if spec.agg == "hist":
                return _hist_json(val)
            if spec.agg == "lhist":
                return _lhist_json(val, *spec.lhist)
            if spec.agg == "stats":
                return {"count": val[0], "average": val[1], "total": val[2]}
            if isinstance(val, int):
                return val // div
            return self.show_slot(val, spec.value)
        kind = "hist" if spec.agg in ("hist", "lhist") else "stats" if spec.agg == "stats" else "map"
        if spec.key.elems:
            data: Any = {",".join(self.show_slot(k, s) for k, (_o, s) in zip(key, spec.key.elems)): jv(val)
                         for key, val in entries}
        else:
            data = jv(entries[0][1]) if entries else None
        return _dumps({"type": kind, "data": {spec.name: data}}, ensure_ascii=False) + "\n"


def _errno(n: int) -> str:
    import errno

    return errno.errorcode.get(n, str(n))


def _sort_key(v: Any) -> Any:
    if isinstance(v, int):
        return (0, v, "")
    return (1, 0, str(v))


def _hist_json(b: Dict[int, int]) -> List[Dict[str, int]]:
    out = []
    used = [i for i, c in b.items() if c]
    for i in range(min(used), max(used) + 1) if used else ():
        if i == 0:
            d = {"max": -1}
        elif i == 1:
            d = {"min": 0, "max": 0}
        else:
            d = {"min": 1 << (i - 2), "max": (1 << (i - 1)) - 1}
        d["count"] = b.get(i, 0)
        out.append(d)
    return out


def _lhist_json(b: Dict[int, int], lo: int, hi: int, step: int) -> List[Dict[str, int]]:
    n = (hi - lo) // step
    out = []
    used = [i for i, c in b.items() if c]
    for i in range(min(used), max(used) + 1) if used else ():
        if i == 0:
            d = {"max": lo - 1}
        elif i == n + 1:
            d = {"min": hi}
        else:
            d = {"min": (i - 1) * step + lo, "max": i * step + lo - 1}
        d["count"] = b.get(i, 0)
        out.append(d)
    return out


