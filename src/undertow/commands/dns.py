"""``undertow dns``: every DNS query leaving the host, with the process that sent it."""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import signal
import sys
import time
from typing import Any, Dict, List


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "dns", parents=[common],
        help="DNS queries leaving the host, with the process, name and type, and the resolver",
        description="Every DNS query sent by a process on this host: UDP and TCP to port 53 (sendto, "
                    "sendmsg, glibc's connect()+sendmmsg, write on a connected socket) and DNS over TLS "
                    "(port 853, flagged, not decodable). Hooks: syscall tracepoints with a BPF program "
                    "that reads the message in the kernel (no kprobes needed). Process details are read "
                    "from /proc as the event arrives.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fields (--json): ts pid tid comm syscall resolver resolver_port transport id qname qtype "
               "qclass questions truncated error size ppid uid exe cgroup container parents gone\n"
               "examples:\n  undertow dns\n  undertow dns --comm 'xmrig*' --json\n"
               "  undertow dns --duration 60 --summary",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--pid", type=int, help="only this process")
    p.add_argument("--comm", help="only processes whose name matches this glob")
    p.add_argument("--cgroup", help="only processes whose cgroup path contains this text")
    p.add_argument("--duration", type=float, help="stop after SECONDS")
    p.add_argument("--count", type=int, help="stop after N queries")
    p.add_argument("--summary", action="store_true", help="at exit, a ranked table: who asked most, what")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:  # noqa: C901 - the tool's loop, top to bottom
    from ..backends.bpf.compiler import compile_program
    from ..backends.bpf.runtime import Printed, ProgramSession
    from ..events import Lost
    from ..kernel import Kernel
    from ..kernel.arch import current_arch
    from ..lang.bt import parse_program
    from ..lang.resolve import resolve
    from ..output.jsonl import clean
    from ..output.text import escape
    from ..tools.dns import PROGRAM, parse_record
    from ..tools.proc import proc_info

    kernel = Kernel()
    prog = parse_program(PROGRAM, origin="<undertow dns>")
    prog.settings["bufsize"] = 512
    resolve(prog, kernel)
    compiled = compile_program(prog, arch=current_arch(), self_pid=os.getpid(), pid=args.pid)
    if args.verbose:
        print("undertow dns: hooks: syscalls:sys_enter_{connect,close,sendto,sendmsg,sendmmsg,write} "
              "(BPF tracepoint programs reading user buffers)", file=sys.stderr)
    stopping: List[int] = []
    old = {s: signal.signal(s, lambda n, f: stopping.append(n)) for s in (signal.SIGINT, signal.SIGTERM,
                                                                          signal.SIGHUP)}
    out = sys.stdout
    summary: Dict[Any, Dict[str, Any]] = {}
    seen = 0
    session = ProgramSession.start(compiled, kernel)
    try:
        if not args.json:
            out.write(f"{'TIME':<8} {'PID':>7} {'COMM':<16} {'RESOLVER':<22} {'TYPE':<6} NAME\n")
            out.flush()
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stopping:
            if deadline is not None and time.monotonic() >= deadline:
                break
            for rec in session.poll(0.05):
                if isinstance(rec, Lost):
                    if not args.json:
                        out.write(f"# LOST {rec.count} events ({rec.reason})\n")
                    continue
                if not isinstance(rec, Printed):
                    continue
                q = parse_record(rec)
                if q is None:
                    continue
                q.ts, q.pid, q.tid, q.comm = rec.ts, rec.pid, rec.tid, rec.comm
                if args.comm and not fnmatch.fnmatchcase(q.comm, args.comm):
                    continue
                info = proc_info(q.pid)
                if args.cgroup and (info.cgroup is None or args.cgroup not in info.cgroup):
                    continue
                seen += 1
                d = q.to_dict()
                key = (q.pid, q.comm)
                s = summary.setdefault(key, {"count": 0, "first": q.ts, "last": q.ts, "names": set()})
                s["count"] += 1
                s["last"] = q.ts
                if d["qname"]:
                    s["names"].add(d["qname"])
                if args.json:
                    d.update(info.to_dict())
                    out.write(json.dumps(clean(d), ensure_ascii=False) + "\n")
                else:
                    res = f"{q.resolver}:{q.port}" if q.port != 53 else q.resolver
                    if q.transport == "dot":
                        name, qt = "(DNS over TLS: encrypted)", "DoT"
                    else:
                        name, qt = d["qname"] or "(undecodable)", d["qtype"] or "?"
                    line = (f"{time.strftime('%H:%M:%S')} {q.pid:>7} {escape(q.comm)[:16]:<16} "
                            f"{res[:22]:<22} {qt:<6} {escape(name)}")
                    out.write(line[:100] + "\n")
                if args.count and seen >= args.count:
                    stopping.append(0)
                    break
            out.flush()
    finally:
        session.close()
        for s_, h in old.items():
            signal.signal(s_, h)
    if args.summary:
        _summary(summary, args.json)
    return 0


def _summary(summary: Dict[Any, Dict[str, Any]], as_json: bool) -> None:
    from ..output.text import escape

    rows = sorted(summary.items(), key=lambda kv: -kv[1]["count"])
    if as_json:
        sys.stdout.write(json.dumps({"summary": [
            {"pid": k[0], "comm": k[1], "count": v["count"], "first_ts": v["first"], "last_ts": v["last"],
             "distinct_names": len(v["names"]), "names": sorted(v["names"])[:20]} for k, v in rows]}) + "\n")
        return
    sys.stderr.write(f"\n{'COUNT':>7} {'NAMES':>6} {'PID':>7} {'COMM':<16} TOP NAMES\n")
    for (pid, comm), v in rows[:40]:
        names = ", ".join(sorted(v["names"])[:3])
        sys.stderr.write(f"{v['count']:>7} {len(v['names']):>6} {pid:>7} {escape(comm)[:16]:<16} "
                         f"{escape(names)[:60]}\n")
