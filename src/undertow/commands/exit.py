"""``undertow exit``: processes that end, with status or signal, core dump and lifetime."""

from __future__ import annotations

import argparse
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..tools.bpftool import add_options

    p = sub.add_parser(
        "exit", parents=[common],
        help="process exits with exit status, killing signal, core dump and lifetime",
        description="Every process that ends: its exit status, or the signal that killed it (and whether "
                    "it dumped core), its parent, uid and how long it lived. Hook: sched:sched_process_exit "
                    "with a BPF program reading the task through BTF (no kprobes). Short-lived processes are "
                    "the point: a miner restarted every minute, a dropper that runs for 50 ms. "
                    "See docs/tools/exit.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fields (--json): ts pid ppid uid comm status signal core exit_code lifetime_s "
               "netns pidns argv argv_truncated\n"
               "  (+ cwd exe cgroup container parents gone, when /proc still shows them)\n"
               "examples:\n  undertow exit\n  undertow exit --json --comm 'sh'\n"
               "  undertow exit --duration 60 --summary",
    )
    add_options(p, "exits")
    p.set_defaults(func=run)
    return p


def _line(d: Dict[str, Any], own_ns: Tuple[Optional[int], Optional[int]] = (None, None)) -> str:
    """One exit as a text line, every field whole; the namespaces when they are not ours."""
    from ..output.text import escape

    how = f"signal {d['signal']}" + (" (core)" if d["core"] else "") if d["signal"] else f"status {d['status']}"
    from ..output.text import hms_now
    text = (f"{hms_now()} {d['pid']:>7} {d['ppid']:>7} {d['uid']:>5} {escape(d['comm']):<16} "
            f"{how:<24} {d['lifetime_s']:>12.3f} s")
    if d.get("argv"):
        text += " " + escape(" ".join(d["argv"])) + (" [argv truncated]" if d.get("argv_truncated") else "")
    if d.get("netns") is not None and own_ns != (None, None) and (d.get("netns"), d.get("pidns")) != own_ns:
        text += f" [netns {d.get('netns')} pidns {d.get('pidns')}]"
    return text


def run(args: argparse.Namespace) -> int:
    from ..tools.bpftool import print_summary, run_tool
    from ..tools.exits import PROGRAM, SETTINGS, Parser
    from ..tools.hooksets import choose
    from ..tools.proc import own_namespaces

    own = own_namespaces()

    parse = Parser()

    header = f"{'TIME':<8} {'PID':>7} {'PPID':>7} {'UID':>5} {'COMM':<16} {'HOW':<24} {'LIFETIME':>14} ARGV"
    shown = run_tool(args, "exit", PROGRAM, parse, header, lambda d: _line(d, own), settings=SETTINGS,
                     hooks=choose("exit").text())
    if args.summary:
        print_summary(shown, args.json, "HOW", "signal")
    return 0
