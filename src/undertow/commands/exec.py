"""``undertow exec``: new processes, with argv, parent chain, uid, cwd and cgroup."""

from __future__ import annotations

import argparse
import fnmatch
import json
import signal
import sys
import time
from typing import Any, Dict, List, Optional


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "exec", parents=[common],
        help="new processes (execve) with argv, parent chain, uid, cwd",
        description="Every successful execve: who ran what, from where. Hook: the sched:sched_process_exec "
                    "tracepoint (stable, on every kernel); process details are read from /proc as the "
                    "event is read (a process that exits within ~100 ms is reported with what the "
                    "kernel recorded: pid and filename).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fields (--json): ts pid ppid uid comm filename argv cwd exe cgroup container parents gone\n"
               "examples:\n  undertow exec\n  undertow exec --comm 'python*' --json\n"
               "  undertow exec --duration 60 --summary",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--pid", type=int, help="only this process and its children")
    p.add_argument("--comm", help="only programs whose name matches this glob")
    p.add_argument("--cgroup", help="only processes whose cgroup path contains this text")
    p.add_argument("--duration", type=float, help="stop after SECONDS")
    p.add_argument("--count", type=int, help="stop after N events")
    p.add_argument("--summary", action="store_true", help="at exit, a ranked table of programs")
    p.set_defaults(func=run)
    return p


class _Stop(Exception):
    pass


def _stop(signum: int, frame: Any) -> None:
    raise _Stop()


def run(args: argparse.Namespace) -> int:
    from ..api import trace
    from ..events import Event
    from ..output.text import escape
    from ..tools.proc import proc_info

    tracer = trace("e sched/sched_process_exec", pid=args.pid, duration=args.duration)
    if args.verbose:
        print(f"undertow exec: hook sched:sched_process_exec via {tracer.backend.name}", file=sys.stderr)
    seen = 0
    summary: Dict[str, Dict[str, Any]] = {}
    out = sys.stdout
    if not args.json:
        out.write(f"{'TIME':<8} {'PID':>7} {'PPID':>7} {'UID':>5} {'COMM':<16} ARGV\n")
    old = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with tracer:
            for rec in tracer.records():
                if not isinstance(rec, Event):
                    if not args.json:
                        out.write(f"# LOST {rec.count} events ({rec.reason})\n")
                    continue
                pid = int(rec.fields.get("pid", rec.pid))
                info = proc_info(pid)
                comm = rec.comm
                filename = rec.fields.get("filename", "")
                if args.comm and not fnmatch.fnmatchcase(comm, args.comm):
                    continue
                if args.cgroup and (info.cgroup is None or args.cgroup not in info.cgroup):
                    continue
                seen += 1
                s = summary.setdefault(filename, {"count": 0, "first": rec.ts, "last": rec.ts, "users": set()})
                s["count"] += 1
                s["last"] = rec.ts
                if info.uid is not None:
                    s["users"].add(info.uid)
                if args.json:
                    d = {"ts": rec.ts, "comm": comm, "filename": filename}
                    d.update(info.to_dict())
                    from ..output.jsonl import clean

                    out.write(json.dumps(clean(d), ensure_ascii=False) + "\n")
                else:
                    argv = " ".join(info.argv) if info.argv else f"{filename} (exited before it was read)"
                    line = (f"{time.strftime('%H:%M:%S')} {pid:>7} {info.ppid if info.ppid is not None else '?':>7} "
                            f"{info.uid if info.uid is not None else '?':>5} {escape(comm)[:16]:<16} {escape(argv)}")
                    out.write(line[:100] + "\n")
                out.flush()
                if args.count and seen >= args.count:
                    break
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        for s_, h in old.items():
            signal.signal(s_, h)
    if args.summary:
        _print_summary(summary, args.json)
    return 0


def _print_summary(summary: Dict[str, Dict[str, Any]], as_json: bool) -> None:
    from ..output.text import escape

    rows = sorted(summary.items(), key=lambda kv: -kv[1]["count"])
    if as_json:
        sys.stdout.write(json.dumps({"summary": [
            {"filename": k, "count": v["count"], "first_ts": v["first"], "last_ts": v["last"],
             "uids": sorted(v["users"])} for k, v in rows]}) + "\n")
        return
    sys.stderr.write(f"\n{'COUNT':>7}  {'FIRST(s)':>9} {'LAST(s)':>9}  PROGRAM\n")
    t0 = min((v["first"] for _, v in rows), default=0)
    for k, v in rows[:40]:
        sys.stderr.write(f"{v['count']:>7}  {(v['first'] - t0) / 1e9:9.3f} {(v['last'] - t0) / 1e9:9.3f}  {escape(k)}\n")
