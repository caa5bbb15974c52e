"""``undertow inbound``: inbound connection attempts — completed, accepted, refused, dropped."""

from __future__ import annotations

import argparse
import sys
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..tools.bpftool import add_options

    p = sub.add_parser(
        "inbound", parents=[common],
        help="who connects in: handshakes, accepts, refused SYNs, drops with the kernel's reason",
        description="Every inbound attempt on this host: a TCP handshake completed (and whether the "
                    "application accepted it, with the process), a SYN refused because nothing listens "
                    "(the kernel sends a RST), a packet dropped with the kernel's drop reason (full accept "
                    "queue, firewall...), a UDP datagram to a closed port. No network sensor, no kprobes: "
                    "tracepoints sock:inet_sock_set_state and skb:kfree_skb, and accept() returns, with BPF "
                    "reading the packet headers. See docs/tools/inbound.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fields (--json): ts outcome proto family saddr sport daddr dport reason syn sock fd pid comm "
               "listener_pid listener_comm (+ ppid uid argv cwd exe cgroup container parents for accepted)\n"
               "outcomes: handshake accepted refused dropped udp-closed\n"
               "examples:\n  undertow inbound\n  undertow inbound --port 22 --port 443 --json\n"
               "  undertow inbound --duration 600 --summary",
    )
    add_options(p, "events")
    from ..options import port

    p.add_argument("--port", type=port, action="append", default=[],
                   help="only this local port, 0-65535 (repeatable)")
    p.set_defaults(func=run)
    return p


def hook_set() -> "Tuple[str, bool]":
    """(``kprobes`` or ``tracepoints``; whether ``skb:kfree_skb`` has ``rx_sk``), as
    :func:`undertow.tools.hooksets.choose` decides it."""
    from ..tools.hooksets import choose

    c = choose("inbound")
    return c.hooks, bool(c.extra.get("rx_sk"))


def run(args: argparse.Namespace) -> int:
    from ..kernel import Kernel
    from ..output.text import escape
    from ..tools.bpftool import run_tool
    from ..tools.common import cell, ns_inode, ns_note
    from ..tools.inbound import Listeners, drop_reasons, parse_record, program, seed_listeners

    reasons = drop_reasons(Kernel())
    from ..tools.hooksets import choose

    choice = choose("inbound")
    hooks, rx_sk = choice.hooks, bool(choice.extra.get("rx_sk"))
    listeners = Listeners()
    host = {"netns": listeners.host, "pidns": ns_inode("pid")}
    missed: Dict[Any, float] = {}
    ports = set(args.port)
    # the tool's --pid/--comm filter the accepting process; attempts have no process
    want_pid, args.pid = args.pid, None

    def parse(rec: Any) -> Optional[Dict[str, Any]]:
        d = parse_record(rec, reasons)
        if d is None or (ports and d.get("dport") not in ports):
            return None
        if want_pid is not None and d.get("pid") not in (None, want_pid):
            return None
        netns = d.get("netns")
        who = listeners.lookup(d["proto"], d["dport"], netns)
        key = (netns, d["proto"], d["dport"])
        if who is None and d["outcome"] in ("handshake", "accepted", "dropped", "knock") and \
                time.monotonic() - missed.get(key, 0.0) > 1.0:
            # a listener that appeared after start: rescan /proc (at most once a second per port)
            listeners.refresh()
            missed[key] = time.monotonic()
            who = listeners.lookup(d["proto"], d["dport"], netns)
        d["listener_pid"], d["listener_comm"] = who if who else (None, None)
        d.setdefault("pid", None)
        d.setdefault("comm", None)
        return d

    def line(d: Dict[str, Any]) -> str:
        lst = f"{escape(d['listener_comm'])}[{d['listener_pid']}]" if d.get("listener_pid") else "-"
        extra = f"by {escape(d['comm'])}[{d['pid']}]" if d["outcome"] == "accepted" else (d.get("reason") or "")
        src = f"{d['saddr']}:{d['sport']}"
        from ..output.text import hms_now
        return (f"{hms_now()} {cell(d['outcome'], 10)} {cell(d['proto'], 3)} {cell(src, 28)} "
                f"{d['dport']:>5} {cell(lst, 20)} {extra}{ns_note(d, host)}")

    def seed(session: Any) -> None:
        if hooks == "tracepoints":  # the kprobe set reads the listener from tcp_conn_request's argument
            n = seed_listeners(listeners.tcp_fds)
            if args.verbose:
                print(f"undertow inbound: {n} listening sockets shown to the program", file=sys.stderr)

    header = f"{'TIME':<8} {'OUTCOME':<10} {'P':<3} {'FROM':<28} {'PORT':>5} {'LISTENER':<20} DETAILS"
    shown = run_tool(args, "inbound", program(hooks, rx_sk), parse, header, line,
                     hooks=choice.text(), on_start=seed)
    if args.summary:
        _summary(shown, args.json)
    return 0


def _summary(shown: List[Dict[str, Any]], as_json: bool) -> None:
    """Sources ranked by attempts; handshakes never accepted are counted apart."""
    import json
    import sys

    accepted = {d.get("sock") for d in shown if d["outcome"] == "accepted"}
    rows: Dict[Any, Dict[str, Any]] = {}
    for d in shown:
        if d["outcome"] == "accepted":
            continue
        k = d.get("saddr")
        r = rows.setdefault(k, {"count": 0, "first": d["ts"], "last": d["ts"], "ports": set(), "outcomes": {}})
        r["count"] += 1
        r["last"] = d["ts"]
        r["ports"].add(d["dport"])
        o = d["outcome"]
        if o == "handshake" and d.get("sock") not in accepted:
            o = "not-accepted"
        r["outcomes"][o] = r["outcomes"].get(o, 0) + 1
    ranked = sorted(rows.items(), key=lambda kv: -kv[1]["count"])
    if as_json:
        sys.stdout.write(json.dumps({"summary": [
            {"saddr": k, "count": v["count"], "first_ts": v["first"], "last_ts": v["last"],
             "ports": sorted(v["ports"]), "outcomes": v["outcomes"]} for k, v in ranked]}) + "\n")
        return
    from ..tools.common import cell

    sys.stderr.write(f"\n{'COUNT':>7} {'FROM':<40} {'PORTS':<20} OUTCOMES\n")
    for k, v in ranked[:40]:
        # whole values, never cut; past 6 ports "+N" says how many more (JSON lists them all)
        ps = sorted(v["ports"])
        ports = ",".join(str(p) for p in ps[:6]) + (f" +{len(ps) - 6}" if len(ps) > 6 else "")
        outs = ", ".join(f"{o} {n}" for o, n in sorted(v["outcomes"].items()))
        sys.stderr.write(f"{v['count']:>7} {cell(k, 40)} {cell(ports, 20)} {outs}\n")
