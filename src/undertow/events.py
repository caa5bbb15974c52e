"""The Event record every backend yields and every output renders.

Backends decode kernel records (ftrace ring-buffer entries, BPF ring-buffer
samples) into :class:`Event`; loss is reported in-band as :class:`Lost` so a
consumer iterating a session sees *when* data went missing, and in the
session's :class:`Stats` at the end.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple, Union

    # A stack frame: (address, symbol or None, offset within symbol, module or None).
    Frame = Tuple[int, Optional[str], int, Optional[str]]


class Event:
    """One traced occurrence.

    ``ts``: kernel monotonic time in nanoseconds (CLOCK_MONOTONIC for ftrace
    with trace_clock=mono, bpf_ktime_get_ns for BPF). ``pid`` is the thread
    group id (user-space "pid"), ``tid`` the thread id (kernel "pid").
    ``probe`` names the probe (event name, bpftrace probe spec). ``fields``
    holds the decoded values in probe order: ints, str, bytes (raw payloads
    kept raw), lists. ``errors`` maps a field name to why its value could not
    be read (``"EFAULT"`` at syscall entry), so a failed read is reported,
    never silently zero. ``formats`` (field -> display format) may be shared
    between events of one probe: treat it as read-only.

    A plain ``__slots__`` class: readers build up to ~1M of these per second.
    """

    __slots__ = ("ts", "cpu", "pid", "tid", "comm", "probe", "fields", "stack", "ustack", "errors", "formats")

    def __init__(self, ts: int, cpu: int, pid: int, tid: int, comm: str, probe: str,
                 fields: Optional[Dict[str, Any]] = None, stack: Optional[List[Frame]] = None,
                 ustack: Optional[List[Frame]] = None, errors: Optional[Dict[str, str]] = None,
                 formats: Optional[Dict[str, str]] = None) -> None:
        self.ts, self.cpu, self.pid, self.tid, self.comm, self.probe = ts, cpu, pid, tid, comm, probe
        self.fields = fields if fields is not None else {}
        self.stack, self.ustack = stack, ustack
        self.errors = errors if errors is not None else {}
        self.formats = formats if formats is not None else {}

    def __repr__(self) -> str:
        return (f"Event(ts={self.ts}, cpu={self.cpu}, pid={self.pid}, tid={self.tid}, comm={self.comm!r}, "
                f"probe={self.probe!r}, fields={self.fields!r})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-ready dict (the ``--json`` shape: ts cpu pid tid comm probe + fields)."""
        d: Dict[str, Any] = {
            "ts": self.ts, "cpu": self.cpu, "pid": self.pid, "tid": self.tid,
            "comm": self.comm, "probe": self.probe,
        }
        d["fields"] = dict(self.fields)
        if self.errors:
            d["errors"] = dict(self.errors)
        if self.stack is not None:
            d["stack"] = [_frame_dict(f) for f in self.stack]
        if self.ustack is not None:
            d["ustack"] = [_frame_dict(f) for f in self.ustack]
        return d


def _frame_dict(f: Frame) -> Dict[str, Any]:
    addr, sym, off, mod = f
    out: Dict[str, Any] = {"addr": f"{addr:#x}"}
    if sym:
        out["sym"] = sym
        out["off"] = off
    if mod:
        out["module"] = mod
    return out


class Lost:
    """``count`` events lost on ``cpu`` (``None``: unknown CPU) because ``reason``.

    Reasons: ``"overrun"`` (ftrace ring buffer overwrote unread pages),
    ``"ringbuf_full"`` (BPF ring buffer reserve failed), ``"read_fault"``
    (a probe_read returned an error), ``"decode"`` (a record could not be
    decoded; its bytes are in ``raw``).
    """

    __slots__ = ("count", "reason", "cpu", "probe", "raw")

    def __init__(self, count: int, reason: str, cpu: Optional[int] = None, probe: Optional[str] = None,
                 raw: Optional[bytes] = None) -> None:
        self.count, self.reason, self.cpu, self.probe, self.raw = count, reason, cpu, probe, raw

    def __repr__(self) -> str:  # what an API user printing the records sees
        return (f"Lost(count={self.count!r}, reason={self.reason!r}, cpu={self.cpu!r}, probe={self.probe!r}, "
                f"raw={self.raw!r})")


#: What a session yields (annotations of the backends and the API; at run time, the tuple
#: of its classes, for isinstance).
if TYPE_CHECKING:
    Record = Union[Event, Lost]
else:
    Record = (Event, Lost)


class Stats:
    """Per-session totals shown in the exit summary.

    ``events``: records read, per probe. ``lost``: records the kernel made that never
    reached undertow, per reason (``overrun``, ``ringbuf_full``, ``decode``...).
    ``not_drained``: records made *before* the stop that were still in the buffers when
    undertow stopped reading (``--drain`` shows them), counted without being decoded. So
    read + lost + not drained = made before the stop. ``after_stop``: records made after the
    stop was asked for (a signal, ``--duration``, ``--count``), dropped on purpose.
    """

    __slots__ = ("events", "lost", "not_drained", "after_stop")

    def __init__(self, events: Optional[Dict[str, int]] = None, lost: Optional[Dict[str, int]] = None,
                 after_stop: int = 0, not_drained: int = 0) -> None:
        self.events = {} if events is None else events
        self.lost = {} if lost is None else lost
        self.not_drained = not_drained
        self.after_stop = after_stop

    def count_event(self, probe: str, n: int = 1) -> None:
        self.events[probe] = self.events.get(probe, 0) + n

    def count_lost(self, reason: str, n: int) -> None:
        self.lost[reason] = self.lost.get(reason, 0) + n

    @property
    def total_events(self) -> int:
        return sum(self.events.values())

    @property
    def total_lost(self) -> int:
        return sum(self.lost.values())

    def loss_report(self, who: str) -> List[str]:
        """Lines for standard error at exit: the kernel's losses by reason, then what was
        recorded before the stop and not shown (``not_drained``)."""
        lines = []
        if self.lost:
            lines.append(f"{who}: lost {self.total_lost} events ({dict(self.lost)})")
        if self.not_drained:
            lines.append(f"{who}: {self.not_drained} events recorded before the stop were not shown (still "
                         "unread when it stopped; --drain shows them)")
        return lines
