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
                    "handshake's duration, with the process; connects refused inside connect() (routes, "
                    "LSM) with the error; UDP connect() with its result. Hooks: the "
                    "sock:inet_sock_set_state tracepoint and connect()/getsockopt() syscalls with BPF; "
                    "tcp_v4_connect/tcp_v6_connect and sk_error_report kprobes where the kernel has them "
                    "(-v says which). "
                    "See docs/tools/connect.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fields (--json): ts pid comm proto family saddr sport daddr dport outcome stage latency_ms "
               "error netns pidns ppid uid argv cwd exe cgroup container parents gone\n"
               "examples:\n  undertow connect\n  undertow connect --json --comm curl\n"
               "  undertow connect --duration 300 --summary",
    )
    add_options(p, "connects")
    p.set_defaults(func=run)
    return p


def _line(d: Dict[str, Any], host: Dict[str, Any]) -> str:
    """One text line; no field is cut (a long one widens the line), the error and a namespace
    that is not the tool's own follow the latency."""
    from ..output.text import escape
    from ..tools.common import cell, ns_note

    dst = f"{d['daddr']}:{d['dport']}"
    err = f" {d['error']}" if d.get("error") else ""
    from ..output.text import hms_now
    return (f"{hms_now()} {d['pid']:>7} {cell(escape(d['comm']), 16)} {cell(dst, 40)} "
            f"{cell(d['outcome'], 11)} {d['latency_ms']:>9.3f} ms{err}{ns_note(d, host)}")


def hook_set() -> str:
    """``kprobes`` or ``tracepoints`` (:data:`undertow.tools.connect.HOOKS`), as
    :func:`undertow.tools.hooksets.choose` decides it."""
    from ..tools.hooksets import choose

    return choose("connect").hooks


def run(args: argparse.Namespace) -> int:
    from ..tools.bpftool import print_summary, run_tool
    from ..tools.common import ns_inode
    from ..tools.connect import event_parser, in_progress, program
    from ..tools.hooksets import choose

    choice = choose("connect")
    hooks = choice.hooks
    host = {"netns": ns_inode("net"), "pidns": ns_inode("pid")}

    # the outcome is decided in softirq context: --pid filters on the pid saved at connect()
    want_pid, args.pid = args.pid, None

    parse_event = event_parser()

    def parse(rec: Any) -> Optional[Dict[str, Any]]:
        d = parse_event(rec)
        return None if want_pid is not None and d["pid"] != want_pid else d

    header = f"{'TIME':<8} {'PID':>7} {'COMM':<16} {'DESTINATION':<40} {'OUTCOME':<11} {'LATENCY':>12} ERROR"
    shown = run_tool(args, "connect", program(hooks), parse, header, lambda d: _line(d, host),
                     hooks=choice.text(),
                     on_stop=lambda session: [d for d in in_progress(session, time.monotonic_ns())
                                              if want_pid is None or d["pid"] == want_pid])
    if args.summary:
        print_summary(shown, args.json, "DESTINATIONS", "daddr")
    return 0
