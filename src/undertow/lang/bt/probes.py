"""bpftrace attach-point specs (``tracepoint:syscalls:sys_enter_openat``) to IR attach points.

A spec is the probe type (or its short alias), then ``:``-separated fields::

    BEGIN, END
    tracepoint:GROUP:EVENT            t:       (wildcards * ?)
    rawtracepoint:EVENT               rt:      (also rawtracepoint:MODULE:EVENT)
    kprobe:[MODULE:]FUNC[+OFFSET]     k:
    kretprobe:[MODULE:]FUNC           kr:
    kfunc:[MODULE:]FUNC / fentry:     f:       (IR kind fentry)
    kretfunc:[MODULE:]FUNC / fexit:   fr:      (IR kind fexit)
    uprobe:PATH:SYMBOL[+OFFSET]       u:       (PATH may be a library name: libc)
    uprobe:PATH:0xADDRESS
    uretprobe:PATH:SYMBOL             ur:
    usdt:PATH:[PROVIDER:]NAME         U:       (with -p: usdt::PROVIDER:NAME, usdt:NAME)
    profile:{hz|s|ms|us}:RATE         p:
    interval:{hz|s|ms|us}:RATE        i:
    software:EVENT[:COUNT]            s:
    hardware:EVENT[:COUNT]            h:
    watchpoint:ADDRESS:LEN:MODE       w:       (a hardware watchpoint: LEN 1 2 4 8, MODE of r w x)
    watchpoint:FUNC+argN:LEN:MODE              (set when FUNC of the -p/-c process is called)
    asyncwatchpoint:FUNC+argN:LEN:MODE aw:     (the same, the process not stopped meanwhile)
    iter:task, iter:task_file         it:      (a BPF iterator, run once over every task / open file)

A field may be quoted, as in bpftrace 0.17 (``uprobe:/bin/bash:"echo_builtin"+0``,
``usdt:PATH:test:"\\"probe1\\""``): the quotes go, a backslash escapes the next character.

:func:`parse_spec` turns one spec's text into an :class:`ir.AttachPoint` and the
name bpftrace prints for it (``probe`` builtin, ``-l`` output): aliases are
expanded to the full type name.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

from ...errors import ParseError, Span, did_you_mean
from .. import ir

__all__ = ["PROBE_TYPES", "ALIASES", "SOFTWARE_EVENTS", "HARDWARE_EVENTS", "parse_spec", "UNSUPPORTED_TYPES",
           "INVALID_WATCH_MODES", "MAX_WATCH_ARG", "ITERATORS"]

#: Full probe type -> IR attach kind.
PROBE_TYPES: Dict[str, str] = {
    "BEGIN": "begin", "END": "end",
    "tracepoint": "tracepoint", "rawtracepoint": "raw_tracepoint",
    "tp_btf": "tp_btf",  # undertow's addition: a raw tracepoint with BTF-typed args
    "kprobe": "kprobe", "kretprobe": "kretprobe",
    "kfunc": "fentry", "kretfunc": "fexit", "fentry": "fentry", "fexit": "fexit",
    "uprobe": "uprobe", "uretprobe": "uretprobe", "usdt": "usdt",
    "profile": "profile", "interval": "interval",
    "software": "software", "hardware": "hardware",
    "watchpoint": "watchpoint", "asyncwatchpoint": "watchpoint",
    "iter": "iter",
}

#: Short alias -> full probe type (bpftrace's own aliases).
ALIASES: Dict[str, str] = {
    "t": "tracepoint", "rt": "rawtracepoint", "k": "kprobe", "kr": "kretprobe",
    "f": "kfunc", "fr": "kretfunc", "u": "uprobe", "ur": "uretprobe", "U": "usdt",
    "p": "profile", "i": "interval", "s": "software", "h": "hardware",
    "w": "watchpoint", "aw": "asyncwatchpoint", "it": "iter",
}

#: bpftrace probe types undertow does not attach (yet), with the reason.
UNSUPPORTED_TYPES: Dict[str, str] = {
    "kfuncs": "not a bpftrace probe type",
}

#: perf software events (perf_event_open(2), PERF_TYPE_SOFTWARE): alias -> canonical name.
SOFTWARE_EVENTS: Dict[str, str] = {
    "cpu-clock": "cpu-clock", "cpu": "cpu-clock", "task-clock": "task-clock",
    "page-faults": "page-faults", "faults": "page-faults",
    "context-switches": "context-switches", "cs": "context-switches",
    "cpu-migrations": "cpu-migrations", "minor-faults": "minor-faults",
    "major-faults": "major-faults", "alignment-faults": "alignment-faults",
    "emulation-faults": "emulation-faults", "dummy": "dummy", "bpf-output": "bpf-output",
}

#: perf hardware events (PERF_TYPE_HARDWARE): alias -> canonical name.
HARDWARE_EVENTS: Dict[str, str] = {
    "cpu-cycles": "cpu-cycles", "cycles": "cpu-cycles", "instructions": "instructions",
    "cache-references": "cache-references", "cache-misses": "cache-misses",
    "branch-instructions": "branch-instructions", "branches": "branch-instructions",
    "branch-misses": "branch-misses", "bus-cycles": "bus-cycles",
    "frontend-stalls": "frontend-stalls", "backend-stalls": "backend-stalls",
    "ref-cycles": "ref-cycles",
}

#: The BPF iterators bpftrace 0.17 knows (``iter:NAME``): the kernel's ``bpf_iter_NAME``
#: target, and the members of its context (``struct bpf_iter__NAME``) as bpftrace lists them.
ITERATORS: Dict[str, Tuple[str, ...]] = {
    "task": ("struct task_struct * task",),
    "task_file": ("struct task_struct * task", "int fd", "struct file * file"),
}

_TIME_UNITS = ("hz", "s", "ms", "us")
# Fields are checked with character sets, not regular expressions (compiling them cost
# ~0.3 ms of every one-liner's start-up).
_DEC = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_NAME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.*?-")
_FUNC = _NAME | {"$"}


def _all_in(text: str, chars: frozenset) -> bool:
    return text != "" and all(c in chars for c in text)


def _is_hex(text: str) -> bool:
    """``0x`` or ``0X`` and hex digits."""
    return text[:2] in ("0x", "0X") and _all_in(text[2:], _HEX)


def _wild(text: str) -> bool:
    return "*" in text or "?" in text


def _offset(c: "_Ctx", text: str, at: int) -> int:
    n = _offset_value(c, text, at)
    if n >= 1 << 63:  # bpftrace's stoll fails, and kprobe_events reads a long
        raise c.err(f"offset +{text} is too large", at - 1, at + len(text),
                    ("an offset counts bytes from the start of the function",))
    return n


def _offset_value(c: "_Ctx", text: str, at: int) -> int:
    """An offset read as bpftrace 0.17 reads it (``std::stoll(text, &idx, 0)``, the rule
    kprobe_events also follows): hex after ``0x``, octal after a leading ``0`` (``+010``
    is 8), else decimal. ``+08`` is an error with a caret at ``at`` (its offset in the spec)."""
    if _is_hex(text):
        return int(text, 16)
    if len(text) > 1 and text[0] == "0":
        bad = [ch for ch in text if ch in "89"]
        if bad:
            n = int(text)
            raise c.err(f"bad offset '+{text}': a leading 0 means octal, and {bad[0]} is not an octal digit",
                        at - 1, at + len(text), (f"write +{n} (decimal) or +{n:#x} (hex)",))
        return int(text, 8)
    return int(text)


def _func_off(text: str) -> Optional[Tuple[str, Optional[str]]]:
    """``FUNCTION`` or ``FUNCTION+OFFSET`` (decimal or 0x hex) -> (function, offset text)."""
    func, plus, off = text.partition("+")
    if not _all_in(func, _FUNC):
        return None
    if not plus:
        return func, None
    return (func, off) if _is_hex(off) or _all_in(off, _DEC) else None


class _Ctx:
    def __init__(self, spec: str, start: int, source: str, origin: str) -> None:
        self.spec, self.start, self.source, self.origin = spec, start, source, origin

    def err(self, msg: str, a: int = 0, b: Optional[int] = None, hints: Tuple[str, ...] = ()) -> ParseError:
        b = len(self.spec) if b is None else b
        return ParseError(msg, source=self.source, span=Span(self.start + a, self.start + max(b, a + 1)),
                          origin=self.origin, hints=hints)


def _split(spec: str, quoted: Optional[set] = None) -> List[Tuple[str, int]]:
    """Fields of a spec with their offsets (``:`` separated). As bpftrace 0.17 reads them,
    a ``"``-quoted part is taken literally (``:`` included, ``\\x`` is ``x``) and its quotes
    dropped (``"echo_builtin"+0`` is ``echo_builtin+0``); the indexes of fields that had
    quotes are added to ``quoted``."""
    if '"' not in spec:
        out = []
        pos = 0
        for part in spec.split(":"):
            out.append((part, pos))
            pos += len(part) + 1
        return out
    fields: List[Tuple[str, int]] = []
    cur: List[str] = []
    start, i, inq, n = 0, 0, False, len(spec)
    while i < n:
        c = spec[i]
        if c == ":" and not inq:
            fields.append(("".join(cur), start))
            cur, start = [], i + 1
        elif c == '"':
            inq = not inq
            if quoted is not None:
                quoted.add(len(fields))
        elif inq and c == "\\" and i + 1 < n:
            cur.append(spec[i + 1])
            i += 1
        else:
            cur.append(c)
        i += 1
    fields.append(("".join(cur), start))
    return fields


#: Watchpoint modes x86's debug registers cannot watch (Intel SDM vol. 3, 17.2.4), as
#: bpftrace 0.17 refuses them.
INVALID_WATCH_MODES = ("r", "rx", "wx", "rwx")
#: Function arguments a watchpoint may name (arg0..arg5: the registers of the x86-64 ABI).
MAX_WATCH_ARG = 5


def _watchpoint(c: "_Ctx", ap: ir.AttachPoint, full: str, rest: List[Tuple[str, int]], end: int) -> None:
    """``watchpoint:ADDRESS:LEN:MODE`` or ``[async]watchpoint:FUNC+argN:LEN:MODE`` into
    ``ap.watch`` (``addr``, ``arg``: None or N, ``len``, ``mode`` sorted, ``async``) and
    ``ap.target`` (FUNC, "" for an address); bpftrace 0.17's checks and words."""
    if len(rest) != 3:
        raise c.err(f"{full} probe type requires 3 arguments", 0, end,
                    (f"write {full}:ADDRESS:LEN:MODE or {full}:FUNCTION+argN:LEN:MODE",))
    (where, woff), (size, soff), (mode, moff) = rest
    arg: Optional[int] = None
    addr = 0
    if "+" not in where:
        if full == "asyncwatchpoint":
            raise c.err(f"{full} requires a function name", woff, woff + max(len(where), 1))
        if not (_is_hex(where) or _all_in(where, _DEC)):
            raise c.err(f"bad watchpoint address '{where}'", woff, woff + max(len(where), 1),
                        ("an address (0x hex or decimal), or FUNCTION+argN",))
        addr = int(where, 16) if _is_hex(where) else int(where)
        if not addr:
            raise c.err("watchpoint must be attached to a non-zero address", woff, woff + len(where))
        if addr >= 1 << 64:
            raise c.err(f"watchpoint address {where} is too large", woff, woff + len(where))
    else:
        func, _, argtext = where.partition("+")
        if not _all_in(func, _FUNC) or "+" in argtext:
            raise c.err("Invalid function/address argument", woff, woff + len(where))
        at = woff + len(func) + 1
        if len(argtext) <= 3 or not argtext.startswith("arg") or not _all_in(argtext[3:], _DEC):
            raise c.err("Invalid function argument", at, at + max(len(argtext), 1), ("write FUNCTION+argN",))
        arg = int(argtext[3:])
        if arg > MAX_WATCH_ARG:
            raise c.err(f"x86_64 doesn't support arg{arg}", at, at + len(argtext))
        ap.target = func
    if not _all_in(size, _DEC) or int(size) not in (1, 2, 4, 8):
        raise c.err("watchpoint length must be one of (1,2,4,8)", soff, soff + max(len(size), 1))
    if not mode or any(ch not in "rwx" for ch in mode):
        raise c.err("watchpoint mode must be combination of (r,w,x)", moff, moff + max(len(mode), 1))
    smode = "".join(sorted(mode))
    if len(set(smode)) != len(smode):
        raise c.err("watchpoint modes may not be duplicated", moff, moff + len(mode))
    if smode in INVALID_WATCH_MODES:
        raise c.err(f"invalid watchpoint mode: {smode}", moff, moff + len(mode),
                    ("x86 watches w, rw or x",))
    ap.watch = {"addr": addr, "arg": arg, "len": int(size), "mode": smode, "async": full == "asyncwatchpoint"}


def _iterator(c: "_Ctx", ap: ir.AttachPoint, full: str, rest: List[Tuple[str, int]]) -> None:
    """``iter:NAME`` into ``ap.target``; bpftrace 0.17's checks (no wildcard) and its optional
    third field, a bpffs path to pin the iterator at, which undertow refuses: its printf
    goes through undertow's ring buffer, not the iterator's seq_file a reader of the pin
    would read."""
    if not rest or not rest[0][0] or len(rest) > 2:
        raise c.err(f"{full} probe type takes 2 arguments (1 optional)", 0, len(c.spec),
                    ("write iter:task or iter:task_file",))
    name, noff = rest[0]
    if _wild(name):
        raise c.err(f"{full} probe type does not support wildcards", noff, noff + len(name),
                    ("list the iterators with: undertow run -l 'iter:*'",))
    if name not in ITERATORS:
        hints = [did_you_mean(name, ITERATORS), "iterators: " + ", ".join(f"iter:{n}" for n in ITERATORS)]
        raise c.err(f"unknown iterator '{name}'", noff, noff + len(name), tuple(h for h in hints if h))
    if len(rest) == 2:
        pin, poff = rest[1]
        raise c.err("pinning an iterator is not supported by undertow", poff - 1, poff + max(len(pin), 1),
                    ("undertow runs the iterator once and prints what it finds; drop ':" + pin + "'",))
    ap.target = name


def parse_spec(spec: str, start: int, source: str, origin: str = "<stdin>") -> Tuple[ir.AttachPoint, str]:
    """Parse one attach-point spec found at offset ``start`` of ``source``.

    Returns the attach point (``span`` set) and its display name with aliases
    expanded (``t:syscalls:x`` -> ``tracepoint:syscalls:x``). Raises
    :class:`ParseError` for an unknown type, missing fields or a bad rate.
    """
    c = _Ctx(spec, start, source, origin)
    quoted: set = set()
    fields = _split(spec, quoted)
    head, _ = fields[0]
    rest = fields[1:]
    span = Span(start, start + len(spec))
    if head in UNSUPPORTED_TYPES:
        raise c.err(f"probe type '{head}' is not supported: {UNSUPPORTED_TYPES[head]}", 0, len(head))
    full = ALIASES.get(head, head)
    if full not in PROBE_TYPES:
        hints = [did_you_mean(head, PROBE_TYPES), "probe types: " + ", ".join(PROBE_TYPES)]
        raise c.err(f"unknown probe type '{head}'", 0, max(len(head), 1), tuple(h for h in hints if h))
    kind = PROBE_TYPES[full]

    def need(count: int, form: str) -> None:
        if len(rest) < count or any(not f for f, _ in rest[:count]):
            raise c.err(f"{full} probe needs {form}", 0, len(spec), (f"write {full}:{form}",))

    def too_many(count: int, form: str) -> None:
        if len(rest) > count:
            f, off = rest[count]
            raise c.err(f"too many fields in {full} probe", off - 1, len(spec), (f"write {full}:{form}",))

    ap = ir.AttachPoint(kind, span=span)
    if kind in ("begin", "end"):
        if rest:
            raise c.err(f"{head} takes no fields", len(head), len(spec))
        return ap, head

    if kind == "tracepoint":
        need(2, "GROUP:EVENT")
        too_many(2, "GROUP:EVENT")
        for f, off in rest:
            if not _all_in(f, _NAME):
                raise c.err(f"bad tracepoint name '{f}'", off, off + len(f))
        ap.target = f"{rest[0][0]}:{rest[1][0]}"
    elif kind in ("raw_tracepoint", "tp_btf"):
        need(1, "EVENT")
        too_many(2, "[MODULE:]EVENT")
        ap.target = rest[-1][0]
        if len(rest) == 2:
            ap.obj = rest[0][0]
    elif kind in ("kprobe", "kretprobe", "fentry", "fexit"):
        need(1, "FUNCTION")
        too_many(2, "[MODULE:]FUNCTION")
        f, off = rest[-1]
        fo = _func_off(f)
        if fo is None:
            raise c.err(f"bad function name '{f}'", off, off + len(f),
                        ("a kernel function name, optionally with +OFFSET (kprobe only)",))
        if fo[1] is not None:
            if kind != "kprobe":
                raise c.err(f"{full} probes take no offset", off + len(fo[0]), off + len(f))
            ap.offset = _offset(c, fo[1], off + len(fo[0]) + 1)
        ap.target = fo[0]
        if len(rest) == 2:
            ap.obj = rest[0][0]
    elif kind in ("uprobe", "uretprobe"):
        need(2, "PATH:SYMBOL")
        too_many(2, "PATH:SYMBOL")
        (path, _), (sym, off) = rest
        ap.obj = path
        fo = _func_off(sym)
        if 2 in quoted and fo is None:
            # a quoted symbol may hold any character (C++: "ns::f(int)"); one + offset
            name, plus, num = sym.rpartition("+") if "+" in sym else (sym, "", "")
            if plus and (_is_hex(num) or _all_in(num, _DEC)) and name:
                fo = (name, num)
            elif name:
                fo = (sym, None)
        if _is_hex(sym) or _all_in(sym, _DEC):
            # an address in the file (bpftrace reads it with stoll: 0x hex or decimal)
            ap.target = ""
            ap.offset = int(sym, 16) if _is_hex(sym) else int(sym)
        elif fo is not None:
            ap.target = fo[0]
            if fo[1] is not None:
                if kind != "uprobe":
                    raise c.err("uretprobe probes take no offset", off + len(fo[0]), off + len(sym))
                ap.offset = _offset(c, fo[1], off + len(fo[0]) + 1)
        else:
            raise c.err(f"bad symbol '{sym}'", off, off + len(sym))
    elif kind == "usdt":
        # usdt:PATH:NAME, usdt:PATH:PROVIDER:NAME; with -p the path may be empty
        # (usdt::PROVIDER:NAME) or left out (usdt:NAME): the resolver checks that
        if not rest or not rest[-1][0] and len(rest) < 3:
            raise c.err(f"{full} probe needs PATH:[PROVIDER:]NAME", 0, len(spec),
                        (f"write {full}:PATH:[PROVIDER:]NAME",))
        too_many(3, "PATH:[PROVIDER:]NAME")
        # target: PROVIDER:NAME, or NAME alone when the provider is left out
        if len(rest) == 1:
            ap.obj, ap.target = "", rest[0][0]
        elif len(rest) == 2:
            ap.obj, ap.target = rest[0][0], rest[1][0]
        else:
            ap.obj, ap.target = rest[0][0], rest[1][0] + ":" + rest[2][0]
    elif kind in ("profile", "interval"):
        need(2, "UNIT:RATE")
        too_many(2, "UNIT:RATE")
        (unit, uoff), (rate, roff) = rest
        if unit not in _TIME_UNITS:
            raise c.err(f"unknown {full} unit '{unit}'", uoff, uoff + len(unit),
                        ("units: " + ", ".join(_TIME_UNITS),))
        if not _all_in(rate, _DEC) or int(rate) == 0:
            raise c.err(f"{full} rate must be a positive integer", roff, roff + max(len(rate), 1))
        ap.target = f"{unit}:{int(rate)}"
    elif kind in ("software", "hardware"):
        table = SOFTWARE_EVENTS if kind == "software" else HARDWARE_EVENTS
        need(1, "EVENT[:COUNT]")
        too_many(2, "EVENT[:COUNT]")
        ev, eoff = rest[0]
        if ev not in table:
            raise c.err(f"unknown {full} event '{ev}'", eoff, eoff + len(ev),
                        tuple(h for h in (did_you_mean(ev, table), "events: " + ", ".join(sorted(set(table.values())))) if h))
        count = ""
        if len(rest) == 2 and rest[1][0]:
            cnt, coff = rest[1]
            if not _all_in(cnt, _DEC) or int(cnt) == 0:
                raise c.err(f"{full} count must be a positive integer", coff, coff + len(cnt))
            count = str(int(cnt))
        ap.target = f"{table[ev]}:{count}" if count else table[ev]
    elif kind == "watchpoint":
        _watchpoint(c, ap, full, rest, len(spec))
    elif kind == "iter":
        _iterator(c, ap, full, rest)
    ap.wildcard = _wild(ap.target) or _wild(ap.obj) and kind == "usdt"
    name = f"{full}:" + ":".join(f for f, _ in rest)
    return ap, name
