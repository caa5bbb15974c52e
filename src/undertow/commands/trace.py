"""``undertow trace``: surftrace-style probe lines on the running kernel."""

from __future__ import annotations

import argparse
import sys
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, List

from ..errors import UndertowError, UsageError


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from .. import options

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
    p.add_argument("-o", "--output-script", metavar="FILE", type=options.output_file,
                   help="write a standalone POSIX shell script reproducing the session (not through a "
                        "symbolic link, nor over another user's file)")
    p.add_argument("-s", "--stack", action="store_true", help="kernel stack with every event")
    p.add_argument("-a", "--arch", choices=["x86_64", "aarch64"], help="target architecture for -S/-o")
    p.add_argument("-p", "--pid", type=options.pid, help="only events of this process (it must exist)")
    p.add_argument("--json", action="store_true", help="one JSON object per event per line")
    p.add_argument("--duration", type=options.duration, metavar="SECONDS", help="stop after SECONDS (> 0)")
    p.add_argument("--count", type=options.count, metavar="N", help="stop after N events (>= 1)")
    p.add_argument("--backend", default="auto", choices=["auto", "ftrace", "bpf"],
                   help="tracing mechanism (default: auto)")
    p.add_argument("--drain", action="store_true",
                   help="on a stop (Ctrl-C, SIGTERM, --duration, --count), show everything recorded before "
                        "it, however long that takes (default: at most 0.4 s more; the rest is counted: "
                        "'not drained' in the summary)")
    p.add_argument("--no-summary", action="store_true", help="no exit summary on stderr")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..api import trace
    from ..output.text import TextWriter, summary

    if not args.lines and not args.file:
        raise UsageError("no probe lines given", hints=["e.g. undertow trace 'e sched/sched_process_exec'"])
    offline = bool(args.show or args.output_script)
    tracer = trace(*args.lines, files=args.file, backend=args.backend, pid=args.pid, stack=args.stack,
                   arch=args.arch, offline=offline, duration=args.duration, count=args.count,
                   drain=args.drain)
    if args.verbose:
        why = f" ({tracer.backend_why})" if tracer.backend_why else ""
        print(f"undertow trace: backend {tracer.backend.name}{why}", file=sys.stderr)
    if args.show:
        sys.stdout.write(tracer.show())
        return 0
    if args.output_script:
        from ..backends.ftrace.script import write_script
        from ..options import open_output

        with open_output(args.output_script, "-o", 0o755) as f:
            write_script(tracer.plan, f)
        print(f"undertow trace: wrote {args.output_script}", file=sys.stderr)
        return 0
    if args.json:
        from ..output.jsonl import JsonWriter  # json costs ~2.5 ms to import: only for --json

        writer: Any = JsonWriter(sys.stdout)
    else:
        writer = TextWriter(sys.stdout)
    from ..events import Event

    # SIGINT/SIGTERM/SIGHUP end the loop through undertow.stop (cli.main); the tracer
    # stops producing, shows what it had for at most 0.4 s (--drain: all), counts the rest
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
        except KeyboardInterrupt:
            pass  # a second Ctrl-C while --drain showed a long backlog
        finally:
            sys.stdout.flush()
    if not args.no_summary:
        # --count ends in the middle of a read: the stats count every event decoded
        read = tracer.stats.total_events
        shown = args.count if args.count is not None and read > args.count else None
        if args.json:
            writer.summary(tracer.stats, shown)
        else:
            sys.stderr.write(summary(tracer.stats, shown))
    return 0
