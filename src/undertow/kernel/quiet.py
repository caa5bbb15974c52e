"""Tracepoints that exist but stay silent until a sysctl turns their source on.

The scheduler's ``sched_stat_wait``/``sleep``/``iowait``/``blocked`` events fire only
while schedstats are collected: kernel/sched/stats.c calls them under
``schedstat_enabled()``, the static key behind ``kernel.sched_schedstats``
(Documentation/admin-guide/sysctl/kernel.rst, "sched_schedstats"; off by default since
4.6, commit cb2517653fcc). ``sched_stat_runtime`` does not depend on it. undertow only
says so: it never changes a sysctl.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple

    from .roots import Roots

__all__ = ["SYSCTL_GATED", "silent_reason"]

#: ``group:event`` -> (sysctl name, what it turns on)
SYSCTL_GATED: Dict[str, Tuple[str, str]] = {
    f"sched:sched_stat_{what}": ("kernel.sched_schedstats", "scheduler statistics")
    for what in ("wait", "sleep", "iowait", "blocked")
}


def silent_reason(roots: "Roots", event: str) -> Optional[str]:
    """Why tracepoint ``event`` (``group:event``) will record nothing on this kernel as it
    is set now (a sentence naming the sysctl), or None (it can fire, or unknown)."""
    gate = SYSCTL_GATED.get(event)
    if gate is None:
        return None
    name, what = gate
    try:
        with open(roots.proc_path("sys", *name.split(".")), "rb") as f:
            value = f.read().strip()
    except OSError:
        return None
    if value != b"0":
        return None
    return (f"{event.replace(':', '/')} fires only while {what} are collected, and {name} is 0 here: "
            f"expect no events (sysctl -w {name}=1 turns them on; undertow leaves it as it is)")
