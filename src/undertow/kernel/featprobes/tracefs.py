"""Feature probes of tracefs: read from tracefs itself (files present, the ``README`` syntax
lines); the one that cannot be read (event probes) defines a test event and removes it.
"""

from __future__ import annotations

import errno as _errno
import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Optional, Tuple

from ...errors import UndertowError
from ..perfevent import pmu_type
from ..rawcall import errno_name
from .base import ProbeContext, Unknown

__all__ = ["probe_tracefs", "probe_tracepoints", "probe_syscall_tps", "probe_kprobe_events",
           "probe_uprobe_events", "probe_dynamic_events", "probe_fprobe", "probe_eprobe", "probe_kprobe_btf_args",
           "probe_hist", "no_kprobes_reason"]


def probe_tracefs(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    try:
        t = ctx.tracefs()
    except Unknown as e:
        msg = str(e)
        if ctx.tracefs_detail:
            raise Unknown(f"{msg}: {ctx.tracefs_detail}") from None
        if msg.startswith("unknown:"):
            raise
        return False, msg
    return True, f"at {t.path}"


def _has(ctx: ProbeContext, rel: str) -> bool:
    return bool(ctx.tracefs().has(rel))


def probe_tracepoints(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    if not _has(ctx, "events"):
        return False, "tracefs has no events/ directory (CONFIG_EVENT_TRACING=n)"
    try:
        text = ctx.tracefs().read("available_events")
    except (UndertowError, OSError):
        text = ""
    names = [l for l in text.splitlines() if ":" in l]
    groups = {l.split(":", 1)[0] for l in names}
    if not names:
        return True, "events/ present (available_events unreadable)"
    return True, f"{len(names)} events in {len(groups)} groups"


def probe_syscall_tps(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    if _has(ctx, "events/syscalls"):
        return True, "events/syscalls present"
    return False, "no events/syscalls (CONFIG_FTRACE_SYSCALLS=n)"


def probe_kprobe_events(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    if _has(ctx, "kprobe_events"):
        return True, "kprobe_events present"
    return False, no_kprobes_reason(ctx)


def no_kprobes_reason(ctx: ProbeContext) -> str:
    pmu = pmu_type("kprobe", ctx.roots)
    try:
        has_events = _has(ctx, "kprobe_events")
    except Unknown:
        has_events = None
    if pmu is None and has_events is False:
        return ("the kernel has no kprobe support "
                "(CONFIG_KPROBES=n: no kprobe_events, no kprobe PMU)")
    if has_events is False:
        return "no kprobe_events in tracefs (CONFIG_KPROBE_EVENTS=n)"
    return ("no kprobe PMU in /sys/bus/event_source/devices "
            "(CONFIG_KPROBE_EVENTS=n or kernel < 4.17)")


def probe_uprobe_events(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    if _has(ctx, "uprobe_events"):
        return True, "uprobe_events present"
    return False, "no uprobe_events in tracefs (CONFIG_UPROBE_EVENTS=n)"


def probe_dynamic_events(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    if _has(ctx, "dynamic_events"):
        return True, "dynamic_events present"
    return False, "no dynamic_events in tracefs (kernel < 4.17)"


def probe_fprobe(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    if not _has(ctx, "dynamic_events"):
        return False, "no dynamic_events in tracefs"
    # kernel/trace/trace.c readme_msg lists the "f[:[<group>/][<event>]] <func-name>" syntax
    # only under CONFIG_FPROBE_EVENTS (commit 334e5519c375 "tracing/probes: Add tracepoint
    # support on fprobe_events").
    if "f[:[<group>/][<event>]] <func-name>" in ctx.readme():
        return True, "tracefs README documents f: fprobe events"
    return False, "tracefs README has no f: syntax (CONFIG_FPROBE_EVENTS=n)"


def probe_kprobe_btf_args(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    # CONFIG_PROBE_EVENTS_BTF_ARGS adds "<argname>[->field...]" to the fetcharg syntax
    # (commit b576e09701c7 "tracing/probes: Support function parameters if BTF is available").
    if "<argname>" not in ctx.readme():
        return False, "tracefs README has no <argname> fetcharg (CONFIG_PROBE_EVENTS_BTF_ARGS=n)"
    if not (ctx.is_available("kprobe_events") or ctx.is_available("fprobe")):
        return False, "BTF args are documented but there is neither kprobe_events nor fprobe"
    return True, "probe events accept BTF argument names"


def probe_hist(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    for ev in ("sched/sched_switch", "sched/sched_process_exec", "syscalls/sys_enter_openat"):
        if _has(ctx, f"events/{ev}"):
            if _has(ctx, f"events/{ev}/hist"):
                return True, f"events/{ev}/hist present"
            return False, f"no events/{ev}/hist (CONFIG_HIST_TRIGGERS=n)"
    raise Unknown("unknown: no well-known event to check")


def eprobe_target(ctx: ProbeContext) -> Optional[str]:
    for ev in ("syscalls/sys_enter_getpid", "sched/sched_switch", "raw_syscalls/sys_enter"):
        if _has(ctx, f"events/{ev}"):
            return ev
    return None


def probe_eprobe(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    if not _has(ctx, "dynamic_events"):
        return False, "no dynamic_events in tracefs"
    # The README lists the e: syntax whenever kprobe or uprobe events exist, whether or not
    # CONFIG_EPROBE_EVENTS is set (kernel/trace/trace.c readme_msg), so only defining one
    # tells. A rejected definition leaves nothing behind; an accepted one is removed at once.
    if "<attached-group>.<attached-event>" not in ctx.readme():
        return False, "tracefs README has no e: syntax (kernel < 5.15)"
    if not ctx.roots.live:
        raise Unknown("unknown: the README lists e:, only a live definition can tell")
    if ctx.euid != 0:
        raise Unknown("unknown: needs root to try defining an event probe")
    target = eprobe_target(ctx)
    if target is None:
        raise Unknown("unknown: no event to attach a test event probe to")
    grp = f"undertow_probe_{os.getpid()}"
    t = ctx.tracefs()
    try:
        t.write("dynamic_events", f"e:{grp}/ep {target.replace('/', '.')}\n")
    except (UndertowError, OSError) as e:
        code = getattr(e, "errno", 0) or 0
        if code == _errno.EINVAL:
            why = f"the kernel refused an event probe on {target}: {errno_name(code)}"
            log = getattr(e, "kernel_log", "").strip()
            return False, why + (f": {log.splitlines()[-1].strip()}" if log
                                 else " (CONFIG_EPROBE_EVENTS=n)")
        return False, f"defining an event probe failed: {errno_name(code)}"
    try:
        t.write("dynamic_events", f"-:{grp}/ep\n")
    except (UndertowError, OSError):
        pass
    return True, f"an event probe on {target} was accepted (and removed)"
