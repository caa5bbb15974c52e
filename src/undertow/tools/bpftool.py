"""The loop every BPF-based incident-response tool shares (dns, icmp, arp, filewatch, ...).

A tool is a program in the bpftrace language (compiled by undertow's BPF backend) whose
``printf`` records carry the event's values, and a parser turning one record into a
JSON-ready dict. :func:`run_tool` compiles and attaches it, applies the shared options
(``--pid --comm --cgroup --duration --count``), adds the process details captured at
the event (``/proc``, before a short-lived process is gone), prints text or JSON lines,
reports losses, and returns the events for ``--summary``. The options, the ``--comm``/
``--cgroup`` filter, the loss notices and the summary table are :mod:`undertow.tools.common`'s,
shared with the ftrace-based ``undertow exec``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, TextIO


def add_options(p: argparse.ArgumentParser, what: str = "events") -> None:
    """The options every tool takes (same names, same meaning)."""
    from .common import add_common_options

    # the programs filter one thread group in the kernel (no children followed)
    add_common_options(p, what, pid_help="only this process (it must exist)",
                       comm_help="only processes whose name matches this glob",
                       summary_help="at exit, a ranked table: who did it most")


def run_tool(args: argparse.Namespace, name: str, program: str, parse: Callable[[Any], Optional[Dict[str, Any]]],
             header: str, line: Callable[[Dict[str, Any]], str], settings: Optional[Dict[str, Any]] = None,
             hooks: str = "", on_start: Optional[Callable[[Any], None]] = None,
             ringbuf_mb: int = 0,
             on_stop: Optional[Callable[[Any], List[Dict[str, Any]]]] = None) -> List[Dict[str, Any]]:
    """Run the tool until Ctrl-C/--duration/--count; returns the events it showed (with
    ``--summary``; otherwise none are kept)."""
    from ..bpfrun import BpfRun
    from ..events import Lost
    from ..backends.bpf.runtime import Printed
    from ..output.jsonl import dumps, encoded, merged_line
    from .common import ProcessFilter, lost_line
    from .proc import proc_info

    bpf = BpfRun(program, origin=f"<undertow {name}>", settings=settings, pid=args.pid)
    bpf.compile()
    if args.verbose:
        print(f"undertow {name}: hooks: {hooks}", file=sys.stderr)
    out = sys.stdout
    shown: List[Dict[str, Any]] = []
    # only --summary reads the events back: holding every one costs memory and, through the
    # garbage collector's full passes, pauses that grow with the run (230 ms at 200k events)
    keep = bool(getattr(args, "summary", False))
    n_shown = 0
    infos: Dict[int, Any] = {}
    pfilter = ProcessFilter.from_args(args)
    lines: List[str] = []  # a batch's lines, written at once (~1 us less per event than a write each)
    thresholds = None
    try:
        session = bpf.start(ringbuf_mb)
        if on_start is not None:
            on_start(session)  # e.g. seed a map with state that existed before the tool
        if not args.json:
            out.write(header + "\n")
            out.flush()
        # Ctrl-C/SIGTERM/SIGHUP (undertow.stop), --duration and --count end the loop the same
        # way: nothing recorded after the stop is shown, what was recorded before it is shown
        # for at most 0.4 s more (--drain: all) and the rest is counted (backends/loop.py)
        # the per-event path, with its names bound once (issue 18: ~1.5 us less per event)
        as_json, count = args.json, args.count
        match_comm = pfilter.match_comm if pfilter.comm else None
        match_cgroup = pfilter.match_cgroup if pfilter.cgroup else None
        match_netns = pfilter.match_netns if pfilter.netns else None
        append = lines.append
        # the cyclic collector's young pass runs about once a batch (a batch's records are
        # alive until it is written) and walks the batch: ~0.8 us per event at 20k/s. The
        # tool's records and events hold no cycles (reference counting frees them): passes
        # every 50,000 allocations instead of 700 cost ~0.05 us (issue 18); reset at the end
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], 50000), *thresholds[1:])
        for batch in bpf.batches(duration=args.duration, drain=getattr(args, "drain", False)):
            # /proc costs ~100 us per read: a process sending 20k queries/s is read once a
            # second (the batch's clock: a batch is handled within a turn, backends/loop.py)
            now = time.monotonic()
            for rec in batch:
                if rec.__class__ is not Printed:
                    if isinstance(rec, Lost):
                        append(json.dumps({"lost": rec.count, "reason": rec.reason}) if as_json
                               else lost_line(rec.count, rec.reason))
                    continue
                d = parse(rec)
                if d is None:
                    continue
                if match_comm is not None and not match_comm(d.get("comm")):
                    continue
                if match_netns is not None and not match_netns(d.get("netns")):
                    continue
                pid = d.get("pid")
                info = None
                if pid:
                    hit = infos.get(pid)
                    if hit is None or now - hit[0] > 1.0:
                        pi = proc_info(pid)
                        enc = encoded(pi.to_dict())  # encoded once, merged often
                        hit = infos[pid] = (now, pi, enc, {})  # {}: merged_line's memo
                        if len(infos) > 4096:
                            infos.clear()
                    info = hit[1]
                if match_cgroup is not None and not match_cgroup(info):
                    continue
                n_shown += 1
                if keep:
                    shown.append(d)
                if as_json:
                    # what the kernel said at the event wins over /proc read a little later
                    append(merged_line(d, hit[2], hit[3]) if info is not None else dumps(d))
                else:
                    append(line(d))
                if count and n_shown >= count:
                    bpf.finish("count")
                    break
            _write_lines(out, lines)
            out.flush()
        if on_stop is not None:
            # what the kernel still holds when the tool stops (e.g. connects still in progress)
            for d in on_stop(session):
                if keep:
                    shown.append(d)
                out.write(dumps(d) + "\n" if args.json else line(d) + "\n")
            out.flush()
    except KeyboardInterrupt:
        pass  # a second Ctrl-C while --drain showed a long backlog
    finally:
        if thresholds is not None:
            gc.set_threshold(*thresholds)
        with contextlib.suppress(Exception):  # a closed pipe must not hide why the loop ended
            _write_lines(out, lines)  # what a batch cut short had made
        bpf.close()
    for line in bpf.stats.loss_report(f"undertow {name}") if bpf.stats is not None else ():
        print(line, file=sys.stderr)
    return shown


def _write_lines(out: TextIO, lines: List[str]) -> None:
    """Write ``lines`` (without their newlines) in one call, then empty the list."""
    if lines:
        lines.append("")
        text = "\n".join(lines)
        lines.clear()
        out.write(text)


def print_summary(events: List[Dict[str, Any]], as_json: bool, what: str, detail: str) -> None:
    """Who did it most: count, first and last time, distinct ``detail`` values, per process
    (text on stderr under the header ``what``, or one ``{"summary": [...]}`` JSON line)."""
    from .common import Column, Summary

    Summary([Column("pid", "PID", ">7"), Column("comm", "COMM", "<16", "(kernel)")], detail,
            values_header=what).add_events(events).write(as_json)
