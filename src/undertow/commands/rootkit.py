"""``undertow rootkit``: is this host hiding something? Cross-view checks, read-only."""

from __future__ import annotations

import argparse
import json
import sys
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any

CHECK_NAMES = ("processes", "sockets", "modules", "hooks", "bpf", "userspace")


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "rootkit", parents=[common],
        help="is this host hiding something? compare what the kernel says several ways",
        description="Ask the kernel the same question several ways (/proc through libc and through "
                    "getdents64, the BPF task and task_file iterators, kill(2) on every pid, sock_diag, "
                    "/proc/net, /sys/module, kallsyms, tracefs, the BPF object inventory) and report every "
                    "disagreement with the two views, a severity and what to check next. Read-only: loads "
                    "no module, changes nothing (its BPF iterators are loaded, read and closed). "
                    "See docs/tools/rootkit.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status: 0 clean, 1 findings, 2 nothing found but some view could not be checked\n"
               "checks: " + " ".join(CHECK_NAMES) + "\n"
               "JSON lines (--json): {type: finding|note|not_checked|not_present|bpf_object|summary, check, ...};\n"
               "  a finding has severity, title, evidence {view: what it says}, next, key\n"
               "examples:\n  undertow rootkit\n  undertow rootkit --quick --json\n  undertow rootkit --only bpf",
    )
    p.add_argument("--json", action="store_true", help="JSON lines instead of text")
    p.add_argument("--quick", action="store_true",
                   help="leave out the slow views (kill(2) on every possible pid)")
    p.add_argument("--only", action="append", choices=CHECK_NAMES, metavar="CHECK",
                   help="run only this check family (repeatable): " + ", ".join(CHECK_NAMES))
    p.set_defaults(func=run)
    return p


def _text(v: Any) -> str:
    from ..output.text import escape

    return escape(str(v))


def run(args: argparse.Namespace) -> int:
    import os

    from ..tools.rootkit import run_checks

    if os.geteuid() != 0:
        print("undertow rootkit: needs root (other users' /proc entries, bpf(2), tracefs); "
              "nothing was checked", file=sys.stderr)
        return 2
    rep = run_checks(quick=args.quick, only=args.only, debug=bool(getattr(args, "debug", False)))
    status = rep.exit_status()
    if args.json:
        out = sys.stdout
        for f in rep.findings:
            out.write(json.dumps(f.as_json(), ensure_ascii=True) + "\n")
        for n in rep.notes:
            out.write(json.dumps(n.as_json(), ensure_ascii=True) + "\n")
        for s in rep.skipped:
            out.write(json.dumps(s.as_json(), ensure_ascii=True) + "\n")
        for o in rep.inventory:
            out.write(json.dumps(o, ensure_ascii=True) + "\n")
        out.write(json.dumps({"type": "summary", "findings": len(rep.findings), "notes": len(rep.notes),
                              "not_checked": sum(1 for s in rep.skipped if not s.absent),
                              "exit_status": status}) + "\n")
        return status
    for f in rep.findings:
        print(f"{f.severity.upper():<6} {f.check:<9} {_text(f.title)}")
        for view, said in f.evidence.items():
            print(f"       {_text(view)}: {_text(said)}")
        print(f"       next: {_text(f.next)}")
    for n in rep.notes:
        print(f"note   {n.check:<9} {_text(n.title)} ({_text(n.why)})")
    for s in rep.skipped:
        word = "absent" if s.absent else "not checked"
        print(f"{word}: {s.check}: {_text(s.what)}: {_text(s.why)}", file=sys.stderr)
    verdict = {0: "nothing found", 1: f"{len(rep.findings)} finding(s)",
               2: "nothing found, but some views could not be checked (above)"}[status]
    print(f"undertow rootkit: {verdict}; {len(rep.inventory)} BPF object(s) listed (--json shows them)",
          file=sys.stderr)
    return status
