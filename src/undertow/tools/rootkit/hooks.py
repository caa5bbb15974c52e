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
- ``touched_functions`` (6.4+): functions hooked since boot, even if unhooked now;
- ``sys_call_table``'s entries and the ``/proc/net`` seq_operations' pointers against
  kallsyms, read through /proc/kcore (kernelmem.py).

tracefs is only read (never mounted: where it is not mounted, the check says so).
"""

from __future__ import annotations

import os
import re
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Set, Tuple

from .report import Context
from .views import read_small

__all__ = ["check", "parse_enabled_functions", "judge_touched"]

CHECK = "hooks"
DEFINITION_FILES = ("kprobe_events", "uprobe_events", "dynamic_events")


def parse_enabled_functions(text: str) -> List[Dict[str, str]]:
    """Lines of ``enabled_functions`` (and ``touched_functions``): ``{"function", "line",
    "callback", "flags", "count"}`` (``callback``: the ``->`` or ``tramp:`` part, what handles
    the call; ``count``: how many ftrace users hook it now, ``0`` in touched_functions for a
    function no longer hooked, whose callback then names the idle ftrace stub)."""
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
        m = re.match(r"\S+ \((\d+)\)", line)
        out.append({"function": fn, "line": line.strip(), "callback": cb,
                    "flags": "".join(c for c in flags if c.isupper()), "count": m.group(1) if m else ""})
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
    from .kernelmem import check_seq_ops, check_syscall_table

    try:
        ks = Kallsyms(os.path.join(ctx.proc, "kallsyms"))
        ks.text
    except UndertowError as e:
        ctx.report.not_checked(CHECK, "sys_call_table", e.message)
        ctx.report.not_checked(CHECK, "/proc/net seq_operations", e.message)
        return
    check_syscall_table(ctx, ks)
    check_seq_ops(ctx, ks)


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
        _touched(ctx, tfs, _kprobe_targets(defs), _listed_modules(ctx), None)
        return
    targets = _kprobe_targets(defs)
    listed = _listed_modules(ctx)
    for ent in parse_enabled_functions(text):
        _judge_enabled(ctx, ent, targets, listed, "enabled_functions")
    _touched(ctx, tfs, targets, listed, text)


def _listed_modules(ctx: Context) -> Optional[Set[str]]:
    """The module names /proc/modules lists; None when it cannot be read."""
    mods_text = read_small(os.path.join(ctx.proc, "modules"), 1 << 22)
    return None if mods_text is None else {
        ln.split()[0] for ln in mods_text.decode("utf-8", "replace").splitlines() if ln.split()}


def _judge_enabled(ctx: Context, ent: Dict[str, str], targets: Set[str], listed: Optional[Set[str]],
                   view: str) -> None:
    """Judge one function an ftrace user hooks now (a line of ``enabled_functions``, or of
    ``touched_functions`` with a callback)."""
    rep = ctx.report
    fn, cb = ent["function"], ent["callback"]
    line = ent["line"]
    mods = sorted(set(re.findall(r"\[([A-Za-z0-9_]+)\]", line)) - {"bpf"})
    hidden = [m for m in mods if listed is not None and m not in listed]
    if "kprobe" in cb and fn in targets:
        return  # a kprobe_events probe (judged above)
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
    rep.add(CHECK, sev, f"{fn} is hooked through ftrace", {view: ent["line"][:600], "hook": why},
            "find the owner of the callback address (kallsyms, /proc/modules, /sys/module/*/sections); "
            "syscall functions (__x64_sys_*) hooked this way are how module rootkits hide files and pids",
            key=fn)


#: functions module rootkits hook to hide files, processes, sockets and modules (their
#: ftrace hooks outlive their unhooking in touched_functions); kallsyms_lookup_name: a kprobe
#: on it is how a module finds the address of this unexported function (since 5.7)
ROOTKIT_TARGETS = re.compile(
    r"^(__(x64|ia32|arm64|se)_sys_|__do_sys_|ksys_|do_sys_|__sys_|sys_)"
    r"|^(filldir(64)?|proc_pid_readdir|proc_root_readdir|iterate_dir|vfs_readdir|tcp[46]_seq_show|"
    r"udp[46]_seq_show|udp6_seq_show|raw_seq_show|packet_rcv|tpacket_rcv|packet_rcv_spkt|"
    r"find_task_by_vpid|find_get_pid|inet_ioctl|account_process_tick|audit_log_start|"
    r"vfs_read|vfs_write|load_module|do_init_module|kallsyms_lookup_name)$")


def _plain_tracer_filters(tfs: object) -> Set[str]:
    """Functions named by ``set_ftrace_filter`` of the top level and every instance (a
    function tracer someone runs now, reported through current_tracer and instances)."""
    from ...errors import TracefsError

    out: Set[str] = set()
    paths = ["set_ftrace_filter"]
    try:
        paths += [f"instances/{n}/set_ftrace_filter" for n in tfs.instances()]  # type: ignore[attr-defined]
    except (TracefsError, OSError):
        pass
    for path in paths:
        try:
            text = tfs.read(path)  # type: ignore[attr-defined]
        except (TracefsError, OSError):
            continue
        for ln in text.splitlines():
            if ln.strip() and not ln.startswith("#"):
                out.add(ln.split()[0].split(":", 1)[0])
    return out


def judge_touched(entries: List[Dict[str, str]], enabled: Optional[Set[str]], explained: Set[str],
                  total: Optional[int]) -> Tuple[List[Tuple[str, Dict[str, str], str]], Optional[str]]:
    """Which ``touched_functions`` lines (parsed like ``enabled_functions``: the file lists
    every function some ftrace user hooked since boot, kernel/trace/ftrace.c
    ``FTRACE_ITER_TOUCHED``, 6.4+) nothing running explains. ``enabled``: the functions
    ``enabled_functions`` judged (None: it was unreadable); ``explained``: functions a
    kprobe_events line or a function tracer's filter names now, and those undertow's own
    feature probes attach to; ``total``: how many
    functions ftrace can hook (``dyn_ftrace_total_info``).

    Returns ``([(severity, entry, why)], note)``: ``severity`` ``current`` asks for the
    enabled_functions rules (a callback is attached now); ``note`` says a tracer touched
    (nearly) every function since boot, when it did."""
    out: List[Tuple[str, Dict[str, str], str]] = []
    wholesale = len(entries) > 1000 and (total is None or len(entries) * 2 >= total)
    note = None
    if wholesale:
        note = (f"{len(entries)} of {total if total is not None else '?'} functions were hooked since boot: "
                "a function tracer (current_tracer function/function_graph, perf ftrace) ran on all of them; "
                "only functions hooked by a callback that may redirect the call (M) are judged")
    for ent in entries:
        fn, flags = ent["function"], ent.get("flags", "")
        if enabled is not None and fn in enabled:
            continue  # judged from enabled_functions
        if ent.get("count", "0") not in ("", "0"):
            if enabled is None:
                out.append(("current", ent, ""))
            continue  # hooked now, after enabled_functions was read: the next run judges it
        if fn in explained:
            continue
        modified = "M" in flags  # FTRACE_FL_MODIFIED (6.4): an IPMODIFY or direct (trampoline) user
        if wholesale and not modified:
            continue
        if modified:
            out.append(("medium", ent, "hooked since boot by a callback that may change where the call goes "
                                       "(IPMODIFY: an ftrace rootkit, livepatch, a kprobe; or a direct "
                                       "trampoline: a BPF fentry/fexit/LSM program)"))
        elif ROOTKIT_TARGETS.search(fn):
            out.append(("medium", ent, "hooked since boot, and a function module rootkits hook (system calls, "
                                       "directory and /proc/net listings); nothing hooks it now"))
        else:
            out.append(("low", ent, "hooked since boot by an ftrace user (a tracer, a kprobe, a BPF program "
                                    "or a module) that is gone now"))
    return out, note


def _touched(ctx: Context, tfs: object, targets: Set[str], listed: Optional[Set[str]],
             enabled_text: Optional[str]) -> None:
    """``touched_functions`` (kernel 6.4+): hooks since boot, judged by :func:`judge_touched`."""
    from ...errors import TracefsError

    rep = ctx.report
    if not tfs.has("touched_functions"):  # type: ignore[attr-defined]
        rep.not_checked(CHECK, "ftrace touched_functions", "this kernel has no touched_functions (added in "
                        "6.4): functions hooked through ftrace and unhooked again leave no trace to read")
        return
    try:
        text = tfs.read("touched_functions")  # type: ignore[attr-defined]
    except (TracefsError, OSError) as e:
        rep.not_checked(CHECK, "ftrace touched_functions", f"{e} (functions hooked through ftrace since boot "
                        "are not listed)")
        return
    enabled = None if enabled_text is None else {e["function"] for e in parse_enabled_functions(enabled_text)}
    total = None
    try:
        first = tfs.read("dyn_ftrace_total_info").split()  # type: ignore[attr-defined]
        total = int(first[0]) if first and first[0].isdigit() else None
    except (TracefsError, OSError):
        pass
    from ...kernel.featprobes.bpf import attach_targets

    explained = targets | _plain_tracer_filters(tfs) | set(attach_targets())
    got, note = judge_touched(parse_enabled_functions(text), enabled, explained, total)
    if note:
        rep.note(CHECK, "a tracer hooked (nearly) every function since boot", note,
                 {"touched_functions": "many lines"})
    for sev, ent, why in got:
        if sev == "current":
            _judge_enabled(ctx, ent, targets, listed, "touched_functions")
            continue
        fn = ent["function"]
        rep.add(CHECK, sev, f"{fn} was hooked through ftrace since boot", {
            "touched_functions": ent["line"][:600], "now": why},
            "who traced it: your own tracing sessions (bpftrace, perf, trace-cmd), livepatch (taint K), "
            "modules loaded and unloaded (journalctl -k); a rootkit that unhooked itself or hides its "
            "module leaves this line", key=f"touched:{fn}")
