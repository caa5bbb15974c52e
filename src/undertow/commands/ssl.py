"""``undertow ssl``: the plaintext of TLS reads and writes in running processes (uprobes)."""

from __future__ import annotations

import argparse
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List


def _max_bytes(text: str) -> int:
    """``--max-bytes N``: 1 to MAX_BYTES_LIMIT."""
    from ..tools.ssl import MAX_BYTES_LIMIT

    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of bytes: {text[:40]!r}") from None
    if not 1 <= value <= MAX_BYTES_LIMIT:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_BYTES_LIMIT} (bytes), not {text[:40]!r}")
    return value


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..tools.bpftool import add_options
    from ..tools.ssl import DEFAULT_MAX_BYTES

    p = sub.add_parser(
        "ssl", parents=[common],
        help="TLS plaintext of running processes: each read and write with the peer and the first bytes",
        description="What goes inside TLS, with no restart and no preload: uprobes on OpenSSL (SSL_read, "
                    "SSL_write, SSL_read_ex, SSL_write_ex), GnuTLS (gnutls_record_recv/send) and NSS "
                    "(PR_Read/PR_Write/PR_Recv/PR_Send on SSL descriptors), in every process that maps "
                    "them now and in processes started later (a uprobe covers every process mapping the "
                    "file; new library files are found at exec and mmap). Executables with OpenSSL "
                    "linked in are probed when their symbols are there. The peer comes from the socket "
                    "the library uses inside the call. See docs/tools/ssl.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fields (--json): ts pid tid comm library library_kind static function direction length fd "
               "family peer peer_addr peer_port local_port captured truncated data data_base64\n"
               "  (+ ppid uid argv cwd exe cgroup container parents gone, when /proc still shows them)\n"
               "examples:\n  undertow ssl\n  undertow ssl --comm curl --max-bytes 512\n"
               "  undertow ssl --pid 1234 --json\n  undertow ssl --libraries",
    )
    add_options(p, "records")
    p.add_argument("--max-bytes", type=_max_bytes, default=DEFAULT_MAX_BYTES, metavar="N",
                   help=f"bytes of each record's plaintext shown (default {DEFAULT_MAX_BYTES})")
    p.add_argument("--no-static", action="store_true",
                   help="do not look for OpenSSL linked into executables (faster start on hosts with many "
                        "large binaries)")
    p.add_argument("--libraries", action="store_true",
                   help="list the TLS library files found (and the processes' paths to them), then exit")
    p.set_defaults(func=run)
    return p


def _line(d: Dict[str, Any]) -> str:
    from ..output.text import escape

    lib = d["library"].rsplit("/", 1)[-1]
    peer = d["peer"] or "-"
    arrow = "<" if d["direction"] == "read" else ">"
    more = "..." if d["truncated"] else ""
    return (f"{time.strftime('%H:%M:%S')} {d['pid']:>7} {d['tid']:>7} {escape(d['comm']):<16} "
            f"{escape(lib):<18} {d['function']:<18} {arrow} {d['length']:>6} {escape(peer):<22} "
            f"{d['data']}{more}")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from ..events import Lost
    from ..output.jsonl import dumps, encoded, merged_line
    from ..tools.common import ProcessFilter, lost_line
    from ..tools.proc import proc_info
    from ..tools.ssl import is_watch, parse_record
    from ..tools.ssl_libs import LibraryScanner
    from ..tools.ssl_run import SslSessions

    scanner = LibraryScanner(static=not args.no_static)
    t0 = time.monotonic()
    libs = scanner.scan_all([args.pid] if args.pid else None)
    if args.verbose:
        print(f"undertow ssl: {len(libs)} TLS library file(s) found in {time.monotonic() - t0:.2f} s", file=sys.stderr)
        for note in scanner.notes[:50]:
            print(f"undertow ssl: {note}", file=sys.stderr)
    if args.libraries:
        try:
            for lib in libs:
                if args.json:
                    print(json.dumps(lib.to_dict()))
                else:
                    from ..output.text import escape

                    print(f"{lib.kind:<8} pid {lib.pid:>7} {escape(lib.path)}"
                          f"{' (static)' if lib.static else ''}: {' '.join(lib.functions)}")
        finally:
            scanner.close()
        return 0

    out = sys.stdout
    pfilter = ProcessFilter.from_args(args)
    infos: Dict[int, Any] = {}
    n_shown = 0
    shown: List[Dict[str, Any]] = []
    keep = bool(args.summary)

    def warn(text: str) -> None:
        print(f"undertow ssl: warning: {text}", file=sys.stderr)

    sessions = SslSessions(scanner, pid=args.pid, settings={"bufsize": args.max_bytes}, watch=True, warn=warn,
                           note=(lambda text: print(f"undertow ssl: {text}", file=sys.stderr)) if args.verbose else None)
    done = [False]

    def handle(batch: List[Any]) -> None:
        nonlocal n_shown
        from ..backends.bpf.runtime import Printed

        for rec in batch:
            if done[0]:
                return
            if isinstance(rec, Lost):
                out.write((json.dumps({"lost": rec.count, "reason": rec.reason}) if args.json
                           else lost_line(rec.count, rec.reason)) + "\n")
                continue
            if not isinstance(rec, Printed):
                continue
            if is_watch(rec):
                sessions.note_process(rec.pid)
                continue
            d = parse_record(rec, sessions.libs)
            if d is None or not pfilter.match_comm(d.get("comm")):
                continue
            info = None
            hit = None
            if args.json or args.cgroup:
                now = time.monotonic()
                hit = infos.get(rec.pid)
                if hit is None or now - hit[0] > 1.0:
                    pi = proc_info(rec.pid)
                    hit = infos[rec.pid] = (now, pi, encoded(pi.to_dict()))
                    if len(infos) > 4096:
                        infos.clear()
                info = hit[1]
                if not pfilter.match_cgroup(info):
                    continue
            n_shown += 1
            if keep:
                shown.append(d)
            if args.json:
                out.write((merged_line(dict(d), hit[2]) if hit is not None else dumps(d)) + "\n")
            else:
                out.write(_line(d) + "\n")
            if args.count and n_shown >= args.count:
                done[0] = True
                sessions.finish("count")
                return
        out.flush()

    def until() -> None:
        handle(sessions.tick())
        out.flush()
        return None

    try:
        sessions.start(libs)
        if args.verbose:
            for lib in libs:
                print(f"undertow ssl: {lib.kind} {lib.path} (pid {lib.pid}): {' '.join(lib.functions)}",
                      file=sys.stderr)
        if not args.json:
            out.write(f"{'TIME':<8} {'PID':>7} {'TID':>7} {'COMM':<16} {'LIBRARY':<18} {'FUNCTION':<18} D "
                      f"{'LENGTH':>6} {'PEER':<22} DATA\n")
            out.flush()
        for batch in sessions.batches(args.duration, args.drain, until):
            handle(batch)
        if not done[0]:
            handle(sessions.drain_extra())
        out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        sessions.close()
    for line in sessions.loss_lines():
        print(line, file=sys.stderr)
    if sessions.skipped_scans:
        print(f"undertow ssl: {sessions.skipped_scans} new processes were not scanned for new TLS library files "
              "(an exec storm: over 500 a second); processes using libraries already probed are covered",
              file=sys.stderr)
    if args.summary:
        from ..tools.bpftool import print_summary

        print_summary(shown, args.json, "PEERS", "peer")
    return 0
