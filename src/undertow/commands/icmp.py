"""``undertow icmp``: ICMP/ICMPv6 sent and received, with the process, and tunnel indicators."""

from __future__ import annotations

import argparse
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..tools.bpftool import add_options

    p = sub.add_parser(
        "icmp", parents=[common],
        help="ICMP/ICMPv6 sent and received by processes (ping and raw sockets), tunnel indicators",
        description="ICMP and ICMPv6 messages processes send and receive through ping sockets and raw "
                    "sockets, with type/code/id/seq, payload size and the process; echo payloads that do "
                    "not look like a ping are flagged (size, entropy, text: an ICMP tunnel). The ICMP "
                    "errors the kernel itself sends (port unreachable...) are shown as 'kernel'. Hooks: "
                    "kprobes on raw_sendmsg/ping_v4_sendmsg (and v6) where the kernel has them (every route: "
                    "io_uring, sendfile/splice too), else syscall tracepoints, with a BPF program reading the "
                    "buffers; icmp:icmp_send. -v and 'undertow doctor' say which set. "
                    "See docs/tools/icmp.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fields (--json): ts pid tid comm direction family socket type type_name code id seq size "
               "captured peer indicators error fd netns pidns ppid uid argv cwd exe cgroup container parents gone\n"
               "examples:\n  undertow icmp\n  undertow icmp --json --duration 60\n"
               "  undertow icmp --summary",
    )
    add_options(p, "messages")
    p.set_defaults(func=run)
    return p


def _line(d: Dict[str, Any], host: Dict[str, Any]) -> str:
    from ..output.text import escape
    from ..tools.common import ns_note

    flag = (" ! " + "; ".join(d["indicators"])) if d.get("indicators") else ""
    idseq = f"id={d['id']} seq={d['seq']}" if d.get("id") is not None else f"code={d['code']}"
    who = f"{d['pid']:>7} {escape(d['comm'] or ''):<16}" if d.get("pid") else f"{'-':>7} {'(kernel)':<16}"
    from ..output.text import hms_now
    return (f"{hms_now()} {who} {d['direction']:<6} {d.get('peer') or '-':<15} "
            f"{d['type_name']:<16} {idseq} {d['size']}B{flag}{ns_note(d, host)}")


def run(args: argparse.Namespace) -> int:
    import sys

    from ..tools.bpftool import print_summary, run_tool
    from ..tools.common import ns_inode
    from ..tools.icmp import PROGRAM, event_parser, seed
    from ..tools.hooksets import choose

    host = {"netns": ns_inode("net"), "pidns": ns_inode("pid")}

    def start(session: Any) -> None:
        n = seed(session)
        if args.verbose:
            print(f"undertow icmp: {n} ICMP socket fd(s) open before the start found (sock_diag, /proc)",
                  file=sys.stderr)

    header = f"{'TIME':<8} {'PID':>7} {'COMM':<16} {'DIR':<6} {'PEER':<15} {'TYPE':<16} DETAILS"
    choice = choose("icmp")
    text = PROGRAM
    if choice.hooks == "kprobes":
        from ..tools.icmp_kprobes import program

        text = program(choice.extra["facts"])
    shown = run_tool(args, "icmp", text, event_parser(), header, lambda d: _line(d, host),
                     settings={"bufsize": 512}, on_start=start,
                     hooks=choose("icmp").text())
    if args.summary:
        print_summary(shown, args.json, "PEERS", "peer")
    return 0
