"""What every incident-response tool shares: options, the event loop, filters, the summary.

The tools (``undertow exec``, ``exit``, ``modules``, ``dns`` ...) answer one question each with
the same options and the same behaviour around the events:

- :func:`add_common_options`: ``--json --pid --comm --cgroup --duration --count --summary --drain``,
  same names and meaning in every tool, and the fleet outputs ``--output URL --create --run-id``
  (:mod:`undertow.fleet`: the command line fans the JSON events out to the sinks);
- stopping: SIGINT, SIGTERM and SIGHUP (``undertow.stop``, installed by the command line) and
  ``--duration`` end every tool the same way (``undertow.backends.loop``): a tool run by a service
  manager or under ``timeout`` ends cleanly within a second and still prints its summary;
- :func:`run_loop`: drives a :class:`~undertow.api.Tracer` (ftrace or BPF backend): events to a
  handler, :class:`~undertow.events.Lost` notices printed in-band and counted, ``--count``;
- :class:`ProcessFilter`: ``--comm`` (a glob on the task's ``comm``, ``task_struct.comm``) and
  ``--cgroup`` (a substring of ``/proc/PID/cgroup``, read through
  :func:`undertow.tools.proc.proc_info`);
- :class:`Summary`: the ranked ``--summary`` table (key -> count, first/last seen, distinct
  values): text on stderr, one ``{"summary": [...]}`` JSON line on stdout with ``--json``.

The streams are parameters (defaulting to ``sys.stdout``/``sys.stderr`` at call time), so the
module is testable without a terminal; only the commands decide to print.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Hashable, Iterable, Iterator, List, NamedTuple, Optional, Sequence, TextIO, \
    Tuple

__all__ = [
    "add_common_options", "ProcessFilter", "LoopResult", "run_loop",
    "lost_line", "Column", "Summary", "cell", "ns_inode", "ns_note",
]

#: The shared options' help, as ``undertow exec`` has always shown it.
COMMON_HELP = {
    "json": "one JSON object per line",
    "pid": "only this process and its children (it must exist)",
    "comm": "only programs whose name matches this glob",
    "cgroup": "only processes whose cgroup path contains this text",
    "netns": "only events of this network namespace: self (undertow's own) or an inode number as the events' "
             "netns shows it (events of tools that report no netns are then not shown)",
    "duration": "stop after SECONDS (> 0)",
    "count": "stop after N {what} (>= 1)",
    "summary": "at exit, a ranked table of programs",
    "drain": "on a stop (Ctrl-C, SIGTERM, --duration, --count), show everything recorded before it, however "
             "long that takes (default: at most 0.4 s more; the rest is counted and reported)",
}


def add_common_options(parser: argparse.ArgumentParser, what: str = "events", *,
                       pid_help: Optional[str] = None, comm_help: Optional[str] = None,
                       summary_help: Optional[str] = None) -> None:
    """Add ``--json --pid --comm --cgroup --duration --count --summary --drain`` to ``parser``.

    ``what`` names the events in ``--count``'s help ("exits", "queries"); the ``*_help``
    arguments let a tool say precisely what its filter does (a BPF tool's ``--pid`` matches
    one thread group, the ftrace backend's follows children through ``event-fork``).
    """
    from .. import options  # one rule per kind of value, the same in every command

    parser.add_argument("--json", action="store_true", help=COMMON_HELP["json"])
    parser.add_argument("--pid", type=options.pid, help=pid_help or COMMON_HELP["pid"])
    parser.add_argument("--comm", help=comm_help or COMMON_HELP["comm"])
    parser.add_argument("--cgroup", help=COMMON_HELP["cgroup"])
    parser.add_argument("--netns", type=netns_arg, metavar="self|INODE", help=COMMON_HELP["netns"])
    parser.add_argument("--duration", type=options.duration, metavar="SECONDS", help=COMMON_HELP["duration"])
    parser.add_argument("--count", type=options.count, metavar="N", help=COMMON_HELP["count"].format(what=what))
    parser.add_argument("--summary", action="store_true", help=summary_help or COMMON_HELP["summary"])
    parser.add_argument("--drain", action="store_true", help=COMMON_HELP["drain"])
    from ..fleet.options import add_output_options

    add_output_options(parser)  # --output URL --create --run-id (issue 22, docs/fleet.md)


def netns_arg(text: str) -> int:
    """``--netns``: ``self`` (the inode of undertow's own network namespace, ``/proc/self/ns/net``)
    or an inode number (> 0)."""
    if text == "self":
        ino = ns_inode("net")
        if ino is None:
            raise argparse.ArgumentTypeError("cannot read /proc/self/ns/net")
        return ino
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"self or a namespace inode number (lsns -t net), not {text[:40]!r}")


# -- filters


class ProcessFilter:
    """``--comm GLOB`` and ``--cgroup TEXT``.

    ``comm`` is matched with :func:`fnmatch.fnmatchcase` against the 15-byte
    ``task_struct.comm`` the kernel recorded at the event (case-sensitive, as ``comm`` is);
    ``cgroup`` is a substring of the process's cgroup path (``/proc/PID/cgroup``, the unified
    hierarchy line), which needs the process to still exist: a process already gone does not
    match a ``--cgroup`` filter. ``netns`` (``--netns``) is a network namespace's inode, matched
    against the ``netns`` the event carries (read by the tool's program at the event): one
    machine's network namespaces swept as separate hosts each see only their own processes.
    """

    __slots__ = ("comm", "cgroup", "netns")

    def __init__(self, comm: Optional[str] = None, cgroup: Optional[str] = None, netns: Optional[int] = None) -> None:
        self.comm, self.cgroup, self.netns = comm, cgroup, netns

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ProcessFilter":
        return cls(getattr(args, "comm", None), getattr(args, "cgroup", None), getattr(args, "netns", None))

    def match_netns(self, netns: Optional[int]) -> bool:
        """``--netns``: the event's network namespace inode (``net->ns.inum``) is the one asked
        (an event without one does not match a ``--netns`` filter)."""
        return not self.netns or netns == self.netns

    @property
    def needs_proc(self) -> bool:
        """Whether :meth:`match_cgroup` needs the /proc details of the process."""
        return bool(self.cgroup)

    def match_comm(self, comm: Optional[str]) -> bool:
        return not self.comm or fnmatch.fnmatchcase(comm or "", self.comm)

    def match_cgroup(self, info: Any) -> bool:
        """``info``: a :class:`~undertow.tools.proc.ProcInfo` (or ``None`` when not read)."""
        if not self.cgroup:
            return True
        cg = getattr(info, "cgroup", None) if info is not None else None
        return cg is not None and self.cgroup in cg

    def accepts(self, comm: Optional[str], info: Any = None) -> bool:
        return self.match_comm(comm) and self.match_cgroup(info)


# -- the loop


@dataclass
class LoopResult:
    """How a :func:`run_loop` went: events shown, events lost (by reason), recorded before
    the stop but left unread (``not_drained``), why it stopped (``"end"``: duration or source
    exhausted, ``"count"``, ``"signal"``, ``"duration"``, ``"interrupt"``)."""

    shown: int = 0
    lost: int = 0
    lost_by_reason: Dict[str, int] = field(default_factory=dict)
    stopped_by: str = "end"
    not_drained: int = 0


def lost_line(count: int, reason: str) -> str:
    """The in-band text notice for lost events: ``# LOST N events (reason)``."""
    return f"# LOST {count} events ({reason})"


def run_loop(tracer: Any, handle: Callable[[Any], bool], *, count: Optional[int] = None,
             as_json: bool = False, lost_json: bool = True, out: Optional[TextIO] = None) -> LoopResult:
    """Run ``tracer`` (an :class:`undertow.api.Tracer`) until its duration ends, ``count``
    events were shown, or a stop is asked (SIGINT, SIGTERM, SIGHUP: ``undertow.stop``; a
    library caller's KeyboardInterrupt).

    ``handle(event)`` filters, prints one :class:`~undertow.events.Event` and returns whether
    it showed it (only shown events count toward ``count``). :class:`~undertow.events.Lost`
    notices are counted and printed in-band where the loss happened: ``# LOST N events
    (reason)`` in text mode, ``{"lost": N, "reason": ...}`` with ``as_json`` when
    ``lost_json``. ``out`` is flushed once a batch of records is handled (not per event).
    """
    from ..events import Lost

    out = out if out is not None else sys.stdout
    res = LoopResult()
    pending = getattr(tracer, "pending", None)
    try:
        with tracer:
            for rec in tracer.records():
                if isinstance(rec, Lost):
                    res.lost += rec.count
                    res.lost_by_reason[rec.reason] = res.lost_by_reason.get(rec.reason, 0) + rec.count
                    if not as_json:
                        out.write(lost_line(rec.count, rec.reason) + "\n")
                    elif lost_json:
                        out.write(json.dumps({"lost": rec.count, "reason": rec.reason}) + "\n")
                elif handle(rec):
                    res.shown += 1
                    if count and res.shown >= count:
                        res.stopped_by = "count"
                        break
                if pending is None or not pending():
                    out.flush()
        if res.stopped_by != "count":
            res.stopped_by = getattr(tracer, "stopped_by", None) or "end"
        # what the stop left unread, counted by the read loop after the last record
        stats = getattr(tracer, "stats", None)
        res.not_drained = getattr(stats, "not_drained", 0) if stats is not None else 0
    except KeyboardInterrupt:
        res.stopped_by = "interrupt"
    finally:
        with contextlib.suppress(Exception):  # a closed pipe must not hide why the loop ended
            out.flush()
    return res


# -- the summary


class Column(NamedTuple):
    """One key column of a :class:`Summary`: the JSON ``name``, the text ``header``, a format
    ``spec`` (``">7"``, ``"<16"``; ``""`` for an unpadded last column; the width pads, it never
    cuts: a longer value widens its line) and the text shown for ``None``."""

    name: str
    header: str
    spec: str = ""
    none: str = "-"


#: Text output aims at this many columns; a field longer than its column widens the line
#: instead of being cut (issue 18: a cut field hid "MAC CHANGED" and tunnel indicators).
WIDTH = 100


def cell(text: Any, width: int, align: str = "<") -> str:
    """``text`` padded to ``width`` columns (``align``: ``<``, ``>`` or ``^``), never cut.

    The one rule for every tool's text columns: a value longer than its column is shown whole
    and pushes the rest of the line right. ``text`` must already be escaped
    (:func:`undertow.output.text.escape`) when it comes from another user."""
    return format(str(text), f"{align}{width}")


def _cell(value: Any, col: Column) -> str:
    from ..output.text import escape

    text = col.none if value is None or value == "" else escape(value)
    return format(text, col.spec)  # the spec's width pads, never cuts


def ns_inode(kind: str, pid: str = "self", proc: str = "/proc") -> Optional[int]:
    """The inode number of a namespace (``kind``: ``net``, ``pid``...) of process ``pid``
    (``/proc/PID/ns/KIND`` reads ``net:[4026531840]``; the number is what ``lsns`` and
    ``ns.inum`` in the kernel's ``struct ns_common`` show), or ``None`` when unreadable."""
    try:
        link = os.readlink(os.path.join(proc, str(pid), "ns", kind))
    except OSError:
        return None
    m = re.fullmatch(r"[a-z_]+:\[(\d+)\]", link)
    return int(m.group(1)) if m else None


def ns_note(event: Dict[str, Any], host: Dict[str, Optional[int]]) -> str:
    """The text-mode namespace note of an event: `` netns:N`` / `` pidns:N`` for each of its
    ``netns``/``pidns`` values that differs from ``host`` (the tool's own namespaces, by
    kind: ``{"netns": ns_inode("net"), "pidns": ns_inode("pid")}``); ``""`` when all are
    the host's. JSON always carries the numbers; text names only the unusual ones."""
    out = ""
    for key in ("netns", "pidns"):
        v = event.get(key)
        if v and v != host.get(key):
            out += f" {key}:{v}"
    return out


def _sorted(values: Iterable[Any]) -> List[Any]:
    vals = list(values)
    try:
        return sorted(vals)
    except TypeError:  # mixed types: order by their text
        return sorted(vals, key=str)


class _Row:
    __slots__ = ("count", "first", "last", "values")

    def __init__(self, ts: int) -> None:
        self.count, self.first, self.last = 0, ts, ts
        self.values: set = set()


class Summary:
    """The ``--summary`` table: who did it most.

    Rows are keyed by a tuple of ``columns`` values (a program name; a pid and comm), each with
    a count, the first and last timestamp (ns, CLOCK_MONOTONIC as the events carry) and the set
    of distinct ``values`` seen (uids, destinations, modules). Ranked by count, ties in the
    order first seen.

    Text (stderr): ``COUNT FIRST(s) LAST(s)`` (seconds since the earliest row), the key
    columns, then (with ``values_header``) up to 3 distinct values; ``limit`` rows.
    JSON (one line on stdout): ``{"summary": [{<key columns>, "count", "first_ts", "last_ts",
    ["distinct_<values>"], "<values>": [...]}]}``; with ``stringify`` the values are compared
    and listed as text, ``values_limit`` caps the list (the distinct count stays exact).
    """

    def __init__(self, columns: Sequence[Column], values: Optional[str] = None, *,
                 values_header: Optional[str] = None, gap: str = " ", distinct_count: bool = True,
                 values_limit: Optional[int] = 20, stringify: bool = True, limit: int = 40) -> None:
        self.columns = list(columns)
        self.values, self.values_header = values, values_header
        self.gap, self.distinct_count, self.values_limit = gap, distinct_count, values_limit
        self.stringify, self.limit = stringify, limit
        self.rows: Dict[Tuple[Hashable, ...], _Row] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, key: Tuple[Hashable, ...], ts: int, value: Any = None) -> None:
        """Count one event of ``key`` at ``ts``; ``value`` (``None``: nothing) joins the
        row's distinct values."""
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = _Row(ts)
        row.count += 1
        if ts < row.first:
            row.first = ts
        if ts > row.last:
            row.last = ts
        if value is not None:
            row.values.add(str(value) if self.stringify else value)

    def add_events(self, events: Iterable[Dict[str, Any]]) -> "Summary":
        """Count JSON-ready event dicts (keys from the columns' names, ``ts``, ``values``)."""
        for d in events:
            self.add(tuple(d.get(c.name) for c in self.columns), d["ts"],
                     d.get(self.values) if self.values else None)
        return self

    def ranked(self) -> List[Tuple[Tuple[Hashable, ...], _Row]]:
        return sorted(self.rows.items(), key=lambda kv: -kv[1].count)

    def to_json(self) -> Dict[str, Any]:
        out = []
        for key, row in self.ranked():
            d: Dict[str, Any] = {c.name: k for c, k in zip(self.columns, key)}
            d.update(count=row.count, first_ts=row.first, last_ts=row.last)
            if self.values:
                vals = _sorted(row.values)
                if self.distinct_count:
                    d[f"distinct_{self.values}"] = len(vals)
                d[self.values] = vals if self.values_limit is None else vals[:self.values_limit]
            out.append(d)
        return {"summary": out}

    def text_lines(self) -> List[str]:
        """The table, header first (no trailing newlines)."""
        from ..output.text import escape

        g = self.gap
        cols = [format(c.header, c.spec) for c in self.columns]
        if self.values_header:
            cols.append(self.values_header)
        lines = [f"{'COUNT':>7}{g}{'FIRST(s)':>9} {'LAST(s)':>9}{g}" + " ".join(cols)]
        t0 = min((r.first for r in self.rows.values()), default=0)
        for key, row in self.ranked()[:self.limit]:
            line = (f"{row.count:>7}{g}{(row.first - t0) / 1e9:9.3f} {(row.last - t0) / 1e9:9.3f}{g}"
                    + " ".join(_cell(k, c) for c, k in zip(self.columns, key)))
            if self.values_header:
                # up to 3 values, each whole (JSON lists them all); "+N" says how many more
                vals = _sorted(row.values)
                more = f" +{len(vals) - 3}" if len(vals) > 3 else ""
                line += " " + escape(", ".join(str(v) for v in vals[:3])) + more
            lines.append(line)
        return lines

    def write(self, as_json: bool, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> None:
        """JSON line to ``out`` (stdout) with ``as_json``, else the table to ``err`` (stderr)
        after a blank line."""
        if as_json:
            from ..output.jsonl import clean

            (out if out is not None else sys.stdout).write(json.dumps(clean(self.to_json())) + "\n")
            return
        err = err if err is not None else sys.stderr
        err.write("\n" + "\n".join(self.text_lines()) + "\n")
