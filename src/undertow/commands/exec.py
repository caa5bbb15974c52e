"""``undertow exec``: new processes, with argv, parent chain, uid, cwd and cgroup."""

from __future__ import annotations

import argparse
import json
import sys
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..tools.common import add_common_options

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
    add_common_options(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..api import trace
    from ..output.jsonl import clean
    from ..output.text import escape
    from ..tools.common import Column, ProcessFilter, Summary, run_loop
    from ..tools.proc import proc_info

    tracer = trace("e sched/sched_process_exec", pid=args.pid, duration=args.duration, drain=args.drain)
    if args.verbose:
        print(f"undertow exec: hook sched:sched_process_exec via {tracer.backend.name}", file=sys.stderr)
    out = sys.stdout
    wanted = ProcessFilter.from_args(args)
    # programs ranked by count; the uids that ran them
    summary = Summary([Column("filename", "PROGRAM")], "uids", gap="  ", distinct_count=False,
                      values_limit=None, stringify=False)
    if not args.json:
        out.write(f"{'TIME':<8} {'PID':>7} {'PPID':>7} {'UID':>5} {'COMM':<16} ARGV\n")

    def handle(rec: Any) -> bool:
        comm = rec.comm
        if not wanted.match_comm(comm):
            return False
        pid = int(rec.fields.get("pid", rec.pid))
        info = proc_info(pid)
        if not wanted.match_cgroup(info):
            return False
        filename = rec.fields.get("filename", "")
        summary.add((filename,), rec.ts, info.uid)
        if args.json:
            d = {"ts": rec.ts, "comm": comm, "filename": filename}
            d.update(info.to_dict())
            out.write(json.dumps(clean(d), ensure_ascii=False) + "\n")
        else:
            argv = " ".join(info.argv) if info.argv else f"{filename} (exited before it was read)"
            line = (f"{time.strftime('%H:%M:%S')} {pid:>7} {info.ppid if info.ppid is not None else '?':>7} "
                    f"{info.uid if info.uid is not None else '?':>5} {escape(comm)[:16]:<16} {escape(argv)}")
            out.write(line[:100] + "\n")
        return True

    # JSON mode has never carried loss notices for exec: the stream keeps its shape
    res = run_loop(tracer, handle, count=args.count, as_json=args.json, lost_json=False, out=out)
    from ..events import Stats

    # the kernel's losses were shown in-band (# LOST); what the stop left unread is said here
    for line in Stats(not_drained=getattr(res, "not_drained", 0)).loss_report("undertow exec"):
        print(line, file=sys.stderr)
    if args.summary:
        summary.write(args.json)
    return 0
