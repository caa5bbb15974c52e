"""``undertow exec``: new processes, with argv, parent chain, uid, cwd and cgroup."""

from __future__ import annotations

import argparse
import json
import os
import sys
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple

def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..tools.common import add_common_options

    p = sub.add_parser(
        "exec", parents=[common],
        help="new processes (execve) with argv, parent chain, uid, cwd",
        description="Every execve/execveat: who ran what, from where; the ones that fail too (error "
                    "ENOENT, EACCES, ENOEXEC...). Hook: the "
                    "sched:sched_process_exec tracepoint (every kernel) with a BPF program that reads, at "
                    "the event, the new program's name (comm), its argv (first 4 KiB, argv_truncated when "
                    "longer), the file the kernel executed (a memfd or deleted file is flagged fileless) "
                    "and the task's network and pid namespaces, and LD_PRELOAD/LD_AUDIT from its environment; failed "
                    "execs from the syscall tracepoints. cwd, cgroup and the parent chain are read "
                    "from /proc as the event is read. See docs/tools/exec.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fields (--json): ts pid ppid uid comm filename exe fileless argv argv_truncated argv_bytes "
               "ld_preload ld_audit error (+ syscall dirfd result when failed) netns pidns cwd cgroup container "
               "parents gone\n"
               "examples:\n  undertow exec\n  undertow exec --comm 'python*' --json\n"
               "  undertow exec --duration 60 --summary",
    )
    add_common_options(p)
    p.set_defaults(func=run)
    return p


def line(d: Dict[str, Any], own_ns: Tuple[Optional[int], Optional[int]] = (None, None)) -> str:
    """One event as a text line: every field whole (a long argv makes a long line)."""
    from ..output.text import escape

    argv = d.get("argv")
    exe = d.get("exe")  # None: not known (the ftrace fallback, a process gone)
    if argv:
        text = " ".join(argv)
    else:
        text = f"{d.get('filename', '')} (exited before it was read)"
    marks = []
    if d.get("error"):
        marks.append(f"[FAILED {d['error']}: {d.get('filename', '')}]")
    for var in ("ld_preload", "ld_audit"):
        if d.get(var) is not None:
            marks.append(f"[{var.upper()}={d[var]}]")
    if d.get("fileless"):
        marks.append(f"[FILELESS {d['fileless']}: {exe or d.get('filename')}]")
    elif argv and exe and os.path.basename(argv[0]) != os.path.basename(exe.replace(" (deleted)", "")):
        marks.append(f"[exe {exe}]")
    if d.get("argv_truncated"):
        marks.append(f"[argv truncated: {d.get('argv_bytes')} bytes, first 4096 shown]")
    if d.get("netns") is not None and own_ns != (None, None) and (d.get("netns"), d.get("pidns")) != own_ns:
        marks.append(f"[netns {d.get('netns')} pidns {d.get('pidns')}]")
    q = (lambda v: "?" if v is None else v)
    from ..output.text import hms_now
    return (f"{hms_now()} {d['pid']:>7} {q(d.get('ppid')):>7} {q(d.get('uid')):>5} "
            f"{escape(d.get('comm') or ''):<16} " + escape(" ".join(marks + [text])))


HEADER = f"{'TIME':<8} {'PID':>7} {'PPID':>7} {'UID':>5} {'COMM':<16} ARGV"


def _bpf_usable() -> bool:
    """Whether this kernel runs the BPF program (BTF, BPF on tracepoints, a ring buffer)."""
    from ..kernel import Kernel
    from ..tools.hooksets import exec_bpf_usable

    return exec_bpf_usable(Kernel())[0]


def run(args: argparse.Namespace) -> int:
    if not _bpf_usable():
        return _run_ftrace(args)
    from ..tools.bpftool import run_tool
    from ..tools.common import Column, Summary
    from ..tools.execs import SETTINGS, parse_record, program
    from ..tools.hooksets import EXEC_HOOKS
    from ..tools.proc import own_namespaces

    own = own_namespaces()
    # --pid follows children in the program (sched_process_fork), not run_tool's one-process filter
    bargs = argparse.Namespace(**vars(args))
    bargs.pid = None
    shown = run_tool(bargs, "exec", program(args.pid), parse_record, HEADER, lambda d: line(d, own),
                     settings=SETTINGS,
                     hooks="bpf: " + EXEC_HOOKS["bpf"] + " (chosen because BTF, BPF on tracepoints and a ring "
                           "buffer work)")
    if args.summary:
        summary = Summary([Column("filename", "PROGRAM")], "uids", gap="  ", distinct_count=False,
                          values_limit=None, stringify=False)
        for d in shown:
            summary.add((d.get("filename"),), d["ts"], d.get("uid"))
        summary.write(args.json)
    return 0


def _run_ftrace(args: argparse.Namespace) -> int:
    """Without BPF: the tracepoint through ftrace; argv and the rest from /proc."""
    from ..api import trace
    from ..tools.hooksets import EXEC_HOOKS
    from ..output.jsonl import clean
    from ..tools.common import Column, ProcessFilter, Summary, run_loop
    from ..tools.proc import namespaces, own_namespaces, proc_info

    tracer = trace("e sched/sched_process_exec", pid=args.pid, duration=args.duration, drain=args.drain)
    print(f"undertow exec: no BPF on this kernel: {EXEC_HOOKS['ftrace']}", file=sys.stderr)
    out = sys.stdout
    own = own_namespaces()
    wanted = ProcessFilter.from_args(args)
    # programs ranked by count; the uids that ran them
    summary = Summary([Column("filename", "PROGRAM")], "uids", gap="  ", distinct_count=False,
                      values_limit=None, stringify=False)
    if not args.json:
        out.write(HEADER + "\n")

    def handle(rec: Any) -> bool:
        comm = rec.comm
        if not wanted.match_comm(comm):
            return False
        pid = int(rec.fields.get("pid", rec.pid))
        info = proc_info(pid)
        if not wanted.match_cgroup(info):
            return False
        filename = rec.fields.get("filename", "")
        netns, pidns = namespaces(pid)  # null when already gone
        if not wanted.match_netns(netns):
            return False
        summary.add((filename,), rec.ts, info.uid)
        d = {"ts": rec.ts, "comm": comm, "filename": filename, "argv_truncated": False}
        d.update(info.to_dict())
        d["netns"], d["pidns"] = netns, pidns
        exe = d.get("exe") or ""
        d["fileless"] = (("memfd" if exe.startswith("/memfd:") else "deleted") if exe.endswith(" (deleted)")
                         else None)
        if args.json:
            out.write(json.dumps(clean(d), ensure_ascii=False) + "\n")
        else:
            out.write(line(d, own) + "\n")
        return True

    # losses in-band, as the BPF tools write them ({"lost": N, "reason": ...} with --json)
    res = run_loop(tracer, handle, count=args.count, as_json=args.json, lost_json=True, out=out)
    from ..events import Stats

    # the kernel's losses were shown in-band (# LOST); what the stop left unread is said here
    for ln in Stats(not_drained=getattr(res, "not_drained", 0)).loss_report("undertow exec"):
        print(ln, file=sys.stderr)
    if args.summary:
        summary.write(args.json)
    return 0
