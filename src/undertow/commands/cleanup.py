"""``undertow cleanup``: remove tracefs state left by killed undertow sessions."""

from __future__ import annotations

import argparse
import sys


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "cleanup", parents=[common],
        help="remove instances and probes left by killed sessions",
        description="Remove tracefs instances and kprobe/uprobe events named undertow_<pid>_<start>_<pidns>_<n> "
                    "whose owner is gone (a session killed with SIGKILL cannot clean up after itself), and list "
                    "those kept: an owner still running, in this or another pid namespace, or one that cannot be "
                    "judged from here (a name made in a parent or sibling pid namespace). Sessions also remove "
                    "stale state when they start, and say so on standard error.",
        epilog="names: pid = the owner's pid in its pid namespace, start = its start time (clock ticks since "
               "boot, /proc/PID/stat field 22), pidns = the inode of its pid namespace (/proc/PID/ns/pid). "
               "Names of older versions (undertow_<pid>_<n>) and of exported scripts (undertow_sh_<pid>) are "
               "judged only from the initial pid namespace.",
    )
    p.add_argument("-n", "--dry-run", action="store_true", help="only list what would be removed and kept")
    p.add_argument("--force", action="store_true",
                   help="also remove the state of undertow sessions that are still running (not this one's)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..backends.ftrace.cleanup import remove, removable, survey
    from ..kernel import Kernel

    kernel = Kernel()
    tfs = kernel.tracefs()
    items = survey(tfs, kernel.roots.proc)
    stale = [i for i in items if removable(i, args.force)]
    done = set(map(id, stale if args.dry_run else remove(tfs, stale)))
    failed = 0
    for item in items:
        if id(item) in done:
            print(f"{'would remove' if args.dry_run else 'removed'} {item} ({item.why})")
        elif item in stale:
            failed += 1
            print(f"undertow cleanup: could not remove {item} ({item.why})", file=sys.stderr)
        else:
            print(f"kept {item} ({item.why})")
    if not items:
        print("nothing to clean up", file=sys.stderr)
    return 1 if failed else 0
