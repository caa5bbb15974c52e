"""``undertow filewatch PATH...``: who writes these files (and with --all: who touches them)."""

from __future__ import annotations

import argparse
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

from ..errors import UsageError


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..tools.bpftool import add_options

    p = sub.add_parser(
        "filewatch", parents=[common],
        help="who writes these files (--all: opens, reads, renames, unlinks, chmods, truncates)",
        description="Every write to the given files, with the process: matched by device and inode, so a "
                    "rename does not lose the file, and writers that opened it before the tool started are "
                    "found in /proc. Writes through a shared writable mmap are reported as the mapping "
                    "(mmap-write). With --all: opens, reads, renames, unlinks, chmods, truncates too. "
                    "Hooks: syscall tracepoints with BPF following fd -> file -> inode (BTF). "
                    "See docs/tools/filewatch.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fields (--json): ts pid tid comm op path inode fd bytes iovecs length mode flags write to "
               "(+ ppid uid argv cwd exe cgroup container parents gone)\n"
               "ops: write pwrite64 writev pwritev mmap-write ftruncate fchmod "
               "(--all: open read pread64 readv unlinkat fchmodat truncate rename)\n"
               "examples:\n  undertow filewatch /etc/passwd /etc/shadow\n"
               "  undertow filewatch --all --json /var/www/html/index.php",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files to watch (they must exist)")
    p.add_argument("--all", action="store_true", help="opens, reads, renames, unlinks, chmods, truncates too")
    add_options(p, "events")
    p.set_defaults(func=run)
    return p


def _line(d: Dict[str, Any]) -> str:
    from ..output.text import escape

    extra = ""
    for k in ("bytes", "iovecs", "length", "mode", "to"):
        if d.get(k) is not None:
            extra = f"{k}={d[k]}"
            break
    return (f"{time.strftime('%H:%M:%S')} {d['pid']:>7} {escape(d['comm'])[:16]:<16} {d['op']:<10} "
            f"{escape(d['path'])[:40]:<40} {escape(extra)}")


def run(args: argparse.Namespace) -> int:
    from ..tools.bpftool import print_summary, run_tool
    from ..tools.filewatch import Watch, check_paths, parse_record, program, seed

    ws = []
    for p in args.paths:
        try:
            ws.append(Watch(p))
        except (OSError, ValueError) as e:  # ValueError: a NUL in the name (API callers)
            from ..output.values import escape

            why = e.strerror if isinstance(e, OSError) else str(e)
            shown = escape(p if len(p) <= 80 else p[:77] + "...")
            raise UsageError(f"cannot watch {shown}: {why}", hints=["filewatch watches existing files"]) from None

    check_paths(ws, args.all)

    def parse(rec: Any) -> Optional[Dict[str, Any]]:
        return parse_record(rec, ws)

    def start(session: Any) -> None:
        n = seed(session, ws)
        if args.verbose:
            import sys

            print(f"undertow filewatch: {n} open file descriptor(s) of the watched files found in /proc",
                  file=sys.stderr)

    from ..kernel import Kernel
    from ..tools.filewatch import kernel_identity

    kernel = Kernel()
    kernel_identity(ws, kernel)  # overlayfs: an open file's inode is not what stat() says
    tfs = kernel.tracefs()
    text = program(ws, args.all, have=lambda ev: tfs.events(ev))
    header = f"{'TIME':<8} {'PID':>7} {'COMM':<16} {'OP':<10} {'PATH':<40} DETAILS"
    shown = run_tool(args, "filewatch", text, parse, header, _line, on_start=start,
                     hooks="syscalls: openat exit (fd -> inode via BTF), close, write/pwrite64/writev/pwritev, "
                           "mmap, ftruncate, fchmod" + (", read/pread64/readv, unlinkat, fchmodat, truncate, "
                                                        "renameat2" if args.all else ""))
    if args.summary:
        print_summary(shown, args.json, "OPS", "op")
    return 0
