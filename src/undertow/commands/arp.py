"""``undertow arp``: ARP requests and replies, with the responsible process, spoofing flags."""

from __future__ import annotations

import argparse
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..tools.bpftool import add_options

    p = sub.add_parser(
        "arp", parents=[common],
        help="ARP requests and replies, with the process behind AF_PACKET senders; gratuitous ARP and "
             "MAC changes flagged",
        description="Every ARP frame sent or received: requests and replies with MAC and IP addresses, the "
                    "process when one sent it through an AF_PACKET socket (arpspoof, scapy, arping), the "
                    "kernel's own ARP marked as such; gratuitous ARP and a MAC change for a known IP are "
                    "flagged. Hooks: net:net_dev_queue and net:netif_receive_skb with BPF reading the frame "
                    "(no kprobes, no packet capture). See docs/tools/arp.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="fields (--json): ts direction interface op sender_mac sender_ip target_mac target_ip gratuitous "
               "mac_changed_from origin pid comm error netns pidns socket_inode (+ process details for origin=process)\n"
               "examples:\n  undertow arp\n  undertow arp --json --duration 600 --summary",
    )
    add_options(p, "frames")
    p.set_defaults(func=run)
    return p


def _line(d: Dict[str, Any], host: Dict[str, Any]) -> str:
    from ..output.text import escape
    from ..tools.common import ns_note

    if d.get("pid"):
        who = f"{d['pid']:>7} {escape(d['comm'] or '?'):<14}"
    else:
        who = f"{'-':>7} {'(' + d['origin'] + ')':<14}"
    flags = []
    if d["gratuitous"]:
        flags.append("GRATUITOUS")
    if d["mac_changed_from"]:
        flags.append(f"MAC CHANGED from {d['mac_changed_from']}")
    from ..output.text import hms_now
    return (f"{hms_now()} {who} {d['direction']:<3} {escape(d['interface']):<8} "
            f"{d['op']:<7} {d['sender_ip']}={d['sender_mac']} -> {d['target_ip']} {' '.join(flags)}"
            f"{ns_note(d, host)}").rstrip()


def run(args: argparse.Namespace) -> int:
    import sys

    from ..tools.arp import Parser, program, seed
    from ..tools.hooksets import choose
    from ..tools.bpftool import print_summary, run_tool
    from ..tools.common import ns_inode

    host = {"netns": ns_inode("net"), "pidns": ns_inode("pid")}
    parser = Parser()

    def start(session: Any) -> None:
        owners = seed(session)
        parser.owners.update(owners)
        if args.verbose:
            print(f"undertow arp: {len(owners)} packet socket(s) open before the start found (sock_diag, /proc)",
                  file=sys.stderr)

    header = f"{'TIME':<8} {'PID':>7} {'WHO':<14} {'DIR':<3} {'IFACE':<8} {'OP':<7} SENDER -> TARGET"
    choice = choose("arp")
    shown = run_tool(args, "arp", program(choice.hooks == "kprobes"), parser, header, lambda d: _line(d, host),
                     on_start=start, hooks=choice.text())
    if args.summary:
        print_summary(shown, args.json, "TARGETS", "target_ip")
    return 0
