"""``undertow cleanup``: remove tracefs state left by killed undertow sessions."""

from __future__ import annotations

import argparse
import sys


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "cleanup", parents=[common],
        help="remove instances and probes left by killed sessions",
        description="Remove tracefs instances and kprobe/uprobe events named undertow_<pid>_* whose "
                    "process is gone (a session killed with SIGKILL cannot clean up after itself). "
                    "Sessions also do this when they start.",
    )
    p.add_argument("-n", "--dry-run", action="store_true", help="only list what would be removed")
    p.add_argument("--force", action="store_true",
                   help="also remove the state of undertow sessions that are still running")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..backends.ftrace.cleanup import remove_stale, stale_state
    from ..kernel import Kernel

    tfs = Kernel().tracefs()
    items = stale_state(tfs, args.force) if args.dry_run else remove_stale(tfs, args.force)
    verb = "would remove" if args.dry_run else "removed"
    for item in items:
        print(f"{verb} {item}")
    if not items:
        print("nothing to clean up", file=sys.stderr)
    return 0
