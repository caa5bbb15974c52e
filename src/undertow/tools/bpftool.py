"""The loop every BPF-based incident-response tool shares (dns, icmp).

A tool is a program in the bpftrace language (compiled by undertow's BPF backend) whose
``printf`` records carry the event's values, and a parser turning one record into a
JSON-ready dict. :func:`run_tool` compiles and attaches it, applies the shared options
(``--pid --comm --cgroup --duration --count``), adds the process details captured at
the event (``/proc``, before a short-lived process is gone), prints text or JSON lines,
reports losses, and returns the events for ``--summary``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import signal
import sys
import time
from typing import Any, Callable, Dict, List, Optional


def add_options(p: argparse.ArgumentParser, what: str = "events") -> None:
    """The options every tool takes (same names, same meaning)."""
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--pid", type=int, help="only this process")
    p.add_argument("--comm", help="only processes whose name matches this glob")
    p.add_argument("--cgroup", help="only processes whose cgroup path contains this text")
    p.add_argument("--duration", type=float, help="stop after SECONDS")
    p.add_argument("--count", type=int, help=f"stop after N {what}")
    p.add_argument("--summary", action="store_true", help="at exit, a ranked table: who did it most")


def run_tool(args: argparse.Namespace, name: str, program: str, parse: Callable[[Any], Optional[Dict[str, Any]]],
             header: str, line: Callable[[Dict[str, Any]], str], settings: Optional[Dict[str, Any]] = None,
             hooks: str = "", on_start: Optional[Callable[[Any], None]] = None,
             ringbuf_mb: int = 0,
             on_stop: Optional[Callable[[Any], List[Dict[str, Any]]]] = None) -> List[Dict[str, Any]]:
    """Run the tool until Ctrl-C/--duration/--count; returns the events it showed."""
    from ..backends.bpf.compiler import compile_program
    from ..backends.bpf.runtime import Printed, ProgramSession, default_buffer_mb
    from ..events import Lost
    from ..kernel import Kernel
    from ..kernel.arch import current_arch
    from ..lang.bt import parse_program
    from ..lang.resolve import resolve
    from ..output.jsonl import clean
    from .proc import proc_info

    kernel = Kernel()
    prog = parse_program(program, origin=f"<undertow {name}>")
    prog.settings.update(settings or {})
    resolve(prog, kernel)
    compiled = compile_program(prog, arch=current_arch(), self_pid=os.getpid(), pid=args.pid)
    if args.verbose:
        print(f"undertow {name}: hooks: {hooks}", file=sys.stderr)
    stopping: List[int] = []
    old = {s: signal.signal(s, lambda n, f: stopping.append(n))
           for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    out = sys.stdout
    shown: List[Dict[str, Any]] = []
    infos: Dict[int, Any] = {}
    session = ProgramSession.start(compiled, kernel, ringbuf_size=(ringbuf_mb or default_buffer_mb()) << 20)
    try:
        if on_start is not None:
            on_start(session)  # e.g. seed a map with state that existed before the tool
        if not args.json:
            out.write(header + "\n")
            out.flush()
        deadline = time.monotonic() + args.duration if args.duration else None
        draining = False
        while True:
            if not draining and (stopping or (deadline is not None and time.monotonic() >= deadline)):
                # what the kernel already recorded is shown before stopping (never dropped silently)
                draining = True
            if draining and (not session.rb.pending() or (args.count and len(shown) >= args.count)):
                break
            for rec in session.poll(0 if draining else 0.05):
                if isinstance(rec, Lost):
                    if args.json:
                        out.write(json.dumps({"lost": rec.count, "reason": rec.reason}) + "\n")
                    else:
                        out.write(f"# LOST {rec.count} events ({rec.reason})\n")
                    continue
                if not isinstance(rec, Printed):
                    continue
                d = parse(rec)
                if d is None:
                    continue
                if args.comm and not fnmatch.fnmatchcase(d.get("comm") or "", args.comm):
                    continue
                pid = d.get("pid")
                info = None
                if pid:
                    # /proc costs ~100 us per read: a process sending 20k queries/s is read
                    # once a second, not 20k times
                    now = time.monotonic()
                    hit = infos.get(pid)
                    if hit is None or now - hit[0] > 1.0:
                        pi = proc_info(pid)
                        hit = infos[pid] = (now, pi, clean(pi.to_dict()))  # cleaned once, merged often
                        if len(infos) > 4096:
                            infos.clear()
                    info = hit[1]
                if args.cgroup and (info is None or info.cgroup is None or args.cgroup not in info.cgroup):
                    continue
                shown.append(d)
                if args.json:
                    ev = clean(d)
                    if info is not None:
                        # what the kernel said at the event wins over /proc read a little later
                        for k, v in hit[2].items():
                            if ev.get(k) is None:
                                ev[k] = v
                    out.write(json.dumps(ev, ensure_ascii=False) + "\n")
                else:
                    out.write(line(d)[:100] + "\n")
                if args.count and len(shown) >= args.count:
                    stopping.append(0)
                    draining = True
                    break
            out.flush()
        if on_stop is not None:
            # what the kernel still holds when the tool stops (e.g. connects still in progress)
            for d in on_stop(session):
                shown.append(d)
                out.write(json.dumps(clean(d), ensure_ascii=False) + "\n" if args.json else line(d)[:100] + "\n")
            out.flush()
    finally:
        session.close()
        for s_, h in old.items():
            signal.signal(s_, h)
    if session.stats.total_lost:
        print(f"undertow {name}: lost {session.stats.total_lost} events ({session.stats.lost})", file=sys.stderr)
    return shown


def print_summary(events: List[Dict[str, Any]], as_json: bool, what: str, detail: str) -> None:
    """Who did it most: count, first and last time, distinct ``detail`` values, per process."""
    from ..output.text import escape

    rows: Dict[Any, Dict[str, Any]] = {}
    for d in events:
        k = (d.get("pid"), d.get("comm"))
        r = rows.setdefault(k, {"count": 0, "first": d["ts"], "last": d["ts"], "values": set()})
        r["count"] += 1
        r["last"] = d["ts"]
        if d.get(detail) is not None:
            r["values"].add(str(d[detail]))
    ranked = sorted(rows.items(), key=lambda kv: -kv[1]["count"])
    if as_json:
        sys.stdout.write(json.dumps({"summary": [
            {"pid": k[0], "comm": k[1], "count": v["count"], "first_ts": v["first"], "last_ts": v["last"],
             f"distinct_{detail}": len(v["values"]), detail: sorted(v["values"])[:20]}
            for k, v in ranked]}) + "\n")
        return
    t0 = min((v["first"] for v in rows.values()), default=0)
    sys.stderr.write(f"\n{'COUNT':>7} {'FIRST(s)':>9} {'LAST(s)':>9} {'PID':>7} {'COMM':<16} {what}\n")
    for (pid, comm), v in ranked[:40]:
        vals = ", ".join(sorted(v["values"])[:3])
        sys.stderr.write(f"{v['count']:>7} {(v['first'] - t0) / 1e9:9.3f} {(v['last'] - t0) / 1e9:9.3f} "
                         f"{pid if pid is not None else '-':>7} {escape(comm or '(kernel)')[:16]:<16} "
                         f"{escape(vals)[:50]}\n")
