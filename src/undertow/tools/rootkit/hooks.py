"""Hooks: what is attached to kernel and user functions through tracefs and ftrace.

- kprobe, uprobe and dynamic event definitions (``kprobe_events``, ``uprobe_events``,
  ``dynamic_events``) and tracefs instances: undertow's own (named
  ``undertow_<pid>_<start>_<pidns>_<n>``, backends/leftovers.py) are skipped while their
  owner runs; a stale one is reported low; anyone else's medium;
- ``enabled_functions``: every function an ftrace user hooks now, with its callback
  (Documentation/trace/ftrace.rst), the way modern module rootkits hook syscalls
  (``ftrace_set_filter_ip`` + ``register_ftrace_function``); a kprobe on a function that
  no ``kprobe_events`` line names (kprobes a module registered) too;
- the top-level tracer (``current_tracer``) when it is not ``nop``;
- ``sys_call_table``'s entries against kallsyms, read through /proc/kcore (kernelmem.py).

tracefs is only read (never mounted: where it is not mounted, the check says so).
"""

from __future__ import annotations

import os
import re
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Set

from .report import Context
from .views import read_small

__all__ = ["check", "parse_enabled_functions"]

CHECK = "hooks"
DEFINITION_FILES = ("kprobe_events", "uprobe_events", "dynamic_events")


def parse_enabled_functions(text: str) -> List[Dict[str, str]]:
    """Lines of ``enabled_functions``: ``{"function", "line", "callback"}`` (the ``->``
    part or ``tramp:`` part, what handles the call)."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(("#", "\t", " ")):
            if out and line.strip():
                out[-1]["line"] += " " + line.strip()
                if "->" in line:
                    out[-1]["callback"] = line.split("->", 1)[1].strip()
            continue
        fn = line.split()[0]
        cb = ""
        if "->" in line:
            cb = line.split("->", 1)[1].strip()
        elif "tramp:" in line:
            cb = line.split("tramp:", 1)[1].strip()
        head = line.split("\t", 1)[0]
        flags = head.split(")", 1)[1] if ")" in head else ""
        out.append({"function": fn, "line": line.strip(), "callback": cb,
                    "flags": "".join(c for c in flags if c.isupper())})
    return out


def _kprobe_targets(defs: Dict[str, str]) -> Set[str]:
    """Functions named by kprobe definitions (``p:G/E FUNC+OFF ...``)."""
    out = set()
    for line in defs.get("kprobe_events", "").splitlines() + defs.get("dynamic_events", "").splitlines():
        f = line.split()
        if len(f) >= 2 and f[0][:1] in ("p", "r"):
            tgt = f[1].split("+", 1)[0]
            if ":" in tgt:  # MOD:FUNC
                tgt = tgt.split(":", 1)[1]
            out.add(tgt)
    return out


def _syscall_table(ctx: Context) -> None:
    from ...errors import UndertowError
    from ...kernel.kallsyms import Kallsyms
    from .kernelmem import check_syscall_table

    try:
        ks = Kallsyms(os.path.join(ctx.proc, "kallsyms"))
        ks.text
    except UndertowError as e:
        ctx.report.not_checked(CHECK, "sys_call_table", e.message)
        return
    check_syscall_table(ctx, ks)


def check(ctx: Context) -> None:
    """Read tracefs's hook lists; add findings to ``ctx.report``."""
    from ...backends.leftovers import owner_of, survey
    from ...errors import TracefsError
    from ...kernel.roots import Roots
    from ...kernel.tracefs import Tracefs, find_tracefs

    rep = ctx.report
    root = find_tracefs(Roots())
    if root is None:
        rep.not_checked(CHECK, "tracefs", "not mounted (undertow rootkit mounts nothing): "
                        "mount -t tracefs nodev /sys/kernel/tracing and run again")
        return
    tfs = Tracefs(root)
    try:
        verdicts = {str(item): item for item in survey(tfs, ctx.proc)}
    except (TracefsError, OSError) as e:
        rep.not_checked(CHECK, "undertow's own tracefs names", str(e))
        verdicts = {}
    defs: Dict[str, str] = {}
    for dfile in DEFINITION_FILES:
        if not tfs.has(dfile):
            kind = dfile.split("_")[0]
            rep.not_checked(CHECK, dfile, f"this kernel has no {kind} events", absent=True)
            continue
        try:
            defs[dfile] = tfs.read(dfile)
        except (TracefsError, OSError) as e:
            rep.not_checked(CHECK, dfile, str(e))
    seen: Set[str] = set()
    for dfile in DEFINITION_FILES:
        for line in defs.get(dfile, "").splitlines():
            head = line.split(" ", 1)[0]
            kind, sep, ev = head.partition(":")
            if not sep or "/" not in ev or ev in seen:
                continue
            seen.add(ev)  # dynamic_events repeats kprobe_events and uprobe_events
            group = ev.split("/", 1)[0]
            if owner_of(group) is not None:
                item = verdicts.get(f"kprobe_events {ev}") or \
                    verdicts.get(f"uprobe_events {ev}")
                if item is None or item.alive is not False:
                    continue  # a running undertow's (or one that cannot be judged from here)
                rep.add(CHECK, "low", f"a probe left by a killed undertow: {ev}",
                        {dfile: line[:300], "owner": item.why}, "undertow cleanup removes it", key=ev)
                continue
            what = {"kprobe_events": "kprobe", "uprobe_events": "uprobe"}.get(dfile, "dynamic event")
            rep.add(CHECK, "medium", f"a {what} someone defined: {ev}", {dfile: line[:300],
                                                                       "definer": "not undertow"},
                    "who made it: perf probe, a tracer, or a rootkit watching a function; "
                    f"is it enabled (events/{ev}/enable)? who reads it?", key=ev)
    try:
        instances = tfs.instances()
    except (TracefsError, OSError) as e:
        rep.not_checked(CHECK, "tracefs instances", str(e))
        instances = []
    for name in sorted(instances):
        if owner_of(name) is not None:
            item = verdicts.get(f"instances/{name}")
            if item is None or item.alive is not False:
                continue
            rep.add(CHECK, "low", f"a tracefs instance left by a killed undertow: {name}",
                    {"tracefs instances": name, "owner": item.why}, "undertow cleanup removes it", key=name)
            continue
        rep.add(CHECK, "medium", f"a tracefs instance someone made: {name}",
                {"tracefs instances": f"instances/{name}", "maker": "not undertow"},
                f"what it traces: instances/{name}/set_event, current_tracer, trace_pipe readers "
                "(a private instance hides a tracer's output from the top-level trace)", key=name)
    try:
        tracer = tfs.read("current_tracer").strip()
        if tracer and tracer != "nop":
            rep.add(CHECK, "medium", f"the top-level tracer is {tracer}", {"current_tracer": tracer},
                    "who set it: set_ftrace_filter names the traced functions", key="current_tracer")
    except (TracefsError, OSError):
        pass
    _syscall_table(ctx)
    try:
        text = tfs.read("enabled_functions")
    except (TracefsError, OSError) as e:
        rep.not_checked(CHECK, "ftrace enabled_functions", f"{e} (functions hooked through ftrace are not "
                        "listed: a module's ftrace hooks are not seen)")
        return
    targets = _kprobe_targets(defs)
    mods_text = read_small(os.path.join(ctx.proc, "modules"), 1 << 22)
    listed = None if mods_text is None else {
        ln.split()[0] for ln in mods_text.decode("utf-8", "replace").splitlines() if ln.split()}
    for ent in parse_enabled_functions(text):
        fn, cb = ent["function"], ent["callback"]
        line = ent["line"]
        mods = sorted(set(re.findall(r"\[([A-Za-z0-9_]+)\]", line)) - {"bpf"})
        hidden = [m for m in mods if listed is not None and m not in listed]
        if "kprobe" in cb and fn in targets:
            continue  # a kprobe_events probe (judged above)
        if "bpf_trampoline" in line:
            sev, why = "medium", "a BPF trampoline (fentry/fexit/LSM program): see the bpf check"
        elif hidden:
            sev, why = "high", f"a callback in module {', '.join(hidden)}, which /proc/modules does not list"
        elif "kprobe" in cb:
            sev, why = "high", "a kprobe that no kprobe_events line defines (registered by a module)"
        elif "I" in ent.get("flags", ""):
            sev, why = "high", ("the callback may change where the call goes (IPMODIFY): how ftrace rootkits "
                                "replace a function (livepatch does it too: taint K)")
        elif re.search(r"\(0x[0-9a-f]+\)|->0x[0-9a-f]+", line) or not cb:
            sev, why = "high", "a callback at an address no symbol names (a hidden module?)"
        else:
            sev, why = "medium", "an ftrace callback" + (f" in module {', '.join(mods)}" if mods else "")
        rep.add(CHECK, sev, f"{fn} is hooked through ftrace", {"enabled_functions": ent["line"][:600],
                                                               "hook": why},
                "find the owner of the callback address (kallsyms, /proc/modules, /sys/module/*/sections); "
                "syscall functions (__x64_sys_*) hooked this way are how module rootkits hide files and pids",
                key=fn)
