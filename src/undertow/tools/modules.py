"""`undertow modules`: kernel modules loaded and removed, and every attempt to load or remove one.

Hooks, chosen from what the kernel has (checked, not assumed):

- ``module:module_load`` / ``module:module_free`` (kernels built with modules): what got in;
- the attempts: ``init_module``, ``finit_module`` (the file is named from the fd, through
  ``curtask->files``) and ``delete_module`` (the name), with their result. Through the
  ``syscalls:sys_{enter,exit}_*`` tracepoints when they exist, else through
  ``raw_syscalls`` filtered on the syscall numbers: a kernel without module support has no
  tracepoints for those syscalls, yet a rootkit's attempt to load itself there (failing with
  ENOSYS) is worth seeing.
"""

from __future__ import annotations

import errno
import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

__all__ = ["program", "parse_record", "capability", "SYSCALLS"]

#: (init_module, delete_module, finit_module) per machine (arch/*/syscall tables).
SYSCALLS = {"x86_64": (175, 176, 313), "aarch64": (105, 106, 273)}


def capability(proc: str = "/proc") -> Tuple[bool, str]:
    """Whether this kernel can load modules, and the reason when it cannot."""
    if not os.path.exists(os.path.join(proc, "modules")):
        return False, "this kernel cannot load modules (built without CONFIG_MODULES: no /proc/modules)"
    try:
        with open(os.path.join(proc, "sys", "kernel", "modules_disabled")) as f:
            if f.read().strip() == "1":
                return False, "module loading is disabled (kernel.modules_disabled=1)"
    except OSError:
        pass
    return True, "modules can be loaded"


def program(tracefs: Any) -> Tuple[str, str]:
    """The BPF program (bpftrace language) for this kernel, and a description of its hooks."""
    nrs = SYSCALLS.get(os.uname().machine)
    parts: List[str] = []
    hooks: List[str] = []
    if tracefs.events("module:module_load"):
        parts.append('tracepoint:module:module_load { printf("%s %d %d %d %s", "load", 0, 0, args.taints, '
                     'str(args.name)); }')
        parts.append('tracepoint:module:module_free { printf("%s %d %d %d %s", "free", 0, 0, 0, '
                     'str(args.name)); }')
        hooks.append("module:module_load/module_free")
    if nrs is None:
        return "\n".join(parts), ", ".join(hooks)
    init, delete, finit = nrs
    # one shape for both ways in: the attempt at entry (with its argument), the result at exit
    enter = '''
{
  $t = (struct task_struct *)curtask;
  if (%(id)s == %(finit)d) {
    printf("%%s %%d %%d %%d %%s", "try", %(id)s, %(a0)s, 0, str($t->files->fdt->fd[%(a0)s]->f_path.dentry->d_name.name));
  } else { if (%(id)s == %(delete)d) {
    printf("%%s %%d %%d %%d %%s", "try", %(id)s, %(a0)s, 0, str(uptr(%(a0)s)));
  } else {
    printf("%%s %%d %%d %%d %%s", "try", %(id)s, %(a0)s, %(a1)s, "");
  } }
}'''
    if tracefs.events("syscalls:sys_enter_finit_module"):
        for name, nr in (("init_module", init), ("delete_module", delete), ("finit_module", finit)):
            a0 = {"init_module": "args.umod", "delete_module": "args.name_user", "finit_module": "args.fd"}[name]
            a1 = "args.len" if name == "init_module" else "0"
            parts.append(f"tracepoint:syscalls:sys_enter_{name}" + enter % {
                "id": str(nr), "a0": f"(uint64){a0}", "a1": a1, "finit": finit, "delete": delete})
            parts.append(f'tracepoint:syscalls:sys_exit_{name} {{ printf("%s %d %d %d %s", "ret", {nr}, '
                         f'args.ret, 0, ""); }}')
        hooks.append("syscalls:sys_{enter,exit}_{init,finit,delete}_module")
    else:
        cond = f"args.id == {init} || args.id == {delete} || args.id == {finit}"
        parts.append(f"tracepoint:raw_syscalls:sys_enter /{cond}/" + enter % {
            "id": "args.id", "a0": "args.args[0]", "a1": "args.args[1]", "finit": finit, "delete": delete})
        parts.append(f'tracepoint:raw_syscalls:sys_exit /{cond}/ {{ printf("%s %d %d %d %s", "ret", args.id, '
                     f'args.ret, 0, ""); }}')
        hooks.append(f"raw_syscalls:sys_enter/sys_exit filtered on syscalls {init}, {delete}, {finit} "
                     "(this kernel has no tracepoints for the module syscalls)")
    return "\n".join(parts), ", ".join(hooks)


_NAMES = {}
for _arch, (_i, _d, _f) in SYSCALLS.items():
    _NAMES.update({_i: "init_module", _d: "delete_module", _f: "finit_module"})


class Pairing:
    """Joins an attempt (at entry) with its result (at exit) by thread."""

    def __init__(self) -> None:
        self.pending: Dict[int, Dict[str, Any]] = {}

    def feed(self, rec: Any) -> Optional[Dict[str, Any]]:
        kind, nr, a0, a1, text = rec.values
        if kind in ("load", "free"):
            return {"ts": rec.ts, "event": kind, "module": text, "taints": a1 if kind == "load" else None,
                    "pid": rec.pid if rec.pid else None, "comm": rec.comm, "result": None, "error": None}
        if kind == "try":
            call = _NAMES.get(nr, str(nr))
            d = {"ts": rec.ts, "event": call, "pid": rec.pid, "comm": rec.comm,
                 "module": text if call == "delete_module" else None,
                 "file": text if call == "finit_module" else None,
                 "size": a1 if call == "init_module" else None, "result": None, "error": None}
            self.pending[rec.tid] = d
            return None
        d = self.pending.pop(rec.tid, None)
        if d is None:
            return None
        d["result"] = a0
        d["error"] = errno.errorcode.get(-a0) if a0 < 0 else None
        return d


def parse_record(rec: Any, pairing: Pairing) -> Optional[Dict[str, Any]]:
    return pairing.feed(rec)
