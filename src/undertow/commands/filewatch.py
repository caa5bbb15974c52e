"""``undertow filewatch PATH...``: who writes these files (and with --all: who touches them)."""

from __future__ import annotations

import argparse
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

from ..errors import UsageError


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..tools.bpftool import add_options

    p = sub.add_parser(
        "filewatch", parents=[common],
        help="who changes these files: writes, truncates, replaces, renames, unlinks, chmod/chown/utimes "
             "(--all: opens and reads too)",
        description="Every change to the given files, with the process: writes (also sendfile, splice, "
                    "copy_file_range, io_uring, a shared writable mmap), truncates (O_TRUNC opens too), "
                    "fallocate, chmod, chown, timestamps set, renames from or onto the path, unlinks, hard "
                    "links, creation at the path. A file is watched by inode (a rename or hard link does not "
                    "lose it) and by path (a file put at the path by mv, cp or unlink + create is watched "
                    "from then on); writers that opened it before the tool started are found in /proc. "
                    "Hooks: syscall and io_uring tracepoints; where fentry or kprobes work, also the VFS "
                    "functions every path goes through (-v says which). See docs/tools/filewatch.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fields (--json): ts pid tid comm op path inode fd netns pidns bytes iovecs length offset mode "
               "punch_hole uid gid flags write from to arg changes name opcode cmd "
               "(+ ppid uid argv cwd exe cgroup container parents gone)\n"
               "ops: write pwrite64 writev pwritev pwritev2 sendfile splice copy_file_range mmap-write "
               "fallocate ftruncate truncate open-trunc create fchmod fchmodat fchmodat2 chmod fchown "
               "fchownat chown lchown utimensat futimesat utimes utime unlink unlinkat rename link ioctl "
               "io_uring-write io_uring-writev io_uring-fallocate io_uring-splice io_uring-tee io_uring-ftruncate "
               "(vfs hooks: vfs-write setattr vfs-rename vfs-unlink vfs-link; --all: open read pread64 readv "
               "preadv preadv2 io_uring-read io_uring-readv)\n"
               "examples:\n  undertow filewatch /etc/passwd /etc/shadow\n"
               "  undertow filewatch --all --json /var/www/html/index.php",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files to watch (they must exist)")
    p.add_argument("--all", action="store_true", help="opens and reads too")
    p.add_argument("--hooks", choices=("auto", "syscalls", "vfs"), default="auto",
                   help="hook set: syscalls (tracepoints only), vfs (also fentry/kprobes on the VFS "
                        "functions), auto (vfs where the kernel allows it; the default)")
    add_options(p, "events")
    p.set_defaults(func=run)
    return p


#: Ops whose ``bytes`` is the most the call may copy, not what it wrote.
_COPY_OPS = ("sendfile", "splice", "copy_file_range")


def _line(d: Dict[str, Any]) -> str:
    """One text line; no field is cut (a long path or name widens the line)."""
    from ..output.text import escape

    extra = []
    keys = ("bytes", "iovecs", "length", "offset", "mode", "uid", "gid", "changes", "from", "to", "arg", "name", "cmd")
    if d.get("op") in ("rename", "link"):
        keys += ("flags",)
    for k in keys:
        v = d.get(k)
        if v is not None and v != [] and not (k == "arg" and v == d.get("path")):
            # the count a copy asks for is an upper bound (cp asks for ~2^63: up to the end)
            sep = "<=" if k == "bytes" and d.get("op") in _COPY_OPS else "="
            extra.append(f"{k}{sep}{','.join(v) if isinstance(v, list) else v}")
    from ..output.text import hms_now
    return (f"{hms_now()} {d['pid']:>7} {escape(d['comm']):<16} {d['op']:<10} "
            f"{escape(d['path']):<40} {escape(' '.join(extra))}").rstrip()


def run(args: argparse.Namespace) -> int:
    from ..tools.bpftool import print_summary, run_tool
    from ..tools.filewatch import Tracker, Watch, parse_record, program, seed
    from ..tools.hooksets import filewatch_choice

    ws = []
    for p in args.paths:
        try:
            ws.append(Watch(p))
        except (OSError, ValueError) as e:  # ValueError: a NUL in the name (API callers)
            from ..output.values import escape

            why = e.strerror if isinstance(e, OSError) else str(e)
            shown = escape(p if len(p) <= 80 else p[:77] + "...")
            raise UsageError(f"cannot watch {shown}: {why}", hints=["filewatch watches existing files"]) from None

    tracker = Tracker(ws)

    def parse(rec: Any) -> Optional[Dict[str, Any]]:
        return parse_record(rec, ws, tracker)

    def start(session: Any) -> None:
        tracker.session = session
        n = seed(session, ws)
        if args.verbose:
            import sys

            print(f"undertow filewatch: {n} open file descriptor(s) of the watched files found in /proc",
                  file=sys.stderr)

    from ..kernel import Kernel
    from ..tools.filewatch import kernel_identity

    kernel = Kernel()
    kernel_identity(ws, kernel)  # overlayfs: an open file's inode is not what stat() says
    choice = filewatch_choice(kernel, force="syscalls" if args.hooks == "syscalls" else None)
    hooks = choice.hooks
    if args.hooks == "vfs" and hooks != "vfs":
        raise UsageError("--hooks vfs: this kernel cannot attach BPF to its VFS functions: " + choice.why,
                         hints=["--hooks syscalls (the default here) uses the tracepoints",
                                "'undertow doctor' lists what this kernel offers"])
    tfs = kernel.tracefs()
    text = program(ws, args.all, have=lambda ev: tfs.events(ev), hooks=hooks, uring=choice.extra.get("uring"))
    header = f"{'TIME':<8} {'PID':>7} {'COMM':<16} {'OP':<10} {'PATH':<40} DETAILS"
    desc = choice.text()
    # names in records whole: a path argument up to 256 bytes, as far as a comparison reads;
    # 64 Ki (pid, fd) entries: a process that exits without close() leaves its entries behind
    shown = run_tool(args, "filewatch", text, parse, header, _line, on_start=start, hooks=desc,
                     settings={"strlen": 256, "map_keys_max": 65536})
    if args.summary:
        print_summary(shown, args.json, "OPS", "op")
    return 0
