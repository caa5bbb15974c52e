"""Running a :class:`~undertow.backends.bpf.compiled.CompiledProgram`: maps, loads, attaches, records.

Attach methods, per IR kind (each hangs off an fd this session owns; closing
the fd detaches, nothing is pinned):

- ``tracepoint``: a perf event on the tracepoint id (``cpu=0`` runs it on every CPU);
- ``raw_tracepoint``: ``BPF_RAW_TRACEPOINT_OPEN``;
- ``kprobe``/``kretprobe``/``uprobe``/``uretprobe``: a perf event of the dynamic
  ``kprobe``/``uprobe`` PMU (Linux 4.17+, commit e12f03d7031a "perf/core: Implement
  the 'perf_kprobe' PMU"); the ``retprobe`` bit comes from the PMU's format directory;
- ``profile``: one ``cpu-clock`` software event per online CPU at the frequency
  (``hz``) or period (``s``/``ms``/``us``); ``interval``: one such event on CPU 0;
  ``software``: the named software event per CPU every COUNT occurrences;
- ``watchpoint``: a ``PERF_TYPE_BREAKPOINT`` event on the address (watch.py); a function
  watchpoint's when its set-up uprobe sends the address (a ``watch`` record);
- ``begin``/``end``: raw tracepoint programs run once with ``BPF_PROG_TEST_RUN`` in
  this process (BEGIN after everything is attached, END before the maps are read);
- ``iter``: a ``BPF_TRACE_ITER`` link (``BPF_LINK_CREATE``); the first :meth:`poll`
  reads an iterator of it (``BPF_ITER_CREATE``) to its end in this process, which runs
  the program once per task (file), then hands out an :class:`ExitRequest` once the
  ring is drained: the run ends there, as bpftrace 0.17's does.

Records come back through the ring buffer as :class:`Printed`, :class:`MapPrint`,
:class:`ExitRequest` or :class:`~undertow.events.Event`; losses as
:class:`~undertow.events.Lost`.
"""

from __future__ import annotations

import atexit
import errno
import mmap
import os
import re
import struct
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

from ... import stop
from ...errors import BPFError, SourceError, UndertowError, VerifierError
from ...events import Event, Lost, Record, Stats
from ...kernel import syscalls as sc
from ..base import Session
from .codegen import HEADER, HDR_SIZE
from .compiled import LOST_MAP_FULL, LOST_READ_FAULT, LOST_RINGBUF, AsyncAction, CompiledProgram, CompiledProbe, MapSpec
from .layout import decode, decoder
from .ringbuf import RingBuffer
from .ringprefetch import RingPrefetch, default_buffer_mb
from .watch import Notice, Watches

__all__ = ["ProgramSession", "Printed", "MapPrint", "ExitRequest", "Notice", "read_map", "AttachError", "default_buffer_mb"]

RINGBUF_SIZE = 1 << 22
#: Records handed out by one poll() at most (see ProgramSession.poll).
POLL_RECORDS = 16384
# Records are submitted without a wake-up (BPF_RB_NO_WAKEUP) and callers poll on a timer
# (20-50 ms). Until the first record arrives, and for at most EAGER_SECONDS after attaching,
# poll() waits at most EAGER_POLL instead: the first event shows within ~2 ms of
# happening, for ~500 cheap wake-ups per second during that window only.
EAGER_POLL = 0.002
EAGER_SECONDS = 1.0
STACK_DEPTH = 127

_SW_EVENTS = {
    "cpu-clock": (sc.PerfSwConfig.CPU_CLOCK, 1000000), "task-clock": (sc.PerfSwConfig.TASK_CLOCK, 1000000),
    "page-faults": (sc.PerfSwConfig.PAGE_FAULTS, 100), "context-switches": (sc.PerfSwConfig.CONTEXT_SWITCHES, 1000),
    "cpu-migrations": (sc.PerfSwConfig.CPU_MIGRATIONS, 1), "minor-faults": (sc.PerfSwConfig.PAGE_FAULTS_MIN, 100),
    "major-faults": (6, 1), "alignment-faults": (7, 1), "emulation-faults": (8, 1), "dummy": (9, 1),
}


class AttachError(UndertowError):
    """A probe could not be attached (the kernel refused or lacks the mechanism)."""


class Printed:
    """Text a program printed (printf, time, cat, join, print of a value).

    ``raw`` is the record's payload; ``values`` decodes it (on first use: the printf fast
    path in output/bt.py formats straight from ``raw``).
    """

    __slots__ = ("text", "action", "raw", "_values", "ts", "pid", "tid", "cpu", "_comm")

    def __init__(self, text: str, action: AsyncAction, values: Optional[List[Any]] = None,
                 raw: bytes = b"", hdr: Tuple[int, int, int, bytes, int] = (0, 0, 0, b"", 0)) -> None:
        self.text, self.action, self.raw, self._values = text, action, raw, values
        self.ts, self.pid, self.tid, self._comm, self.cpu = hdr

    @property
    def comm(self) -> str:
        """The task's name when the record was made (decoded on use; the names seen last
        are decoded once: ~0.5 us less per record of a tool, issue 18)."""
        c = _COMMS.get(self._comm)
        if c is None:
            c = self._comm.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
            if len(_COMMS) >= 1024:
                _COMMS.clear()
            _COMMS[self._comm] = c
        return c

    @property
    def values(self) -> List[Any]:
        if self._values is None:
            dec = _decoder_of(self.action)
            if dec is not None:
                try:
                    self._values = dec(self.raw)
                    return self._values
                except struct.error:  # a payload shorter than its layout: value by value
                    pass
            self._values = [decode(s, self.raw[o:o + s.size]) for o, s in self.action.args]
        return self._values


#: a record's 16 raw ``comm`` bytes -> the name (bounded)
_COMMS: Dict[bytes, str] = {}

#: id(action) -> (the action, kept so its id stays its own; its one-unpack decoder or None)
_DECODERS: Dict[int, Tuple[AsyncAction, Optional[Callable[[bytes], List[Any]]]]] = {}


def _decoder_of(action: AsyncAction) -> Optional[Callable[[bytes], List[Any]]]:
    hit = _DECODERS.get(id(action))
    if hit is None:
        if len(_DECODERS) >= 4096:  # a library caller loading program after program: bounded
            _DECODERS.clear()
        hit = _DECODERS[id(action)] = (action, decoder(action.args))
    return hit[1]


class MapPrint:
    """``print(@m)`` (or the final dump): the map's spec and its entries at that moment."""

    __slots__ = ("spec", "entries", "top", "div")

    def __init__(self, spec: MapSpec, entries: List[Tuple[tuple, Any]], top: int = 0, div: int = 1) -> None:
        self.spec, self.entries, self.top, self.div = spec, entries, top, div


class ExitRequest:
    """The program called ``exit()``."""

    __slots__ = ()


class ProgramSession(Session):
    """Owns every fd of one running compiled program."""

    def __init__(self, compiled: CompiledProgram, kernel: Any, renderer: Any = None,
                 ringbuf_size: int = RINGBUF_SIZE, ring: Optional[RingPrefetch] = None) -> None:
        self.c = compiled
        self.kernel = kernel
        self.renderer = renderer
        self.stats = Stats()
        self.fds: List[int] = []
        self.map_fds: Dict[str, int] = {}
        self.rb: Optional[RingBuffer] = None
        self.rb_size = ring.size if ring is not None else ringbuf_size
        self._ring = ring
        self.lost_fd = -1
        self._lost_mm: Optional[mmap.mmap] = None  # the lost counters mapped (BPF_F_MMAPABLE)
        self._lost_words: Optional[memoryview] = None
        self.stack_fd = -1
        self._lost_seen = [0, 0, 0]
        self.read_faults = 0
        self._closed = False
        self._ended = False
        self.ncpus = sc.possible_cpus()
        self.end_progs: List[int] = []
        self.attached: List[str] = []
        self._attach_fds: set = set()
        self._eager_until = 0.0
        self._kprobe_group: Optional[str] = None
        self._kprobe_defs: List[str] = []
        self.state_fd = -1
        self.sent_fd = -1
        self._seen = 0  # records taken out of the ring (shown, or dropped as made after the stop)
        self._slow_fds = 0
        self._cutoff = 0  # after stop_producing: records stamped later are dropped (after_stop)
        self._exited = False  # exit()'s record read: later records are dropped (after_stop)
        self._printk_was_off = False  # close() turns bpf_trace_printk's global event off again
        self.watches = Watches(self._link, self._unlink, _online_cpus)
        self._iter_links: List[int] = []  # iter probes' links, read by the first poll()
        self._iter_done = False  # the iterators were read: an ExitRequest once the ring is empty

    @classmethod
    def start(cls, compiled: CompiledProgram, kernel: Any, renderer: Any = None,
              ringbuf_size: int = RINGBUF_SIZE, ring: Optional[RingPrefetch] = None) -> "ProgramSession":
        """Load, attach and start reading ``compiled``; ``ring``: a ring buffer map created
        in advance (its size wins over ``ringbuf_size``)."""
        s = cls(compiled, kernel, renderer, ringbuf_size, ring)
        atexit.register(s.close)
        try:
            s._setup()
        except BaseException:
            s.close()
            raise
        return s

    # -- set-up
    def _setup(self) -> None:
        # stop.check() between steps: a stop asked during set-up ends it at the next step
        # (start() closes what was made); fds die with the process, kprobe_events lines
        # do not and are recorded before they are written (_legacy_kprobe)
        check = stop.check
        check()
        if getattr(self.c, "uses_trace_printk", False):  # (programs cached before it existed: False)
            # loading a program that calls bpf_trace_printk enables the global instance's
            # bpf_trace/bpf_trace_printk event and nothing disables it (kernel/trace/bpf_trace.c
            # __set_printk_clr_event, since 5.9): noted before loading, put back by close()
            self._printk_was_off = _read_event_enable(self.kernel, PRINTK_EVENT) == "0"
        sc.raise_memlock_rlimit()
        perf = self.c.options.get("output") == "perfbuf"
        if perf:
            if self._ring is not None:
                self._ring.discard()
                self._ring = None
            rb = sc.map_create(sc.MapType.PERF_EVENT_ARRAY, 4, 4, self.ncpus)
        else:
            rb = self._ring.take() if self._ring is not None else sc.map_create(sc.MapType.RINGBUF, 0, 0, self.rb_size)
        self.fds.append(rb)
        self.lost_fd = self._lost_map()
        self.fds.append(self.lost_fd)
        state = sc.map_create(sc.MapType.ARRAY, 4, 8, 1)  # [0]: exit() was called, or stop_producing()
        self.fds.append(state)
        self.state_fd = state
        self.sent_fd = sc.map_create(sc.MapType.PERCPU_ARRAY, 4, 8, 1)  # records submitted, per CPU
        self.fds.append(self.sent_fd)
        relocs: Dict[Any, int] = {"rb": rb, "lost": self.lost_fd, "state": state, "sent": self.sent_fd,
                                  ("value", "self_pid"): os.getpid(), ("value", "start_ns"): self.c.start_ns}
        if perf:
            # records are built in a per-CPU scratch value, then copied to this CPU's perf ring;
            # the rings exist before any program can fire (an empty slot drops the record)
            size = max([HDR_SIZE + ((a.size + 7) & ~7) for a in self.c.actions] + [HDR_SIZE])
            relocs["scratch"] = sc.map_create(sc.MapType.PERCPU_ARRAY, 4, size, 1)
            self.fds.append(relocs["scratch"])
            from .perfbuf import PerfBuffer  # kernels before 5.8 only: not imported otherwise

            self.rb = PerfBuffer(rb, _online_cpus(), pages=_perf_pages(self.rb_size, self.ncpus))
        if self.c.uses_stacks:
            self.stack_fd = sc.map_create(sc.MapType.STACK_TRACE, 4, 8 * STACK_DEPTH, 4096)
            self.fds.append(self.stack_fd)
            relocs["stacks"] = self.stack_fd
        for spec in self.c.maps.values():
            mtype = sc.MapType.PERCPU_HASH if spec.percpu else sc.MapType.HASH
            fd = sc.map_create(mtype, spec.key_size, spec.value_size, spec.max_entries)
            self.fds.append(fd)
            self.map_fds[spec.name] = fd
            relocs[("map", spec.name)] = fd
        begin: List[int] = []
        self.relocs = relocs
        check()
        slots = self._dispatch_plan()
        carried = {i: (d, nr) for d, by_nr in slots.items() for nr, i in by_nr.items()}
        tail: Dict[str, Dict[int, int]] = {}
        now: List[Tuple[CompiledProbe, int]] = []
        later: List[Tuple[CompiledProbe, int]] = []
        for i, cp in enumerate(self.c.probes):
            check()
            if getattr(cp.ap, "multi", None):
                self._names_table(cp)
            fd, cp = self._load_any(cp)
            self.c.probes[i] = cp
            kind = cp.ap.kind
            if kind == "begin":
                begin.append(fd)
            elif kind == "end":
                self.end_progs.append(fd)
            elif kind == "watchpoint" and cp.ap.target:
                self.watches.wait(cp, fd)  # attached when its set-up probe sends the address
            elif i in carried:
                d, nr = carried[i]
                tail.setdefault(d, {})[nr] = fd
            elif kind in _RUN_LAST_ATTACHED_FIRST:
                later.append((cp, fd))
            else:
                now.append((cp, fd))
            self.attached.append(cp.name)
        if not perf:
            self.rb = RingBuffer(rb, self.rb_size)
        self._eager_until = time.monotonic() + EAGER_SECONDS
        check()
        # BEGIN runs before any other probe is attached, as in bpftrace: what it sets is
        # there for the first event, and an interval counts from after it
        for fd in begin:
            sc.prog_test_run(fd, bytes(8))
        # the kernel runs the `later` kinds newest first: attached in reverse, several
        # probes on one event run in the script's order, as bpftrace makes them
        for cp, fd in now + later[::-1]:
            check()
            self._attach(cp, fd)
        for d, progs in tail.items():
            check()
            self._attach_dispatcher(d, progs, [self.c.probes[i] for i in slots[d].values()])

    def _load_any(self, cp: CompiledProbe) -> Tuple[int, CompiledProbe]:
        """Load ``cp``; a refused fentry/fexit falls back to kprobe/kretprobe (same data)."""
        try:
            return self._load(cp, cp.program.relocate(self.relocs)), cp
        except (BPFError, SourceError) as e:
            if cp.ap.kind not in ("fentry", "fexit", "tp_btf"):
                raise
            from . import regenerate  # imports the code generator: for a fallback only

            why = getattr(e, "message", str(e))
            if cp.ap.kind == "tp_btf":  # same arguments, untyped: a raw tracepoint carries them
                alt = regenerate(self.c, cp, "raw_tracepoint")
                alt.note = f"tp_btf refused ({why}); attached as a raw tracepoint"
                return self._load(alt, alt.program.relocate(self.relocs)), alt
            kind = "kprobe" if cp.ap.kind == "fentry" else "kretprobe"
            if sc.pmu_type("kprobe") is None and not os.path.exists(self._kprobe_events()):
                from ...errors import AttachUnavailableError

                msg = f"the kernel refused {cp.ap.kind} ({why}) and has no kprobes to fall back to"
                hints = ["look for a tracepoint carrying the same data: undertow list 'tracepoint:*'"]
                if cp.probe.source and cp.ap.span is not None:
                    raise AttachUnavailableError(cp.ap.kind, msg, source=cp.probe.source, span=cp.ap.span,
                                                 origin=cp.probe.origin, hints=hints) from None
                raise AttachError(f"{cp.name}: {msg}", hints=hints) from None
            alt = regenerate(self.c, cp, kind)
            alt.note = f"{cp.ap.kind} refused ({why}); attached as {kind}"
            return self._load(alt, alt.program.relocate(self.relocs)), alt

    def _kprobe_events(self) -> str:
        try:
            return os.path.join(self.kernel.tracefs().root, "kprobe_events")
        except (UndertowError, AttributeError):
            return "/sys/kernel/tracing/kprobe_events"

    def _names_table(self, cp: CompiledProbe) -> None:
        """The ``probe``/``func`` texts of a merged uprobe wildcard, by link cookie
        (gen/memory.py, MemoryGen.cookie_string)."""
        from ...lang import ir
        from ...lang.resolve_bt import bt_probe_name
        import copy as _copy

        multi = cp.ap.multi  # type: ignore[attr-defined]
        texts = []
        for name, _off in multi:
            one = _copy.copy(cp.ap)
            one.target = name
            texts.append(ir.text_bytes(bt_probe_name(one)))
        texts += [ir.text_bytes(name) for name, _off in multi]
        size = max(len(t) for t in texts) + 1
        fd = sc.map_create(sc.MapType.ARRAY, 4, (size + 7) & ~7, len(texts))
        self.fds.append(fd)
        for i, t in enumerate(texts):
            sc.map_update_elem(fd, struct.pack("<I", i), t.ljust((size + 7) & ~7, b"\0"))
        self.relocs[("names", id(cp.ap))] = fd

    def _load(self, cp: CompiledProbe, raw: bytes) -> int:
        ptype = getattr(sc.ProgType, cp.prog_type)
        kw: Dict[str, Any] = {}
        if cp.prog_type == "TRACING":
            kw = self._tracing_target(cp)
        elif getattr(cp.ap, "multi", None):
            eat = sc.AttachType.TRACE_KPROBE_MULTI if cp.ap.kind in ("kprobe", "kretprobe") else \
                sc.AttachType.TRACE_UPROBE_MULTI
            kw = {"expected_attach_type": int(eat)}
        try:
            fd = sc.prog_load(ptype, raw, license="GPL", name=f"ut_{cp.index}", **kw)
        except VerifierError as e:
            raise _locate(e, cp) from None
        assert isinstance(fd, int)
        self.fds.append(fd)
        return fd

    def _tracing_target(self, cp: CompiledProbe) -> Dict[str, Any]:
        btf = self.kernel.btf()
        if cp.ap.kind == "tp_btf":
            tid = btf.find_id("btf_trace_" + cp.ap.target, "typedef")
            return {"expected_attach_type": int(sc.AttachType.TRACE_RAW_TP), "attach_btf_id": tid}
        if cp.ap.kind == "iter":  # the iterator target's FUNC: bpf_iter_task, bpf_iter_task_file
            fid = btf.find_id("bpf_iter_" + cp.ap.target, "func")
            return {"expected_attach_type": int(sc.AttachType.TRACE_ITER), "attach_btf_id": fid}
        fid = btf.find_id(cp.ap.target, "func")
        eat = sc.AttachType.TRACE_FENTRY if cp.ap.kind == "fentry" else sc.AttachType.TRACE_FEXIT
        return {"expected_attach_type": int(eat), "attach_btf_id": fid}

    def _dispatch_plan(self) -> Dict[str, Dict[int, int]]:
        """Which syscall probes one raw_syscalls dispatcher per direction carries
        (backends/bpf/dispatch.py); empty when the kernel or this arch cannot."""
        from ...kernel.syscall_table import numbers
        from . import dispatch

        arch = os.uname().machine
        slots = dispatch.plan(self.c.probes, numbers(arch))
        if not slots:
            return {}
        self._compat_off: Optional[int] = None
        if arch == "x86_64":
            # without it 32-bit compat syscalls would be taken for the 64-bit ones
            try:
                self._compat_off = self.kernel.member_offset("task_struct", "thread_info.status")
            except (UndertowError, OSError, AttributeError):
                return {}
        try:
            tfs = self.kernel.tracefs()
            self._dispatch_ids = {d: tfs.event_id("raw_syscalls", d) for d in slots}
        except (UndertowError, OSError):
            return {}
        return slots

    def _attach_dispatcher(self, direction: str, progs: Dict[int, int], probes: List[CompiledProbe]) -> None:
        """A PROG_ARRAY of the probes' programs by syscall number and one program on
        ``raw_syscalls:<direction>`` that tail-calls into it."""
        from . import dispatch

        top = max(progs)
        arr = sc.map_create(sc.MapType.PROG_ARRAY, 4, 4, top + 1)
        self.fds.append(arr)
        for nr, fd in progs.items():
            sc.map_update_elem(arr, struct.pack("<I", nr), struct.pack("<I", fd))
        asm = dispatch.program(top, self._compat_off)
        raw = asm.assemble().relocate({"progs": arr})
        fd = sc.prog_load(sc.ProgType.TRACEPOINT, raw, license="GPL", name=f"ut_{direction}")
        self.fds.append(fd)
        tp_id = self._dispatch_ids[direction]
        self._perf(sc.tracepoint_attr(tp_id), fd, cpu=0)
        for cp in probes:
            cp.note = (f"one of {len(progs)} syscall probes tail-called from a single "
                       f"raw_syscalls:{direction} program (one attachment, fast detach)")

    def _attach(self, cp: CompiledProbe, prog: int) -> None:
        ap = cp.ap
        kind = ap.kind
        try:
            if kind == "tracepoint":
                g, _, e = ap.target.partition(":")
                tp_id = self.kernel.tracefs().event_id(g, e)  # read now: a module reload renumbers
                self._perf(sc.tracepoint_attr(tp_id), prog, cpu=0)
            elif kind == "raw_tracepoint":
                self._link(sc.raw_tracepoint_open(ap.target.split(":")[-1], prog))
            elif kind in ("fentry", "fexit", "tp_btf"):
                self._link(sc.raw_tracepoint_open(None, prog))
            elif kind == "iter":
                link = sc.link_create(prog, 0, sc.AttachType.TRACE_ITER)
                self._link(link)
                self._iter_links.append(link)
            elif kind in ("kprobe", "kretprobe") and getattr(ap, "multi", None):
                names = [name for name, _off in ap.multi]
                self._link(sc.link_create_kprobe_multi(prog, syms=names, cookies=list(range(len(names))),
                                                       retprobe=kind == "kretprobe"))
                cp.note = (cp.note + "; " if cp.note else "") + f"{len(names)} functions on one kprobe_multi link"
            elif kind in ("kprobe", "kretprobe"):
                pmu = sc.pmu_type("kprobe")
                if pmu is None or os.environ.get("UNDERTOW_KPROBE_ATTACH") == "tracefs":
                    self._legacy_kprobe(cp, prog)
                    return
                bit = sc.pmu_format_bit("kprobe", "retprobe")
                attr = sc.kprobe_attr(pmu, ap.target, ap.offset, retprobe_bit=bit, retprobe=kind == "kretprobe")
                self._perf(attr, prog, cpu=0)
            elif kind in ("uprobe", "uretprobe") and getattr(ap, "multi", None):
                # one link for every function of the wildcard, cookie i = the i-th function
                offs = [off for _name, off in ap.multi]
                self._link(sc.link_create_uprobe_multi(prog, ap.path, offs, cookies=list(range(len(offs))),
                                                       pid=ap.pid or 0, retprobe=kind == "uretprobe"))
                cp.note = (cp.note + "; " if cp.note else "") + \
                    f"{len(offs)} functions on one uprobe_multi link"
            elif kind in ("uprobe", "uretprobe", "usdt"):
                pmu = sc.pmu_type("uprobe")
                if pmu is None:
                    raise AttachError(f"{cp.name}: this kernel has no uprobe PMU")
                bit = sc.pmu_format_bit("uprobe", "retprobe")
                # a USDT marker's semaphore: the kernel counts it up in every process that maps
                # the file while the probe is attached, and down on detach (ref_ctr_offset)
                usdt = getattr(ap, "usdt", None)
                sem = int(getattr(usdt, "semaphore_file_offset", None) or 0)
                attr = sc.uprobe_attr(pmu, ap.path, int(ap.file_offset or 0), retprobe_bit=bit,
                                      retprobe=kind == "uretprobe", ref_ctr_offset=sem)
                pid = ap.pid if ap.pid else -1
                self._perf(attr, prog, pid=pid, cpu=0 if pid == -1 else -1)
            elif kind in ("profile", "interval"):
                unit, _, rate = ap.target.partition(":")
                n = int(rate or 0)
                if n <= 0:
                    raise AttachError(f"{cp.name}: the rate must be positive")
                if unit == "hz":
                    attr = sc.software_attr(sc.PerfSwConfig.CPU_CLOCK, freq=n) if kind == "profile" else \
                        sc.software_attr(sc.PerfSwConfig.CPU_CLOCK, period=max(1, 10 ** 9 // n))
                else:
                    ns = n * {"s": 10 ** 9, "ms": 10 ** 6, "us": 10 ** 3, "ns": 1}.get(unit, 1)
                    attr = sc.software_attr(sc.PerfSwConfig.CPU_CLOCK, period=ns)
                cpus = _online_cpus() if kind == "profile" else [0]
                for c in cpus:
                    self._perf(attr, prog, cpu=c)
            elif kind == "software":
                name, _, count = ap.target.partition(":")
                cfg, default = _SW_EVENTS.get(name, (None, 1))
                if cfg is None:
                    raise AttachError(f"{cp.name}: unknown software event {name}")
                attr = sc.software_attr(int(cfg), period=int(count) if count else default)
                for c in _online_cpus():
                    self._perf(attr, prog, cpu=c)
            elif kind == "watchpoint":
                self.watches.attach(cp, prog, int((ap.watch or {}).get("addr", 0)))
            else:
                raise AttachError(f"{cp.name}: {kind} probes are not supported by the BPF backend yet")
        except BPFError as e:
            hints = list(e.hints)
            if getattr(ap, "multi", None):
                hints.append("one program per function instead of one multi link: UNDERTOW_MULTI_LINKS=0")
            raise AttachError(f"attaching {cp.name} failed: {e.message}", hints=hints) from None

    def _legacy_kprobe(self, cp: CompiledProbe, prog: int) -> None:
        """A kprobe through ``kprobe_events`` (kernels before 4.17 have no kprobe PMU, and
        ``UNDERTOW_KPROBE_ATTACH=tracefs`` asks for it): define ``p:GROUP/EVENT FUNC+OFF``
        (``r:`` for a kretprobe) in undertow's own group ``undertow_<pid>_<n>``, open the
        event's id as a tracepoint perf event and attach the program to it. The definition
        is recorded before it is written and removed at close, after the perf event; a
        SIGKILLed run's is removed by the next session (the first legacy kprobe of a run
        removes stale ones, as an ftrace session's start does) or ``undertow cleanup``
        (backends/leftovers.py, shared with the ftrace backend)."""
        from ..leftovers import next_session_name, remove_stale, report_removed

        ap = cp.ap
        tfs = self.kernel.tracefs()
        if not tfs.has("kprobe_events"):
            raise AttachError(f"{cp.name}: this kernel has no kprobes (no kprobe PMU, no kprobe_events)",
                              hints=["kprobes are off in this kernel (CONFIG_KPROBES); use a tracepoint"])
        if self._kprobe_group is None:
            try:
                report_removed(remove_stale(tfs))
            except (UndertowError, OSError):
                pass  # best effort: someone else's leftovers never stop a run
            self._kprobe_group = next_session_name()
        event = f"p{cp.index}"
        where = ap.target + (f"+{ap.offset}" if ap.offset else "")
        self._kprobe_defs.append(f"{self._kprobe_group}/{event}")  # before the write: see above
        tfs.write("kprobe_events", f"{'r' if ap.kind == 'kretprobe' else 'p'}:{self._kprobe_group}/{event} {where}")
        tp_id = tfs.event_format(self._kprobe_group, event).id
        self._perf(sc.tracepoint_attr(tp_id), prog, cpu=0)
        cp.note = (cp.note + "; " if cp.note else "") + f"attached through kprobe_events ({self._kprobe_group}/{event})"

    def _remove_kprobe_def(self, ev: str) -> None:
        try:
            _remove_kprobe_def_in(self.kernel.tracefs(), ev)
        except (UndertowError, OSError):
            pass

    def _link(self, fd: int) -> None:
        self.fds.append(fd)
        self._attach_fds.add(fd)

    def _unlink(self, fd: int) -> None:
        """Detach and close ``fd`` now (``unwatch``)."""
        if fd in self._attach_fds:
            self._attach_fds.discard(fd)
            self.fds.remove(fd)
            sc.close_fd(fd)

    def _perf(self, attr: Any, prog: int, pid: int = -1, cpu: int = 0) -> None:
        pfd = sc.perf_event_open(attr, pid=pid, cpu=cpu)
        self.fds.append(pfd)
        self._attach_fds.add(pfd)
        if attr.type not in (sc.PerfType.SOFTWARE, sc.PerfType.HARDWARE):
            self._slow_fds += 1  # a tracepoint, kprobe or uprobe: its close waits for RCU (close())
        sc.perf_event_set_bpf(pfd, prog)
        sc.perf_event_enable(pfd)

    # -- stopping
    def wake_on(self, fd: int) -> None:
        if self.rb is not None:
            self.rb.wake_on(fd)

    def stop_producing(self, at_ns: int) -> None:
        """Raise the programs' stop flag (state[0], tested first by every probe: gen/prologue.py)
        so nothing more is recorded or counted, and drop records stamped after ``at_ns``
        that are already in the buffers (counted in ``stats.after_stop``)."""
        self._cutoff = at_ns
        if self._exited:
            # exit(): as in bpftrace 0.17, whose probes run on until it has detached them
            # (after the exit record is read, before END), the programs go on counting
            # until END (run_end raises the flag then)
            return
        self._raise_stop_flag()

    def _raise_stop_flag(self) -> None:
        if self.state_fd >= 0:
            try:
                sc.map_update_elem(self.state_fd, struct.pack("<I", 0), struct.pack("<Q", 2))
            except BPFError:
                pass

    def pending(self) -> bool:
        return self.rb is not None and not self._closed and bool(self.rb.pending())

    def count_unread(self) -> int:
        """Count what is left in the buffers (``stats.not_drained``), without reading it:
        the programs count the records they submit (``sent``, per CPU), this session the
        ones it took out of the ring; the difference never reached the reader. O(CPUs),
        whatever the backlog (walking a 32 MiB backlog record by record took ~0.3 s).
        stop_producing ran in the signal handler itself (undertow.stop.listen), so what
        is left was made before the stop, but for the microseconds the handler took."""
        if self.rb is None or self._closed:
            return 0
        out: List[Any] = []
        self._check_lost(out)
        left = 0
        if self.sent_fd >= 0:
            try:
                raw = sc.map_lookup_elem(self.sent_fd, struct.pack("<I", 0), 8 * self.ncpus)
            except BPFError:
                raw = None
            if raw:
                sent = sum(struct.unpack(f"<{self.ncpus}Q", raw[:8 * self.ncpus]))
                left = max(0, sent - self._seen)
        if left and self._exited:
            self.stats.after_stop += left  # read after exit()'s record: never shown (bpftrace's way)
        elif left:
            self.stats.not_drained += left
        self._seen += left
        # Nothing of it is read later (END's records come after it): the ring is handed back
        # whole. A program that passed the stop flag just before it was raised may still be
        # writing its record: a millisecond lets it commit.
        time.sleep(0.001)
        self.rb.skip_all()
        return left

    # -- reading
    def poll(self, timeout: Optional[float] = None, limit: Optional[int] = None) -> List[Record]:
        """Records that arrived (at most ``limit``: the caller handles them, then polls again,
        so the ring is looked at, and spilled to the backlog if over half full, at least
        every ``limit`` records)."""
        if self._closed or self.rb is None:
            return []
        if limit is None:
            limit = POLL_RECORDS
        out: List[Any] = []
        if self._iter_links and not self._iter_done:
            self._read_iterators()
            timeout = 0
        if not self.rb.pending():
            if self._eager_until and (timeout is None or timeout > EAGER_POLL):
                if time.monotonic() < self._eager_until:
                    timeout = EAGER_POLL
                else:
                    self._eager_until = 0.0
            self.rb.poll(timeout)
        if self.rb.consume(lambda v: self._record(v, out), limit):
            self._eager_until = 0.0
        self._check_lost(out)
        if self._iter_done and not self._exited and not self.rb.pending():
            # every object was visited and every record read: the run ends (END, maps)
            self._exited = True
            out.append(ExitRequest())
        return out

    def _read_iterators(self) -> None:
        """Read an iterator of each iter link to its end (read(2) returns 0): the kernel runs
        the program for every object meanwhile, in this process; what they record waits in
        the ring for :meth:`poll`. The programs write nothing to the iterator's own text,
        so each read(2) visits every object (or a million of them: EAGAIN, read again)."""
        self._iter_done = True
        for link in self._iter_links:
            fd = -1
            try:
                fd = sc.iter_create(link)
                while not stop.requested():
                    try:
                        if not os.read(fd, 1 << 16):
                            break
                    except BlockingIOError:
                        pass  # MAX_ITER_OBJECTS visited in one read (kernel/bpf/bpf_iter.c): on
            except BPFError as e:
                raise AttachError(f"running the iterator failed: {e.message}", hints=list(e.hints)) from None
            except OSError as e:
                raise AttachError(f"reading the iterator failed: {os.strerror(e.errno or 0)}") from None
            finally:
                sc.close_fd(fd)

    def _record(self, view: memoryview, out: List[Any]) -> None:
        self._seen += 1
        if len(view) < HDR_SIZE:
            return
        ts, tgid, tid, comm_b, idx, errs, cpu = HEADER.unpack_from(view, 0)
        if idx >= len(self.c.actions):
            return
        if self._exited or (self._cutoff and ts > self._cutoff):
            self.stats.after_stop += 1
            return
        act = self.c.actions[idx]
        payload = view[HDR_SIZE:HDR_SIZE + act.size].tobytes()
        k = act.kind
        if k == "printf":  # the hot path: no decoding here
            ev = self.stats.events  # Stats.count_event, inline
            ev[act.probe] = ev.get(act.probe, 0) + 1
            out.append(Printed("", act, None, payload, (ts, tgid, tid, comm_b, cpu)))
            return
        values = [decode(s, payload[o:o + s.size]) for o, s in act.args]
        comm = comm_b.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
        self.stats.count_event(act.probe)
        if k == "emit":
            fields = dict(zip(act.extra["names"], values))
            formats = {n: f for n, f in zip(act.extra["names"], act.extra["fmts"]) if f}
            out.append(Event(ts, cpu, tgid, tid, comm, act.probe, fields, formats=formats))
        elif k in ("print", "clear", "zero"):
            spec = self.c.maps.get(act.map)
            if spec is None:
                return
            if k == "print":
                out.append(MapPrint(spec, self.read_map(spec), act.extra.get("top", 0), act.extra.get("div", 1)))
            else:
                self.clear_map(spec, zero=k == "zero")
        elif k == "exit":
            # as bpftrace 0.17: what is read after exit()'s record is not shown (nor are
            # print/clear/zero done), until END runs
            self._exited = True
            out.append(ExitRequest())
        elif k == "watch":
            self.watches.arrived(int(act.extra.get("id", 0)), int(values[0]) & (2 ** 64 - 1), out)
        elif k == "unwatch":
            self.watches.unwatch(int(values[0]) & (2 ** 64 - 1))
        elif k == "delete_slice":
            spec = self.c.maps.get(act.map)
            if spec is not None:
                self.delete_matching(spec, str(act.extra.get("mask", "")), values)
        else:
            out.append(Printed("", act, values, payload, (ts, tgid, tid, comm_b, cpu)))

    def _lost_map(self) -> int:
        """The array of lost-record counters (4 u64, the programs add to them), mapped into
        this process where the kernel allows it (``BPF_F_MMAPABLE``, Linux 5.5): then
        :meth:`_check_lost` reads them from memory instead of making three ``bpf()`` lookups
        per poll (~150 us per poll, ~0.8 us per record at 20k records/s here; issue 18)."""
        try:
            fd = sc.map_create(sc.MapType.ARRAY, 4, 8, 4, flags=sc.BPF_F_MMAPABLE)
        except BPFError:
            return sc.map_create(sc.MapType.ARRAY, 4, 8, 4)
        try:
            self._lost_mm = mmap.mmap(fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ)
            self._lost_words = memoryview(self._lost_mm).cast("Q")  # aligned 8-byte loads
        except (OSError, ValueError):
            self._lost_mm = self._lost_words = None
        return fd

    def _release_lost_map(self) -> None:
        if self._lost_words is not None:
            self._lost_words.release()
            self._lost_words = None
        if self._lost_mm is not None:
            self._lost_mm.close()
            self._lost_mm = None

    def _check_lost(self, out: List[Any]) -> None:
        full = "perf_buffer_full" if self.c.options.get("output") == "perfbuf" else "ringbuf_full"
        words = self._lost_words
        for slot, reason in ((LOST_RINGBUF, full), (LOST_MAP_FULL, "map_full"),
                             (LOST_READ_FAULT, "read_fault")):
            if words is not None:
                n = words[slot]
            else:
                raw = sc.map_lookup_elem(self.lost_fd, struct.pack("<I", slot), 8)
                n = struct.unpack("<Q", raw)[0] if raw else 0
            if n > self._lost_seen[slot]:
                if reason == "read_fault":
                    # not a lost event: a string read as "" (page not present); reported at exit
                    self.read_faults = n
                else:
                    self.stats.count_lost(reason, n - self._lost_seen[slot])
                    out.append(Lost(n - self._lost_seen[slot], reason))
                self._lost_seen[slot] = n

    # -- maps
    def read_map(self, spec: MapSpec) -> List[Tuple[tuple, Any]]:
        return read_map(self.map_fds[spec.name], spec, self.ncpus)

    def clear_map(self, spec: MapSpec, zero: bool = False) -> None:
        fd = self.map_fds[spec.name]
        keys = []
        k = sc.map_get_next_key(fd, None, spec.key_size)
        while k is not None:
            keys.append(k)
            k = sc.map_get_next_key(fd, k, spec.key_size)
        vsize = spec.value_size * (self.ncpus if spec.percpu else 1)
        for k in keys:
            if zero:
                sc.map_update_elem(fd, k, bytes(vsize))
            else:
                sc.map_delete_elem(fd, k)

    def map_key(self, spec: MapSpec, key: tuple) -> bytes:
        """The bytes of ``key`` in ``spec``'s map (zero-padded as the programs build keys)."""
        from .layout import encode

        raw = encode(spec.key, tuple(key)) if spec.key.elems else b""
        return raw + bytes(spec.key_size - len(raw))

    def write_map(self, spec: MapSpec, key: tuple, value: Any) -> None:
        """Set one element from user space: an assigned value, or a per-CPU sum/count (the
        value on the first CPU, 0 on the others). ValueError for other aggregations."""
        from .layout import encode

        if spec.agg == "assign":
            one = encode(spec.value, value)
        elif spec.agg in ("sum", "count") and isinstance(value, int) and not spec.bucketed:
            one = (value & ((1 << 64) - 1)).to_bytes(8, "little")
        else:
            raise ValueError(f"the map holds {spec.agg} values")
        one += bytes(spec.value_size - len(one))
        data = one + bytes(spec.value_size * (self.ncpus - 1)) if spec.percpu else one
        sc.map_update_elem(self.map_fds[spec.name], self.map_key(spec, key), data)

    def delete_matching(self, spec: MapSpec, mask: str, given: List[Any]) -> None:
        """Delete the elements whose keys match: ``mask`` has ``k`` for a key given (in
        ``given``, in order) and ``*`` for any (SystemTap's ``delete a[k, *]``)."""
        fd = self.map_fds[spec.name]
        doomed = []
        k = sc.map_get_next_key(fd, None, spec.key_size)
        while k is not None:
            ukey = k[: spec.key_size - 8] if spec.bucketed else k
            key = decode(spec.key, ukey) if spec.key.elems else ()
            vals = iter(given)
            if len(key) == len(mask) and all(m == "*" or next(vals) == v for m, v in zip(mask, key)):
                doomed.append(k)
            k = sc.map_get_next_key(fd, k, spec.key_size)
        for k in doomed:
            sc.map_delete_elem(fd, k)

    def delete_key(self, spec: MapSpec, key: tuple) -> None:
        """Delete one element (absent: nothing to do)."""
        sc.map_delete_elem(self.map_fds[spec.name], self.map_key(spec, key))

    def stack(self, stack_id: int) -> List[int]:
        """The addresses of stack ``stack_id`` (innermost first); [] when missing."""
        if self.stack_fd < 0 or stack_id < 0:
            return []
        raw = sc.map_lookup_elem(self.stack_fd, struct.pack("<I", stack_id), 8 * STACK_DEPTH)
        if raw is None:
            return []
        addrs = struct.unpack(f"<{STACK_DEPTH}Q", raw)
        return [a for a in addrs if a]

    def run_end(self) -> List[Any]:
        """Run the END blocks once and return what they printed (records drained)."""
        if self._ended:
            return []
        self._ended = True
        if self._exited:
            # after exit() the probes stop here, before END: detached, as bpftrace 0.17 does
            # (they run while that takes), when that is quick enough; the flag stops the rest
            self._detach_now()
        self._raise_stop_flag()
        if self._exited:
            self.count_unread()  # what they recorded since exit(): not shown
        self._cutoff = 0  # END runs after the stop: what it prints is shown
        self._exited = False
        for fd in self.end_progs:
            try:
                sc.prog_test_run(fd, bytes(8))
            except BPFError:
                pass
        return self.drain()

    def _detach_now(self) -> None:
        """Close the attachments (perf events, links) now, last attached first, when at most
        :data:`SYNC_CLOSE_MAX` of them wait for an RCU grace period (see :meth:`close`)."""
        if self._slow_fds > SYNC_CLOSE_MAX or self._closed:
            return
        for fd in reversed(self.fds):
            if fd in self._attach_fds:
                sc.close_fd(fd)
        self.fds = [fd for fd in self.fds if fd not in self._attach_fds]
        self._attach_fds.clear()
        self._slow_fds = 0

    def drain(self) -> List[Any]:
        """Everything still in the buffers, at once (at exit)."""
        out: List[Any] = []
        while True:
            got = self.poll(0)
            out.extend(got)
            if not got or not self.rb or not self.rb.pending():
                return out

    def final_maps(self, empty: bool = False) -> List[MapPrint]:
        """Every non-empty map (``empty``: every map), as bpftrace prints them at exit."""
        out = []
        for spec in sorted(self.c.maps.values(), key=lambda m: m.name):  # bpftrace's order
            entries = self.read_map(spec)
            if entries or empty:
                out.append(MapPrint(spec, entries))
        return out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._raise_stop_flag()  # nothing more recorded or counted while detaching
        if self.rb is not None:
            self.rb.close()
        self._release_lost_map()
        # Closing a tracepoint/kprobe/uprobe perf event waits for an RCU grace period under
        # event_mutex (perf_trace_destroy -> perf_trace_event_unreg ->
        # tracepoint_synchronize_unregister), 50-80 ms each here (more under load),
        # serialized: closing from several threads does not help, nor does exiting (the
        # kernel closes them in exit_files before the parent hears of the exit). Past a few,
        # a detached process holding copies of the fds closes them, so that undertow ends
        # within a second of a stop (the programs have stopped recording: stop_producing).
        go = None
        if self._slow_fds > SYNC_CLOSE_MAX and self.fds:
            go = _close_in_background(self.fds, self._kprobe_defs, self.kernel)
        for fd in reversed(self.fds):
            sc.close_fd(fd)  # the last reference only where no detached process took them
        self.fds.clear()
        if go is not None:
            os.close(go)  # now the detached process may close its copies: each is the last
        self.watches.release()  # after the set-up uprobes are off
        for ev in reversed(self._kprobe_defs):
            self._remove_kprobe_def(ev)
        self._kprobe_defs.clear()
        if self._printk_was_off:
            self._printk_was_off = False
            try:
                self.kernel.tracefs().write(PRINTK_EVENT, "0")
            except (UndertowError, OSError):
                pass  # tracefs gone or not writable: nothing else to do
        try:
            atexit.unregister(self.close)
        except Exception:  # noqa: BLE001
            pass


#: Probe kinds whose programs on one event the kernel runs in the reverse order of their
#: attachment (perf events of software events and uprobes, kprobes, fentry trampolines):
#: _setup attaches them last to first (bpftrace 0.17 does the same: attach_reverse).
_RUN_LAST_ATTACHED_FIRST = frozenset(("software", "uprobe", "uretprobe", "usdt", "kprobe", "fentry"))

#: The event the kernel enables for bpf_trace_printk's lines (5.9+; absent before).
PRINTK_EVENT = "events/bpf_trace/bpf_trace_printk/enable"


def _read_event_enable(kernel: Any, relpath: str) -> str:
    """An event's ``enable`` file ("0", "1", ...), or "" when it cannot be read."""
    try:
        return kernel.tracefs().read(relpath).strip()
    except (UndertowError, OSError):
        return ""


#: Attachments whose close waits for an RCU grace period (perf events on tracepoints,
#: kprobes, uprobes) that ProgramSession.close detaches itself; more are handed to a
#: detached process (4 x ~80 ms fits in the second a stop may take, with the drain).
SYNC_CLOSE_MAX = 4


def _close_in_background(fds: List[int], kprobe_defs: List[str], kernel: Any) -> Optional[int]:
    """Fork a detached process (its own session, stdio on /dev/null, no other fds) that
    closes copies of ``fds`` in reverse order, then removes ``kprobe_defs``; the caller's
    own closes then drop a reference only, at once. It is named ``undertow-detach`` (comm)
    and ends when done, ~50-80 ms per slow fd.

    Returns the write end of a pipe the caller closes once it has closed its own copies
    (None when it could not fork: the caller closes everything itself, slowly). The detached
    process waits for that EOF before its first close: were it ahead of the caller on an fd,
    the caller's close of that fd would be the last reference and wait for the grace period
    itself, and, closing in the same order, for every later one (2 s for the 25 sched
    tracepoints when the caller was descheduled right after the fork)."""
    try:
        go_r, go_w = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(go_r)
        os.close(go_w)
        return None
    if pid:
        os.close(go_r)
        try:
            os.waitpid(pid, 0)  # the middle process exits at once: no zombie, no wait later
        except ChildProcessError:
            pass
        kprobe_defs.clear()  # the detached process removes them, after the perf events
        return go_w
    # the middle process: a new session, then the detached one (reparented to init)
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        os.close(go_w)
        _detached_close(fds, kprobe_defs, kernel, go_r)
    finally:
        os._exit(0)


def _detached_close(fds: List[int], kprobe_defs: List[str], kernel: Any,
                    go: int = -1) -> None:  # pragma: no cover - child
    import select
    import signal

    for s_ in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s_, signal.SIG_IGN)  # finish the clean-up whatever the caller's group gets
    try:
        with open("/proc/self/comm", "w") as f:
            f.write("undertow-detach")
    except OSError:
        pass
    keep = set(fds) | {go}
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)  # a pipe the caller reads must see EOF when the caller ends
    try:
        open_fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        open_fds = list(range(3, 1024))
    for fd in open_fds:
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    if go >= 0:
        try:  # EOF once the caller closed its copies (or ended); bounded all the same
            if select.select([go], [], [], 30.0)[0]:
                os.read(go, 1)
        except OSError:
            pass
        os.close(go)
    for fd in reversed(fds):
        try:
            os.close(fd)
        except OSError:
            pass
    for ev in reversed(kprobe_defs):
        try:
            _remove_kprobe_def_in(kernel.tracefs(), ev)
        except (UndertowError, OSError):
            pass



def _remove_kprobe_def_in(tfs: Any, ev: str) -> None:
    for _ in range(20):  # EBUSY while the last perf event is being released
        try:
            tfs.write("kprobe_events", f"-:{ev}")
            return
        except UndertowError as e:
            if getattr(e, "errno", None) != errno.EBUSY:
                return
            time.sleep(0.05)


def _perf_pages(total: int, ncpus: int) -> int:
    """Data pages per CPU for the perf buffer: the session's buffer size shared among the
    CPUs, at most 8 MiB each (the whole ring is mapped: it counts in RSS), a power of two."""
    want = min(total // max(1, ncpus), 8 << 20) // mmap.PAGESIZE
    pages = 1
    while pages * 2 <= want:
        pages *= 2
    return max(8, pages)


def read_map(fd: int, spec: MapSpec, ncpus: int) -> List[Tuple[tuple, Any]]:
    """``[(key tuple, value)]`` of a map, per-CPU values merged; hist/lhist as bucket lists.

    Values: an int for count/sum/min/max/avg (avg = total // count), a
    ``(count, average, total)`` tuple for stats, ``{bucket: count}`` for hist/lhist,
    the decoded value for ``@m[k] = v`` maps.
    """
    raw_entries: List[Tuple[bytes, bytes]] = []
    k = sc.map_get_next_key(fd, None, spec.key_size)
    per = spec.value_size
    vsize = per * (ncpus if spec.percpu else 1)
    while k is not None:
        v = sc.map_lookup_elem(fd, k, vsize)
        if v is not None:
            raw_entries.append((k, v))
        k = sc.map_get_next_key(fd, k, spec.key_size)
    out: Dict[tuple, Any] = {}
    for kb, vb in raw_entries:
        ukey = kb[: spec.key_size - 8] if spec.bucketed else kb
        key = decode(spec.key, ukey) if spec.key.elems else ()
        cpus = [vb[i * per:(i + 1) * per] for i in range(ncpus if spec.percpu else 1)]
        agg = spec.agg
        if agg in ("count", "sum"):
            val: Any = sum(int.from_bytes(c[:8], "little", signed=True) for c in cpus)
        elif agg in ("min", "max"):
            vals = [int.from_bytes(c[:8], "little", signed=True) for c in cpus if int.from_bytes(c[8:16], "little")]
            if not vals:
                continue
            val = min(vals) if agg == "min" else max(vals)
        elif agg in ("avg", "stats"):
            cnt = sum(int.from_bytes(c[:8], "little") for c in cpus)
            tot = sum(int.from_bytes(c[8:16], "little", signed=True) for c in cpus)
            avg = int(tot / cnt) if cnt else 0
            val = avg if agg == "avg" else (cnt, avg, tot)
        elif spec.bucketed:
            bucket = int.from_bytes(kb[spec.key_size - 8:], "little")
            cnt = sum(int.from_bytes(c[:8], "little") for c in cpus)
            hist = out.setdefault(key, {})
            hist[bucket] = hist.get(bucket, 0) + cnt
            continue
        else:
            val = decode(spec.value, cpus[0])
        out[key] = val
    if not out and spec.agg == "count" and spec.keyless:
        # bpftrace keeps a count() without keys in an array: cleared or deleted, it is 0
        out[()] = 0
    return list(out.items())


def _online_cpus() -> List[int]:
    try:
        with open("/sys/devices/system/cpu/online") as f:
            text = f.read().strip()
    except OSError:
        return list(range(os.cpu_count() or 1))
    cpus: List[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            cpus.extend(range(int(a), int(b) + 1))
        elif part:
            cpus.append(int(part))
    return cpus


def _locate(e: VerifierError, cp: CompiledProbe) -> Exception:
    """A verifier rejection as a diagnostic at the user's text when the failing instruction has an origin."""
    key = ""
    idx = None
    for line in reversed(e.log.splitlines()):
        m = re.match(r"^(\d+): \(", line)
        if m and idx is None:
            idx = int(m.group(1))
        if not key and line and not re.match(r"^\d+: ", line) and "processed" not in line and \
                not line.startswith(("R", "from", ";", "verification time", "stack depth", "mark_precise")):
            key = line.strip()
    origin = cp.program.origin_of(idx) if idx is not None else None
    span = getattr(origin, "span", None)
    probe = cp.probe
    if span is not None and probe.source:
        err = SourceError(f"the kernel's verifier rejected this: {key or e.message}", source=probe.source,
                          span=span, origin=probe.origin,
                          hints=[f"instruction {idx}; run with --debug for the verifier's log and the listing"])
        err.log = e.log  # type: ignore[attr-defined]
        err.listing = cp.program.listing()  # type: ignore[attr-defined]
        return err
    e.add_hint(f"in {cp.name}; run with --debug for the verifier's log")
    e.listing = cp.program.listing()  # type: ignore[attr-defined]
    return e
