"""Kernel modules: three lists of the same modules, and the taint flags.

- ``/proc/modules`` (what lsmod reads: the kernel's ``modules`` list);
- ``/sys/module/NAME`` with an ``initstate`` file (every loaded module's kobject; built-in
  code has a directory too, without ``initstate``);
- the ``[NAME]`` of module symbols in ``/proc/kallsyms``.

A rootkit that unlinks itself from ``modules`` (``list_del(&THIS_MODULE->list)``) vanishes
from /proc/modules and kallsyms at once but usually keeps its sysfs directory; one that also
deletes its kobject vanishes from all three: then its hooks (the hooks and bpf checks)
are what give it away. ``/proc/sys/kernel/tainted`` keeps the flags a load set even after
the module hides (Documentation/admin-guide/tainted-kernels.rst).
"""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, Set

from .report import Context
from .views import read_small

__all__ = ["check", "TAINTS", "taint_letters"]

CHECK = "modules"

#: bit -> (letter, meaning, a finding?) (Documentation/admin-guide/tainted-kernels.rst)
TAINTS = {
    0: ("P", "a proprietary module was loaded", True),
    1: ("F", "a module was force-loaded", True),
    2: ("S", "SMP with a CPU not designed for it", False),
    3: ("R", "a module was force-unloaded", True),
    4: ("M", "a machine check", False),
    5: ("B", "a bad page was referenced", False),
    6: ("U", "user space asked for the taint", False),
    7: ("D", "the kernel died recently (OOPS or BUG)", False),
    8: ("A", "an ACPI table was overridden", False),
    9: ("W", "the kernel issued a warning", False),
    10: ("C", "a staging driver was loaded", False),
    11: ("I", "a firmware bug workaround", False),
    12: ("O", "an out-of-tree module was loaded", True),
    13: ("E", "an unsigned module was loaded", True),
    14: ("L", "a soft lockup", False),
    15: ("K", "the kernel was live-patched", True),
    16: ("X", "an auxiliary taint (distribution)", False),
    17: ("T", "built with the struct randomization plugin", False),
    18: ("N", "an in-kernel test ran", False),
}


def taint_letters(value: int) -> str:
    return "".join(TAINTS[b][0] for b in sorted(TAINTS) if value >> b & 1)


def check(ctx: Context) -> None:
    """Compare the module lists and read the taint; add findings to ``ctx.report``."""
    rep, proc = ctx.report, ctx.proc
    raw = read_small(os.path.join(proc, "sys/kernel/tainted"), 64)
    try:
        taint = int(raw.strip()) if raw else None
    except ValueError:
        taint = None
    if taint is None:
        rep.not_checked(CHECK, "taint flags", "/proc/sys/kernel/tainted is unreadable")
    else:
        bad = [b for b in sorted(TAINTS) if taint >> b & 1 and TAINTS[b][2]]
        other = [b for b in sorted(TAINTS) if taint >> b & 1 and not TAINTS[b][2]]
        if bad:
            rep.add(CHECK, "medium", f"the kernel is tainted {taint_letters(taint)}: "
                    + "; ".join(TAINTS[b][1] for b in bad),
                    {"/proc/sys/kernel/tainted": f"{taint} ({taint_letters(taint)})",
                     "/proc/modules": "names the modules loaded now; a hidden one is not among them"},
                    "find which module set it: `dmesg | grep -i taint`, the (O)/(E) marks in /proc/modules; "
                    "a taint with no such module listed means it hid or was unloaded", key="taint")
        elif other:
            rep.note(CHECK, f"the kernel is tainted {taint_letters(taint)}",
                     "; ".join(TAINTS[b][1] for b in other) + ": not a module's doing")
    data = read_small(os.path.join(proc, "modules"), 1 << 22)
    if data is None:
        rep.not_checked(CHECK, "/proc/modules", "this kernel cannot load modules (CONFIG_MODULES=n): "
                        "no module can hide", absent=True)
        return
    listed: Set[str] = {line.split()[0] for line in data.decode("utf-8", "replace").splitlines() if line.split()}
    sysfs: Set[str] = set()
    try:
        for name in os.listdir("/sys/module"):
            if os.path.exists(os.path.join("/sys/module", name, "initstate")):
                sysfs.add(name)
    except OSError as e:
        rep.not_checked(CHECK, "/sys/module", e.strerror or str(e))
    ksyms: Dict[str, int] = {}
    kdata = read_small(os.path.join(proc, "kallsyms"), 1 << 26)
    if kdata is None:
        rep.not_checked(CHECK, "/proc/kallsyms", "unreadable")
    else:
        for line in kdata.decode("utf-8", "replace").splitlines():
            if line.endswith("]") and "\t[" in line:
                m = line.rsplit("\t[", 1)[1][:-1]
                ksyms[m] = ksyms.get(m, 0) + 1
    # re-read /proc/modules for anything seen elsewhere only: a module may have just loaded
    # [bpf]: JIT-ed BPF programs' symbols; [__builtin__kprobes], [__builtin__ftrace]: kprobe
    # instruction slots and ftrace trampolines (kernel/kallsyms.c, "kallsyms_show_value" users)
    odd = {m for m in (sysfs | set(ksyms)) - listed if m != "bpf" and not m.startswith("__builtin__")}
    if odd:
        again = read_small(os.path.join(proc, "modules"), 1 << 22) or b""
        listed |= {line.split()[0] for line in again.decode("utf-8", "replace").splitlines() if line.split()}
    for name in sorted(odd - listed):
        ev = {"/proc/modules": f"does not list {name}"}
        if name in sysfs:
            ev["/sys/module"] = f"{name}/initstate exists (a loaded module)"
        if name in ksyms:
            ev["/proc/kallsyms"] = f"{ksyms[name]} symbols of [{name}]"
        rep.add(CHECK, "high", f"module {name} is loaded but hidden from /proc/modules", ev,
                f"ls /sys/module/{name}/sections; look for its ftrace and syscall hooks (hooks check); "
                "reboot from trusted media to remove it", key=name)
