"""``undertow trace``: surftrace-style probe lines on the running kernel."""

from __future__ import annotations

import argparse
import signal
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are strings: typing is not imported at run time (start-up)
    from typing import Any, List, Optional

from ..errors import UndertowError, UsageError
from . import seconds


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "trace",
        parents=[common],
        help="trace probe lines: tracepoints, kprobes, uprobes (surftrace syntax)",
        description="Trace surftrace-style probe lines. One line per argument (quote each).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""probe lines:
  p SYMBOL[+OFF] [NAME=EXPR ...] [f:FILTER]    kprobe (function entry)
  r SYMBOL [NAME=EXPR ...] [f:FILTER]          kretprobe ($retval)
  e GROUP/EVENT [f:FILTER]                     tracepoint (wildcards allowed: e sched/*)
  P OBJ:SYMBOL[+OFF] [NAME=EXPR ...]           uprobe (OBJ: path, command, or libc/libssl)
  R OBJ:SYMBOL [NAME=EXPR ...]                 uretprobe

examples:
  undertow trace 'e syscalls/sys_enter_openat f:comm=="cat"'
  undertow trace 'e sched/sched_process_exec' --json --duration 10
  undertow trace 'P libc:getaddrinfo host=+0(%di):string'
  undertow trace -S 'p tcp_connect daddr=sk->__sk_common.skc_daddr'     # show, don't run
  undertow trace 'p _do_fork comm=%0->comm users=S%0->mm->mm_users f:comm==systemd'

See docs/probe-lines.md for the expression language.""",
    )
    p.add_argument("lines", nargs="*", metavar="LINE", help="probe line")
    p.add_argument("-f", "--file", action="append", default=[], metavar="FILE",
                   help="read probe lines from FILE (one per line, # comments)")
    p.add_argument("-S", "--show", action="store_true",
                   help="print the exact tracefs lines and filters, attach nothing (works offline)")
    p.add_argument("-o", "--output-script", metavar="FILE",
                   help="write a standalone POSIX shell script reproducing the session")
    p.add_argument("-s", "--stack", action="store_true", help="kernel stack with every event")
    p.add_argument("-a", "--arch", choices=["x86_64", "aarch64"], help="target architecture for -S/-o")
    p.add_argument("-p", "--pid", type=int, help="only events of this process")
    p.add_argument("--json", action="store_true", help="one JSON object per event per line")
    p.add_argument("--duration", type=seconds, metavar="SECONDS", help="stop after SECONDS")
    p.add_argument("--count", type=int, metavar="N", help="stop after N events")
    p.add_argument("--backend", default="auto", choices=["auto", "ftrace", "bpf"],
                   help="tracing mechanism (default: auto)")
    p.add_argument("--no-summary", action="store_true", help="no exit summary on stderr")
    p.set_defaults(func=run)
    return p


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop()


def run(args: argparse.Namespace) -> int:
    from ..api import trace
    from ..output.text import TextWriter, summary

    if not args.lines and not args.file:
        raise UsageError("no probe lines given", hints=["e.g. undertow trace 'e sched/sched_process_exec'"])
    if args.count is not None and args.count < 1:
        raise UsageError(f"--count {args.count}: give a positive number of events")
    offline = bool(args.show or args.output_script)
    tracer = trace(*args.lines, files=args.file, backend=args.backend, pid=args.pid, stack=args.stack,
                   arch=args.arch, offline=offline, duration=args.duration, count=args.count)
    if args.verbose:
        print(f"undertow trace: backend {tracer.backend.name}", file=sys.stderr)
    if args.show:
        sys.stdout.write(tracer.show())
        return 0
    if args.output_script:
        from ..backends.ftrace.script import write_script

        write_script(tracer.plan, args.output_script)
        print(f"undertow trace: wrote {args.output_script}", file=sys.stderr)
        return 0
    if args.json:
        from ..output.jsonl import JsonWriter  # json costs ~2.5 ms to import: only for --json

        writer: Any = JsonWriter(sys.stdout)
    else:
        writer = TextWriter(sys.stdout)
    old = {s: signal.signal(s, _raise_stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    from ..events import Event

    try:
        with tracer:
            try:
                if args.json:
                    event, lost = writer.event, writer.lost

                    def write(batch: List[Any]) -> None:
                        for rec in batch:
                            if rec.__class__ is Event:
                                event(rec)
                            else:
                                lost(rec)
                else:
                    # fixed-size events come as ready lines (no Event built), the rest as
                    # Events; a batch is written at once
                    tracer.render_lines(writer)
                    write = writer.batch
                for batch in tracer.batches():
                    write(batch)
                    # one flush per read of the kernel buffers: prompt when events are rare,
                    # one write per batch under load
                    sys.stdout.flush()
            except (KeyboardInterrupt, _Stop):
                pass
            finally:
                sys.stdout.flush()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if not args.no_summary:
        # --count ends in the middle of a read: the stats count every event decoded
        read = tracer.stats.total_events
        shown = args.count if args.count is not None and read > args.count else None
        if args.json:
            writer.summary(tracer.stats, shown)
        else:
            sys.stderr.write(summary(tracer.stats, shown))
    return 0
