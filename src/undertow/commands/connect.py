"""``undertow connect``: outbound TCP connects with the outcome and the time it took."""

from __future__ import annotations

import argparse
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Optional


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..tools.bpftool import add_options

    p = sub.add_parser(
        "connect", parents=[common],
        help="outbound connects: who, to where, established/refused/timed out/unreachable/in progress, latency",
        description="Every outbound TCP connect() with its outcome (established, refused, timed-out, "
                    "unreachable, aborted; in-progress for those still waiting when the tool stops) and the "
                    "handshake's duration, with the process; UDP connect() with its result. Hooks: the "
                    "sock:inet_sock_set_state tracepoint and connect() syscalls, with BPF (no kprobes). "
                    "See docs/tools/connect.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fields (--json): ts pid comm proto family saddr sport daddr dport outcome latency_ms error "
               "ppid uid argv cwd exe cgroup container parents gone\n"
               "examples:\n  undertow connect\n  undertow connect --json --comm curl\n"
               "  undertow connect --duration 300 --summary",
    )
    add_options(p, "connects")
    p.set_defaults(func=run)
    return p


def _line(d: Dict[str, Any]) -> str:
    from ..output.text import escape

    dst = f"{d['daddr']}:{d['dport']}"
    return (f"{time.strftime('%H:%M:%S')} {d['pid']:>7} {escape(d['comm'])[:16]:<16} {dst[:40]:<40} "
            f"{d['outcome']:<11} {d['latency_ms']:>9.3f} ms")


def run(args: argparse.Namespace) -> int:
    from ..tools.bpftool import print_summary, run_tool
    from ..tools.connect import PROGRAM, in_progress, parse_record

    # the outcome is decided in softirq context: --pid filters on the pid saved at connect()
    want_pid, args.pid = args.pid, None

    def parse(rec: Any) -> Optional[Dict[str, Any]]:
        d = parse_record(rec)
        return None if want_pid is not None and d["pid"] != want_pid else d

    header = f"{'TIME':<8} {'PID':>7} {'COMM':<16} {'DESTINATION':<40} {'OUTCOME':<11} {'LATENCY':>12}"
    shown = run_tool(args, "connect", PROGRAM, parse, header, _line,
                     hooks="sock:inet_sock_set_state (CLOSE->SYN_SENT in connect(), SYN_SENT->ESTABLISHED/CLOSE; "
                           "sk->sk_err says why); connect() on UDP sockets",
                     on_stop=lambda session: [d for d in in_progress(session, time.monotonic_ns())
                                              if want_pid is None or d["pid"] == want_pid])
    if args.summary:
        print_summary(shown, args.json, "DESTINATIONS", "daddr")
    return 0
