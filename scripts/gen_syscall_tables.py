#!/usr/bin/env python3
"""Regenerate src/undertow/kernel/syscall_table.py from the Linux UAPI headers (a dev-time
step: undertow itself reads no headers at run time).

    python3 scripts/gen_syscall_tables.py   # needs linux-libc-dev (Debian)

The table maps each 64-bit syscall number to the name of its ftrace syscall events
(``syscalls:sys_enter_<name>``), which is the name of the kernel's entry point
(``SYSCALL_DEFINEn(<name>, ...)``), not always the UAPI name: x86_64's ``stat`` (4) enters
``sys_newstat``, ``umount2`` enters ``sys_umount`` (arch/x86/entry/syscalls/syscall_64.tbl,
4th column). The generic table (aarch64) names entry points in its ``__SYSCALL()`` lines.
"""

import os
import re

X86 = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
GENERIC = "/usr/include/asm-generic/unistd.h"
OUT = os.path.join(os.path.dirname(__file__), "..", "src", "undertow", "kernel", "syscall_table.py")

# syscall_64.tbl rows whose entry point is not sys_<name> ("" : no entry point, never traced)
X86_ENTRY = {
    "stat": "newstat", "fstat": "newfstat", "lstat": "newlstat", "uname": "newuname", "umount2": "umount",
    "sendfile": "sendfile64", "_sysctl": "", "uselib": "", "create_module": "", "get_kernel_syms": "",
    "query_module": "", "nfsservctl": "", "getpmsg": "", "putpmsg": "", "afs_syscall": "", "tuxcall": "",
    "security": "", "set_thread_area": "", "get_thread_area": "", "lookup_dcookie": "", "epoll_ctl_old": "",
    "epoll_wait_old": "", "vserver": "",
}

# Newer than this machine's headers (Linux 6.19 arch/x86/entry/syscalls/syscall_64.tbl; from
# 424 on the numbers are shared by every architecture, scripts/syscall.tbl)
NEWER_COMMON = {
    451: "cachestat", 452: "fchmodat2", 454: "futex_wake", 455: "futex_wait", 456: "futex_requeue",
    457: "statmount", 458: "listmount", 459: "lsm_get_self_attr", 460: "lsm_set_self_attr",
    461: "lsm_list_modules", 462: "mseal", 463: "setxattrat", 464: "getxattrat", 465: "listxattrat",
    466: "removexattrat", 467: "open_tree_attr", 468: "file_getattr", 469: "file_setattr", 470: "listns",
}
NEWER_X86_64 = {335: "uretprobe", 336: "uprobe", 453: "map_shadow_stack"}

# arch/arm64/include/asm/unistd.h and Makefile.syscalls: what arm64 wants of the generic table
ARM64_WANTS = {"__ARCH_WANT_RENAMEAT", "__ARCH_WANT_NEW_STAT", "__ARCH_WANT_SET_GET_RLIMIT",
               "__ARCH_WANT_SYS_CLONE3", "__ARCH_WANT_MEMFD_SECRET"}


def x86_64():
    out = {}
    for m in re.finditer(r"#define __NR_(\w+) (\d+)", open(X86).read()):
        name, nr = m.group(1), int(m.group(2))
        entry = X86_ENTRY.get(name, name)
        if entry:
            out[nr] = entry
    for table in (NEWER_COMMON, NEWER_X86_64):
        for nr, name in table.items():
            out.setdefault(nr, name)
    return out


def _true(cond):
    cond = cond.strip()
    if cond.startswith("ifdef "):
        return cond[6:].strip() in ARM64_WANTS
    if cond.startswith("ifndef "):
        return cond[7:].strip() not in ARM64_WANTS | {"__SYSCALL"} and cond[7:].strip() != "__ARCH_NOMMU"
    if cond.startswith("if "):
        c = cond[3:]
        c = re.sub(r"defined\((\w+)\)", lambda m: "True" if m.group(1) in ARM64_WANTS else "False", c)
        c = c.replace("__BITS_PER_LONG", "64").replace("||", " or ").replace("&&", " and ").replace("!=", " != ")
        c = re.sub(r"!(?!=)", " not ", c)
        return bool(eval(c))  # noqa: S307 - our own header's #if lines, dev time only
    raise ValueError(cond)


def aarch64():
    nrs, out, stack = {}, {}, []
    for line in open(GENERIC):
        line = line.strip()
        if line.startswith("#if"):
            stack.append(_true(line[1:]))
            continue
        if line.startswith("#else"):
            stack[-1] = not stack[-1]
            continue
        if line.startswith("#endif"):
            stack.pop()
            continue
        if not all(stack):
            continue
        m = re.match(r"#define (__NR(?:3264)?_\w+) (\d+)$", line)
        if m:
            nrs[m.group(1)] = int(m.group(2))
            continue
        m = re.match(r"__(?:SYSCALL|SC_COMP|SC_3264|SC_COMP_3264)\((__NR(?:3264)?_\w+),\s*(\w+)(?:,\s*(\w+))?", line)
        if m and m.group(1) in nrs:
            entry = m.group(3) if line.startswith("__SC_3264") else m.group(2)
            if line.startswith("__SC_COMP_3264"):
                entry = m.group(3)
            if entry and entry.startswith("sys_") and entry != "sys_ni_syscall":
                out[nrs[m.group(1)]] = entry[4:]
    for nr, name in NEWER_COMMON.items():
        out.setdefault(nr, name)
    return out


def render(table):
    items = sorted(table.items())
    lines, cur = [], ""
    for nr, name in items:
        word = f"{nr}:{name} "
        if len(cur) + len(word) > 96:
            lines.append(cur.rstrip())
            cur = ""
        cur += word
    lines.append(cur.rstrip())
    return "\n".join(lines)


def main():
    text = f'''"""Syscall numbers of the 64-bit ABIs, as the names of their ftrace syscall events.

Generated by scripts/gen_syscall_tables.py from the Linux UAPI headers; do not edit.
``names(arch)[nr]`` is ``X`` of ``syscalls:sys_enter_X`` (the entry point's name).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are strings: typing is not imported at run time (start-up)
    from typing import Dict

_X86_64 = """
{render(x86_64())}
"""

_AARCH64 = """
{render(aarch64())}
"""


def _parse(text: str) -> Dict[int, str]:
    out = {{}}
    for word in text.split():
        nr, _, name = word.partition(":")
        out[int(nr)] = name
    return out


_TEXT = {{"x86_64": _X86_64, "aarch64": _AARCH64}}
_PARSED: Dict[str, Dict[int, str]] = {{}}


def names(arch: str) -> Dict[int, str]:
    """Syscall number -> event name for ``arch``; empty if unknown. Parsed on first use:
    a run needs one architecture's table."""
    got = _PARSED.get(arch)
    if got is None:
        got = _PARSED[arch] = _parse(_TEXT[arch]) if arch in _TEXT else {{}}
    return got


def numbers(arch: str) -> Dict[str, int]:
    """Event name -> syscall number for ``arch`` (``os.uname().machine``); empty if unknown."""
    return {{name: nr for nr, name in names(arch).items()}}
'''
    with open(OUT, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
