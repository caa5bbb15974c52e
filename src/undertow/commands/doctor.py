"""``undertow doctor``: what this kernel offers, which probe kinds and backends work here,
and for every missing one why and what to use instead.

Text output fits 100 columns; ``--json`` prints one object (``kernel``, ``arch``,
``facts``, ``features`` {name: {available, reason, instead?}}, ``backends``, ``tools``
{tool: {hooks, detail, why}}: the hook set each responder tool uses here, from
:func:`undertow.tools.hooksets.all_choices`, the code the tools run).
Feature probes are cached per boot; ``--refresh`` probes again.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

from ..kernel import Kernel
from ..kernel.features import PROBE_KINDS, Feature, Features, detect_features
from ..output.text import escape

WIDTH = 100

# Features shown under "other facts" (the probe kinds table covers the rest).
_OTHER = ["tracefs", "syscall_tracepoints", "dynamic_events", "kprobe_btf_args",
          "hist_triggers", "btf", "bpf"]


def register(sub: "argparse._SubParsersAction",
             common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "doctor",
        parents=[common],
        help="show what this kernel offers and which probe kinds will work",
        description="Probe the running kernel: tracefs, kprobes, uprobes, BTF and what BPF "
        "programs really load and attach. Every missing feature comes with the reason and "
        "what to use instead.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  undertow doctor            # table of probe kinds and backends\n"
        "  undertow doctor --json     # one JSON object: {\"features\": {name: {available, "
        "reason}}, ...}\n"
        "  undertow doctor --refresh  # ignore the per-boot cache and probe again\n\n"
        "Probes that need root (BPF, tracefs) are reported as unknown when not run as root; the\n"
        "ptrace section says what any user can trace without them (docs/ptrace.md).",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--refresh", action="store_true", help="ignore the per-boot feature cache")
    p.set_defaults(func=run, attaches=False)  # creates nothing: SIGINT/SIGTERM end it at once (cli.main)
    return p


def run(args: argparse.Namespace) -> int:
    kernel = Kernel()
    feats = detect_features(kernel, refresh=bool(getattr(args, "refresh", False)))
    kernel._features = feats  # share the fresh result with anything else using this Kernel
    from ..tools.hooksets import all_choices

    ptrace = ptrace_facts()
    tools = all_choices(kernel)
    out = sys.stdout
    if getattr(args, "json", False):
        out.write(render_json(feats, ptrace, tools) + "\n")
    else:
        out.write(render_text(feats, ptrace=ptrace, tools=tools))
    return 0


def ptrace_facts() -> "Optional[Dict[str, Any]]":
    """What ptrace offers this user (:func:`undertow.kernel.ptrace.probe_ptrace`, tested on a
    child of its own), None on an architecture the ptrace backend does not know."""
    import os

    from ..kernel.ptrace import AUDIT_ARCH, probe_ptrace

    if os.uname().machine not in AUDIT_ARCH:
        return None
    try:
        return probe_ptrace()
    except OSError as e:
        return {"available": False, "reason": f"could not test: {e}", "syscall_info": False, "seccomp": False,
                "yama_scope": "", "attach": ""}


def render_json(feats: Features, ptrace: "Optional[Dict[str, Any]]" = None,
                tools: "Optional[List[Any]]" = None) -> str:
    """The ``--json`` document (keys sorted within features for stable diffs); ``ptrace``
    (what :func:`ptrace_facts` found) under the key ``"ptrace"``; ``tools``
    (:class:`undertow.tools.hooksets.Choice` per responder tool) under ``"tools"``."""
    doc = feats.to_json()
    if ptrace is not None:
        doc["ptrace"] = ptrace
    if tools is not None:
        doc["tools"] = {c.tool: c.to_json() for c in tools}
    return json.dumps(doc, indent=2, ensure_ascii=True)


def render_tools(tools: "List[Any]", width: int = WIDTH) -> List[str]:
    """The "responder tools" section: each tool's hook set and why it was chosen."""
    lines = ["responder tools: the hook set each uses here (-v on a tool and --json name the hooks)"]
    for c in tools:
        lines += _wrap("  " + c.tool.ljust(11) + c.hooks.ljust(14), c.why, 27, width)
    return lines


def _status(f: Optional[Feature]) -> str:
    if f is None or f.available is None:
        return "?"
    return "yes" if f.available else "no"


def _wrap(prefix: str, text: str, indent: int, width: int = WIDTH) -> List[str]:
    body = textwrap.wrap(escape(text), width=width - indent, break_long_words=True,
                         break_on_hyphens=False) or [""]
    lines = [prefix.ljust(indent) + body[0]]
    lines += [" " * indent + b for b in body[1:]]
    return lines


def render_text(feats: Features, width: int = WIDTH, ptrace: "Optional[Dict[str, Any]]" = None,
                tools: "Optional[List[Any]]" = None) -> str:
    """Human report: kernel, privileges, the probe-kind table, other facts, the responder
    tools' hook sets (``tools``: :class:`undertow.tools.hooksets.Choice` list), what ptrace
    offers (``ptrace``: :func:`ptrace_facts`), a summary."""
    facts: Dict[str, Any] = feats.facts
    lines: List[str] = []
    lines += _wrap("kernel", f"{feats.kernel} ({feats.arch})", 11, width)
    caps = facts.get("capabilities") or []
    if facts.get("root"):
        who = "root"
    else:
        who = f"uid {facts.get('euid', '?')} (not root)"
    lines += _wrap("user", who + ("; capabilities: " + " ".join(caps) if caps else
                                  "; no tracing capabilities"), 11, width)
    sec = (f"lockdown {facts.get('lockdown', 'unknown')}, kptr_restrict "
           f"{facts.get('kptr_restrict', '?')}, perf_event_paranoid "
           f"{facts.get('perf_event_paranoid', '?')}, unprivileged_bpf_disabled "
           f"{facts.get('unprivileged_bpf_disabled', '?')}")
    lines += _wrap("security", sec, 11, width)
    if not facts.get("root"):
        lines += _wrap("note", "not running as root: tracefs and BPF probes need root (or "
                       "CAP_BPF + CAP_PERFMON); they show '?' below. Run 'sudo undertow doctor' "
                       "for the full picture. Without them, ptrace (below) traces the syscalls of "
                       "your own processes.", 11, width)
    lines.append("")

    indent = 8 + 20 + 5
    lines.append("backend".ljust(8) + "probe kind".ljust(20) + "ok".ljust(5) + "why / instead")
    lines.append("-" * min(width, 99))
    for backend, kind, name in PROBE_KINDS:
        f = feats.get(name)
        prefix = backend.ljust(8) + kind.ljust(20) + _status(f).ljust(5)
        reason = f.reason if f else "not probed"
        lines += _wrap(prefix, reason, indent, width)
        if f is not None and f.available is False and f.instead:
            lines += _wrap("", "instead: " + f.instead, indent, width)
    lines.append("")
    lines.append("other features")
    for name in _OTHER:
        f = feats.get(name)
        if f is None:
            continue
        prefix = "  " + name.ljust(26) + _status(f).ljust(5)
        lines += _wrap(prefix, f.reason, 33, width)
        if f.available is False and f.instead:
            lines += _wrap("", "instead: " + f.instead, 33, width)
    lines.append("")
    if tools:
        lines += render_tools(tools, width)
        lines.append("")
    if ptrace is not None:
        lines += _ptrace_lines(feats, ptrace, width)
        lines.append("")
    lines += _summary(feats, width, ptrace)
    if feats.from_cache:
        lines.append("(cached for this boot; --refresh probes again)")
    return "\n".join(lines) + "\n"


def _ptrace_lines(feats: Features, p: "Dict[str, Any]", width: int) -> List[str]:
    """The ptrace section: syscalls of one's own processes, without tracefs or BPF."""
    out = ["ptrace (syscall lines for one process: undertow trace -c CMD / -p PID, docs/ptrace.md)"]
    out += _wrap("  " + "ptrace".ljust(26) + ("yes" if p.get("available") else "no").ljust(5),
                 str(p.get("reason", "")), 33, width)
    out += _wrap("  " + "attach (-p) to".ljust(31), str(p.get("attach", "")), 33, width)
    out += _wrap("  " + "seccomp filter (-c)".ljust(26) + ("yes" if p.get("seccomp") else "no").ljust(5),
                 "a command stops only at the syscalls traced" if p.get("seccomp") else
                 "every syscall of a command stops (slower)", 33, width)
    out += _wrap("  " + "PTRACE_GET_SYSCALL_INFO".ljust(26) + ("yes" if p.get("syscall_info") else "no").ljust(5),
                 "syscall number, arguments, return value at each stop (Linux 5.3+)" if p.get("syscall_info")
                 else "needed by the ptrace backend (Linux 5.3+)", 33, width)
    if not feats.facts.get("root"):
        out += _wrap("  denied", "other users' processes, setuid programs and processes already traced "
                     "(strace, gdb); tracepoints of other kinds, kprobes, uprobes and BPF (tracefs and bpf(2) "
                     "need root or CAP_BPF + CAP_PERFMON)", 33, width)
    return out


def _summary(feats: Features, width: int, ptrace: "Optional[Dict[str, Any]]" = None) -> List[str]:
    backends = feats.backends()
    out: List[str] = []
    for backend in ("ftrace", "bpf"):
        b = backends.get(backend, {})
        ok_kinds = [k for k, v in b.get("kinds", {}).items() if v["available"]]
        if b.get("available") and ok_kinds:
            text = ", ".join(ok_kinds)
        elif b.get("available"):
            text = "nothing (" + b.get("reason", "") + ")"
        else:
            why = str(b.get("reason", "unknown"))
            text = "not usable: " + (why[len("unknown: "):] if why.startswith("unknown: ") else why)
        out += _wrap(f"you can use ({backend}):", text, 25, width)
    if ptrace is not None:
        ok = ptrace.get("available") and ptrace.get("syscall_info")
        out += _wrap("you can use (ptrace):", "syscall tracepoints of your own processes (-c CMD, -p PID)" if ok
                     else "not usable: " + str(ptrace.get("reason") or "PTRACE_GET_SYSCALL_INFO is missing"),
                     25, width)
    kinds: Dict[str, List[Optional[bool]]] = {}
    for _, kind, name in PROBE_KINDS:
        if "output" in kind:
            continue
        f = feats.get(name)
        kinds.setdefault(kind, []).append(f.available if f else None)
    missing = [k for k, v in kinds.items() if v and all(a is False for a in v)]
    unknown = [k for k, v in kinds.items() if not any(v) and any(a is None for a in v)]
    if missing:
        out += _wrap("not on this kernel:", ", ".join(missing), 25, width)
    if unknown:
        out += _wrap("could not check:", ", ".join(unknown), 25, width)
    return out
