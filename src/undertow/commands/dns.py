"""``undertow dns``: every DNS query leaving the host, with the process that sent it."""

from __future__ import annotations

import argparse
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..tools.bpftool import add_options

    p = sub.add_parser(
        "dns", parents=[common],
        help="DNS queries leaving the host, with the process, name and type, and the resolver",
        description="Every DNS query sent by a process on this host: UDP and TCP to port 53 (sendto, "
                    "sendmsg, glibc's connect()+sendmmsg, write on a connected socket) and DNS over TLS "
                    "(port 853, flagged, not decodable). Hooks: kprobes on udp_sendmsg/udpv6_sendmsg/"
                    "tcp_sendmsg where the kernel has them (every route: io_uring, sendfile/splice too), else "
                    "syscall tracepoints; a BPF program reads the message in the kernel (-v and 'undertow "
                    "doctor' say which set). Process details are read "
                    "from /proc as the event arrives. See docs/tools/dns.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fields (--json): ts pid tid comm syscall resolver resolver_port transport id qname qtype "
               "qclass questions truncated error size batch netns pidns ppid uid argv cwd exe cgroup container parents gone\n"
               "examples:\n  undertow dns\n  undertow dns --comm 'xmrig*' --json\n"
               "  undertow dns --duration 60 --summary",
    )
    add_options(p, "queries")
    p.add_argument("--answers", action="store_true", help="also the responses the processes read (rcode, records)")
    p.set_defaults(func=run)
    return p


def _line(d: Dict[str, Any], host: Dict[str, Any]) -> str:
    from ..output.text import escape
    from ..tools.common import ns_note

    res = d["resolver"] if d["resolver_port"] == 53 else f"{d['resolver']}:{d['resolver_port']}"
    if d["transport"] == "dot":
        name, qt = "(DNS over TLS: encrypted)", "DoT"
    elif d.get("kind") == "answer":
        data = ", ".join(str(a["data"]) for a in d["answers"] or [])
        name, qt = f"{d['qname']} {d['rcode']} {data}", "ANSWER"
    else:
        name, qt = d["qname"] or "(undecodable)", d["qtype"] or "?"
    extra = f" ({d['transport']})" if d["transport"] == "tcp" else ""
    if d.get("error"):
        extra += f" [{d['error']}]"
    from ..output.text import hms_now
    return (f"{hms_now()} {d['pid']:>7} {escape(d['comm']):<16} {escape(res):<22} "
            f"{qt:<6} {escape(name)}{extra}{ns_note(d, host)}")


def run(args: argparse.Namespace) -> int:
    import sys

    from ..tools.bpftool import print_summary, run_tool
    from ..tools.common import ns_inode
    from ..tools.dns import ANSWERS, PROGRAM, event_parser, seed
    from ..tools.hooksets import choose

    host = {"netns": ns_inode("net"), "pidns": ns_inode("pid")}
    seeds: Dict[Any, Any] = {}

    def start(session: Any) -> None:
        seeds.update(seed(session))
        if args.verbose:
            print(f"undertow dns: {len(seeds)} socket fd(s) connected to port 53/853 before the start found "
                  "(sock_diag, /proc)", file=sys.stderr)

    choice = choose("dns")
    fix = None
    text = PROGRAM
    if choice.hooks == "kprobes":
        from ..tools.dns_kprobes import ANSWER_DST, fix_call, program

        text, fix = program(choice.extra["facts"]), fix_call
        if args.answers:
            text += ANSWER_DST

    header = f"{'TIME':<8} {'PID':>7} {'COMM':<16} {'RESOLVER':<22} {'TYPE':<6} NAME"
    shown = run_tool(args, "dns", text + (ANSWERS if args.answers else ""), event_parser(seeds, fix), header,
                     lambda d: _line(d, host), settings={"bufsize": 512}, on_start=start,
                     hooks=choice.text())
    if args.summary:
        print_summary(shown, args.json, "NAMES", "qname")
    return 0
