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
from .btjson import c_div, map_json, message, value_json
from .native import native_text, native_value
from .values import escape

__all__ = ["BtRenderer", "format_printf", "hist_lines", "lhist_lines", "order_entries"]

_MASK64 = (1 << 64) - 1


def _kind(slot: Any) -> str:
    """A slot's kind for :meth:`BtRenderer.show`; a ``strftime`` value carries its format
    (``timestamp:%H:%M:%S``)."""
    if slot.kind == "timestamp":
        return "timestamp:" + (getattr(slot.ty, "fmt", "") or "%H:%M:%S")
    if slot.kind == "cgroup_path":
        return "cgroup_path:" + (getattr(slot.ty, "fmt", "") or "*")
    return slot.kind


_WALL_OFFSET: List[int] = []


def _wall_offset() -> int:
    """Wall-clock time minus CLOCK_MONOTONIC (ns), taken once per process as bpftrace takes
    its boot time once: two strftime() values of one run are exactly as far apart as their
    ``nsecs`` (taken per call, the offset moved by a microsecond or so between them)."""
    if not _WALL_OFFSET:
        _WALL_OFFSET.append(time.time_ns() - time.monotonic_ns())
    return _WALL_OFFSET[0]


def strftime_ns(fmt: str, ns: int) -> str:
    """bpftrace's ``strftime(fmt, nsecs)``: ``nsecs`` (CLOCK_MONOTONIC, as the ``nsecs``
    builtin) as local wall-clock time; ``%f`` is the microseconds."""
    wall = ns + _wall_offset()
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
        if conv == "r" and kind == "buf" and fmt[end:end + 1] in ("x", "h") and isinstance(v, bytes):
            # bpftrace's %rx (every byte as \xNN) and %rh (hex bytes, space separated)
            pos = end + 1
            text = "".join(f"\\x{b:02x}" for b in v) if fmt[end] == "x" else " ".join(f"{b:02x}" for b in v)
            out.append(("%" + spec + "s") % text)
        elif conv == "s" or kind not in ("int",):
            text = show(v, kind) if not isinstance(v, int) or kind != "int" else str(v)
            out.append(("%" + spec + "s") % text)
        elif conv in "di":
            # C reads the 64-bit argument as signed: a u64 0xffff...ff prints -1, as in bpftrace
            n = _as_int(v) & _MASK64
            out.append(("%" + spec + "d") % (n - (1 << 64) if n >> 63 else n))
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


#: ``cat()`` reads at most this much of a file, as bpftrace 0.17 (BPFTRACE_CAT_BYTES_MAX).
CAT_BYTES_MAX = 10240


def cat_bytes_max(env: Optional[Dict[str, str]] = None) -> int:
    """``BPFTRACE_CAT_BYTES_MAX`` (a non-negative integer), else 10240; ValueError when it
    is set to something else."""
    raw = (os.environ if env is None else env).get("BPFTRACE_CAT_BYTES_MAX")
    if raw is None:
        return CAT_BYTES_MAX
    text = raw.strip()
    if not text.isascii() or not text.isdigit():
        raise ValueError("Env var 'BPFTRACE_CAT_BYTES_MAX' did not contain a valid uint64_t, or was zero-valued.")
    return int(text)


def _cat(path: str, limit: int = CAT_BYTES_MAX) -> Tuple[str, str]:
    """``cat(path)``: ``(text, error)``, the first ``limit`` bytes of a regular file (/proc
    and /sys files are), read without blocking: a FIFO or a device at that path is an
    error, never a hang. The error reads as bpftrace's (``failed to open file ...``)."""
    import stat

    def fail(why: str) -> Tuple[str, str]:
        return "", f"failed to open file '{escape(path)}': {why}"

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError) as e:
        return fail(getattr(e, "strerror", None) or str(e))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return fail("not a regular file")
        chunks = []
        left = limit
        while left > 0:
            b = os.read(fd, min(left, 1 << 16))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        text = b"".join(chunks).decode("utf-8", "surrogateescape")
        # the file's lines and tabs as they are; anything else a process could put in it escaped
        return "\n".join("\t".join(escape(p) for p in line.split("\t")) for line in text.split("\n")), ""
    except OSError as e:
        return fail(e.strerror or str(e))
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


def _bar_line(label: str, count: int, top: int, shown: Optional[int] = None) -> str:
    """One histogram row: the bar from the bucket's count, the number ``shown`` (the count
    divided by ``print``'s ``div``, as bpftrace shows it) or the count."""
    width = int(count / top * 52) if top else 0
    return f"{label:<16}{count if shown is None else shown:>8} |{'@' * width:<52}|"


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
        n = buckets.get(i, 0)
        out.append(_bar_line(label, n, top, n // max(div, 1)))
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

    def __init__(self, session: Any = None, kernel: Any = None, json_mode: bool = False,
                 on_error: Optional[Callable[[str], None]] = None) -> None:
        self.session = session
        self.kernel = kernel
        self.json = json_mode
        #: called with a run-time error line (``ERROR: failed to open file ...``); by default
        #: they are kept in :attr:`errors`
        self.errors: List[str] = []
        self.on_error: Callable[[str], None] = on_error or self.errors.append
        self.cat_bytes_max: Optional[int] = None  # BPFTRACE_CAT_BYTES_MAX; None: read at the first cat()
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
            from ..kernel.usyms import UserSymbols

            self._usyms = UserSymbols()
        return self._usyms.symbolize(pid, addr, offset)

    def ustack(self, stack_id: int, pid: int, indent: int = 8) -> str:
        if stack_id < 0:
            return "\n" + " " * indent + f"[no stack: {_errno(-stack_id)}]\n"
        addrs = self.session.stack(stack_id) if self.session is not None else []
        return "\n" + "".join(" " * indent + (self._usym(pid, a) or hex(a)) + "\n" for a in addrs)

    def show(self, v: Any, kind: str) -> str:
        """A decoded value as bpftrace prints it (strings escaped for the terminal; under
        ``-f json`` left as they are: the JSON encoder escapes them)."""
        if kind == "str":
            return v if self.json and isinstance(v, str) else escape(v)
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
        if kind.startswith("cgroup_path"):
            from ..kernel.cgroups import cgroup_paths  # only programs that call cgroup_path()

            return escape(cgroup_paths(v & _MASK64, kind[12:] or "*"))
        if kind == "tuple":
            return "(" + ", ".join(self.show(x, "int" if isinstance(x, int) else "str") for x in v) + ")"
        return escape(str(v))

    def show_slot(self, v: Any, slot: Any, key: bool = False) -> str:
        """A decoded value of layout ``slot`` as bpftrace prints it (``key``: inside a map
        key's brackets, where structs print as ``{.m=2,.n=3}``)."""
        if slot.kind == "tuple":
            return "(" + ", ".join(self.show_slot(x, s, key) for x, (_o, s) in zip(v, slot.elems)) + ")"
        if slot.kind in ("bytes", "record") and slot.ty is not None and isinstance(v, bytes):
            return native_text(native_value(slot.ty, v), key)
        return self.show(v, _kind(slot))

    def show_raw(self, v: Any, slot: Any) -> str:
        """The text of a non-integer value for a JSON string (not escaped for a terminal)."""
        if slot.kind == "str" and isinstance(v, str):
            return v
        return self.show_slot(v, slot)

    def key_text(self, key: tuple, spec: Any) -> str:
        """A map key under ``-f json``: its parts joined with ``,`` (bpftrace's shape)."""
        return ",".join(self.show_raw(k, s) if s.kind not in ("tuple", "bytes", "record") else
                        self.show_slot(k, s, key=True) for k, (_o, s) in zip(key, spec.key.elems))

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
                signed = conv in "di"  # C reads the 64-bit argument as signed (u64 max: -1)
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
            return message("printf", text) if self.json else text
        if act.kind == "time":
            text = time.strftime(act.fmt)
            return message("time", text) if self.json else text
        if act.kind == "join":
            parts = [p for p in rec.values if p != ""]
            sep = act.extra.get("sep", " ")
            if self.json:
                return message("join", sep.join(parts))
            return sep.join(escape(p) for p in parts) + "\n"
        if act.kind == "value":
            (o, s), = act.args
            if self.json:
                return f'{{"type": "value", "data": {value_json(self, rec.values[0], s)}}}\n'
            return self.show_slot(rec.values[0], s) + "\n"
        if act.kind == "cat":
            path = format_printf(act.fmt, rec.values, kinds, self.show)
            if self.cat_bytes_max is None:
                try:
                    self.cat_bytes_max = cat_bytes_max()
                except ValueError as e:
                    self.on_error(f"ERROR: {e}")
                    self.cat_bytes_max = CAT_BYTES_MAX
            data, err = _cat(path, self.cat_bytes_max)
            if err:
                self.on_error(f"ERROR: {err}")
                return ""
            return message("cat", data) if self.json else data
        if act.kind == "system":
            return ""  # run by the CLI (needs --unsafe), never here
        return ""

    def syscall(self, text: str) -> str:
        """What a ``system()`` command wrote: as it is, or a ``"syscall"`` JSON line."""
        return message("syscall", text) if self.json else text

    def map(self, mp: Any) -> str:
        """One map as bpftrace 0.17 prints it: text (an empty map is an empty line), or one
        JSON line (nothing for an empty map)."""
        spec = mp.spec
        entries = order_entries(spec, list(mp.entries), mp.top)
        div = max(1, mp.div or 1)
        if self.json:
            return map_json(self, spec, entries, div)
        agg = spec.agg
        if agg in ("hist", "lhist"):
            parts = []
            for key, val in entries:
                name = spec.name + (self._key(key, spec) if spec.key.elems else "")
                rows = hist_lines(val, div) if agg == "hist" else lhist_lines(val, *spec.lhist)
                parts.append(f"{name}: \n" + "".join(r + "\n" for r in rows))
            return "\n".join(parts) + "\n"
        lines: List[str] = []
        for key, val in entries:
            name = spec.name + (self._key(key, spec) if spec.key.elems else "")
            if agg == "stats":
                c, avg, tot = val
                lines.append(f"{name}: count {c}, average {avg}, total {tot}")
            elif agg in ("count", "sum", "min", "max", "avg") or (isinstance(val, int) and spec.value.kind == "int"):
                lines.append(f"{name}: {c_div(val, div) if isinstance(val, int) else val}")
            else:
                lines.append(f"{name}: {self.show_slot(val, spec.value)}")
        stacky = spec.value.kind in ("kstack", "ustack")  # a stack ends with its own newline
        text = ("" if stacky else "\n").join(lines) + "\n"
        return text + "\n" if agg in ("avg", "stats") else text

    def _key(self, key: tuple, spec: Any) -> str:
        parts = [self.show_slot(k, s, key=True) for k, (_o, s) in zip(key, spec.key.elems)]
        return "[" + ", ".join(parts) + "]"


def order_entries(spec: Any, entries: List[Tuple[tuple, Any]], top: int = 0) -> List[Tuple[tuple, Any]]:
    """A map's entries in bpftrace 0.17's order, the last ``top`` kept (0: all).

    Aggregations and integer values by value (hist/lhist by their total count, avg and
    stats by the average), ties in the order of the keys' bytes; other values by key
    (integers, then strings; other key parts keep their order). ``top`` does not apply to
    ``stats`` maps (bpftrace ignores it there, with a warning at compile time)."""
    entries = sorted(entries, key=lambda kv: _key_bytes(kv[0], spec.key))
    agg = spec.agg
    if agg in ("hist", "lhist"):
        entries.sort(key=lambda kv: sum(kv[1].values()))
    elif agg == "avg":
        entries.sort(key=lambda kv: kv[1])
    elif agg == "stats":
        entries.sort(key=lambda kv: kv[1][1])
        top = 0
    elif agg in ("count", "sum", "min", "max") or all(isinstance(v, int) for _k, v in entries) \
            and spec.value.kind == "int":
        entries.sort(key=lambda kv: kv[1] if isinstance(kv[1], int) else 0)
    else:
        for i in reversed(range(len(spec.key.elems))):
            s = spec.key.elems[i][1]
            if s.kind == "int":
                entries.sort(key=lambda kv, i=i: kv[0][i] & _MASK64 if isinstance(kv[0][i], int) else 0)
            elif s.kind == "str":
                entries.sort(key=lambda kv, i=i: str(kv[0][i]).encode("utf-8", "surrogateescape"))
    if top and len(entries) > top:
        entries = entries[-top:]
    return entries


def _key_bytes(key: Any, slot: Any) -> bytes:
    """The bytes a decoded key had in the map (what bpftrace orders hist and stats keys by)."""
    k = slot.kind
    if k == "tuple":
        return b"".join(_key_bytes(x, s) for x, (_o, s) in zip(key, slot.elems))
    if isinstance(key, int):
        return (key & _MASK64).to_bytes(8, "little")
    if isinstance(key, str):
        return key.encode("utf-8", "surrogateescape").ljust(slot.size, b"\0")
    if isinstance(key, (bytes, bytearray)):
        return bytes(key)
    if isinstance(key, tuple):
        return b"".join(_key_bytes(x, slot) for x in key)
    return b""


def _errno(n: int) -> str:
    import errno

    return errno.errorcode.get(n, str(n))
