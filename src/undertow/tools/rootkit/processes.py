"""Hidden processes and threads: four views of the same pids.

- libc's ``readdir()`` of /proc (what ps, top and ls see; an ``LD_PRELOAD`` library such as
  libprocesshider rewrites it in user space);
- the getdents64(2) system call on /proc (a kernel hook on getdents/``proc_pid_readdir``
  rewrites this one too);
- the BPF task iterator (``iter:task``: the kernel's pid table walked by a BPF program,
  kernel/bpf/task_iter.c; no /proc code runs);
- kill(pid, 0) on every pid up to ``/proc/sys/kernel/pid_max`` (what unhide's brute test
  does; left out by ``--quick``).

And two ways an entry can lie: a file system mounted over /proc/PID (``mount --bind``
another directory over it: ps then shows the other one's data), and a /proc/PID/stat whose
first field is not PID. Every disagreement is checked again before it is reported (a process
that started or ended between two reads is no finding).
"""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Set, Tuple

from .report import Context
from .views import IteratorUnavailable, comm_of, getdents, libc_listdir, read_small, run_iterator

__all__ = ["check", "tasks", "PROC_PID_INIT_INO"]

CHECK = "processes"
#: the initial pid namespace's inode (include/linux/proc_ns.h PROC_PID_INIT_INO)
PROC_PID_INIT_INO = 0xEFFFFFFC

TASK_ITER = 'iter:task { printf("%d %d\\n", ctx->task->tgid, ctx->task->pid); }'


def _pids(names: List[str]) -> Set[int]:
    return {int(n) for n in names if n.isdigit()}


def tasks(ctx: Context) -> Optional[List[Tuple[int, int]]]:
    """``[(tgid, tid)]`` of every task from the BPF task iterator (global pids), cached in
    ``ctx``; None (with the reason recorded) when it cannot run or its pids are not this
    /proc's."""
    if "tasks" in ctx.cache:
        return ctx.cache["tasks"]
    from ..common import ns_inode

    out: Optional[List[Tuple[int, int]]] = None
    if ns_inode("pid", "self", ctx.proc) != PROC_PID_INIT_INO:
        ctx.report.not_checked(CHECK, "BPF task iterator", "undertow runs in a pid namespace: the iterator's "
                               "pids are the initial namespace's; run it on the host")
    else:
        try:
            vals = run_iterator(TASK_ITER)
            out = [(v[0], v[1]) for v in vals if len(v) >= 2]
            if (os.getpid(), os.getpid()) not in out:
                ctx.report.not_checked(CHECK, "BPF task iterator", "the iterator did not list undertow itself")
                out = None
        except IteratorUnavailable as e:
            ctx.report.not_checked(CHECK, "BPF task iterator", str(e))
    ctx.cache["tasks"] = out
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _tgid(proc: str, pid: int) -> Optional[int]:
    """Tgid of /proc/PID/status (reachable by name even when hidden from listings)."""
    data = read_small(os.path.join(proc, str(pid), "status"), 4096)
    if not data:
        return None
    for line in data.split(b"\n"):
        if line.startswith(b"Tgid:"):
            try:
                return int(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


def _mount_namespaces(proc: str, pids: Set[int]) -> Dict[int, int]:
    """``{mount namespace inode: a pid in it}`` for every namespace of ``pids``."""
    from ..common import ns_inode

    out: Dict[int, int] = {}
    for p in sorted(pids):
        ns = ns_inode("mnt", str(p), proc)
        if ns is not None and ns not in out:
            out[ns] = p
    return out


def _proc_mounts(proc: str, who: str = "self") -> List[Tuple[str, str]]:
    """``[(mount point, source)]`` of /proc/WHO/mountinfo mounted on /proc/PID or below
    (proc(5) mountinfo: field 5 the mount point, octal escapes; after `` - ``: type, source)."""
    data = read_small(os.path.join(proc, who, "mountinfo"), 1 << 22) or b""
    out = []
    prefix = proc.rstrip("/") + "/"
    for line in data.decode("utf-8", "replace").splitlines():
        f = line.split()
        if len(f) < 5:
            continue
        mp = f[4].encode().decode("unicode_escape", "replace") if "\\" in f[4] else f[4]
        if not mp.startswith(prefix):
            continue
        first = mp[len(prefix):].split("/", 1)[0]
        if first.isdigit():
            rest = line.split(" - ", 1)[1].split() if " - " in line else []
            out.append((mp, " ".join(rest[:2]) + (f" root {f[3]}" if len(f) > 3 else "")))
    return out


def _stat_pid(proc: str, pid: int) -> Optional[int]:
    data = read_small(os.path.join(proc, str(pid), "stat"), 512)
    if not data:
        return None
    try:
        return int(data.split(b" ", 1)[0])
    except ValueError:
        return None


def check(ctx: Context) -> None:
    """Compare the process views; add findings to ``ctx.report``."""
    from ... import stop

    rep, proc = ctx.report, ctx.proc
    try:
        libc = _pids(libc_listdir(proc))
        raw = _pids(getdents(proc))
    except OSError as e:
        rep.not_checked(CHECK, "/proc listing", f"cannot list {proc}: {e.strerror}")
        return

    def relisted() -> Tuple[Set[int], Set[int]]:
        return _pids(libc_listdir(proc)), _pids(getdents(proc))

    # 1. user-space hiding: the kernel lists it, readdir() does not
    gone = sorted(p for p in raw - libc if _alive(p))
    if gone:
        libc2, raw2 = relisted()
        for p in gone:
            if p in raw2 and p not in libc2 and _alive(p):
                rep.add(CHECK, "high", f"pid {p} ({comm_of(proc, p)}) is hidden from readdir() in user space",
                        {"getdents64(/proc)": f"lists {p}", "libc readdir(/proc)": f"does not list {p}"},
                        "a library rewrites readdir(): look at /etc/ld.so.preload, LD_PRELOAD and the libraries "
                        "in /proc/self/maps of ps (undertow rootkit reports them under userspace)", key=p)
    stop.check()

    # 2. kernel hiding, seen by the task iterator
    its = tasks(ctx)
    hidden: Dict[int, str] = {}
    if its is not None:
        tg = {t for t, _ in its}
        for p in sorted(tg - raw - {0}):
            hidden[p] = "BPF task iterator"
    # 3. ... and by kill(2) on every pid
    alive_threads: Set[int] = set()
    if ctx.quick:
        rep.note(CHECK, "kill(2) on every pid was left out", "--quick (the BPF task iterator still compares)")
    else:
        try:
            pid_max = int((read_small(os.path.join(proc, "sys/kernel/pid_max"), 32) or b"32768").strip())
        except ValueError:
            pid_max = 32768
        for p in range(1, min(pid_max, 1 << 23)):
            if p & 0xFFFF == 0:
                stop.check()
            try:
                os.kill(p, 0)
            except ProcessLookupError:
                continue
            except PermissionError:
                pass
            if p not in raw:
                alive_threads.add(p)
    if alive_threads:
        for p in sorted(alive_threads):
            t = _tgid(proc, p)
            if t is None and _alive(p):
                hidden.setdefault(p, "kill(2)")
            elif t == p:
                hidden.setdefault(p, "kill(2)")
            # a thread (t != p): judged with the threads below
    if hidden:
        _, raw2 = relisted()
        for p, who in sorted(hidden.items()):
            if p in raw2 or not _alive(p):
                continue
            t = _tgid(proc, p)
            if t is not None and t != p:
                continue  # a thread
            reach = "has no /proc/PID" if t is None else "its /proc/PID opens by name"
            rep.add(CHECK, "high", f"pid {p} ({comm_of(proc, p)}) runs but the kernel hides it from /proc",
                    {who: f"pid {p} exists", "getdents64(/proc)": f"does not list {p} ({reach})"},
                    "a kernel-level hook on getdents/proc readdir: look for hidden modules, ftrace hooks and "
                    "BPF programs (the other checks); /proc/PID/exe and maps of the pid", key=p)
    stop.check()

    # 4. threads: the iterator's tids vs each process's task directory
    if its is not None:
        by: Dict[int, Set[int]] = {}
        for t, tid in its:
            if t != tid:
                by.setdefault(t, set()).add(tid)
        for t, tids in sorted(by.items()):
            if t not in raw:
                continue
            try:
                listed = _pids(getdents(os.path.join(proc, str(t), "task")))
            except OSError:
                continue
            for tid in sorted(tids - listed):
                if not _alive(tid):
                    continue
                try:
                    again = _pids(getdents(os.path.join(proc, str(t), "task")))
                except OSError:
                    break
                if tid not in again:
                    rep.add(CHECK, "high", f"thread {tid} of pid {t} ({comm_of(proc, t)}) is hidden from "
                            f"/proc/{t}/task", {"BPF task iterator": f"tid {tid} in tgid {t}",
                                                f"getdents64(/proc/{t}/task)": f"does not list {tid}"},
                            "a kernel-level hook on the task directory's readdir", key=tid)

    # 5. mounts over /proc/PID and entries that show another process
    from ..common import ns_inode

    mine = ns_inode("mnt", "self", proc)
    for ns, member in sorted(_mount_namespaces(proc, raw).items()):
        # each mount namespace's own mount table (a mount made in a private namespace is
        # seen only there; /proc/PID/mountinfo is the table of PID's namespace)
        for mp, src in _proc_mounts(proc, "self" if ns == mine else str(member)):
            pid = int(mp[len(proc.rstrip("/")) + 1:].split("/", 1)[0])
            where = "" if ns == mine else f" in mount namespace {ns} (pid {member})"
            rep.add(CHECK, "high", f"something is mounted over {mp}{where}: ps there shows that instead of "
                    f"pid {pid}", {f"mountinfo{where}": f"{mp} is a mount point ({src})",
                                   "BPF task iterator / kill(2)": f"pid {pid} "
                                   f"{'runs' if _alive(pid) else 'does not run'}"},
                    f"umount {mp} (in that mount namespace) and look at the real process", key=pid)
    for p in sorted(raw):
        sp = _stat_pid(proc, p)
        if sp is not None and sp != p and _alive(p):
            rep.add(CHECK, "high", f"/proc/{p}/stat describes pid {sp}",
                    {f"/proc/{p}": "listed", f"/proc/{p}/stat": f"first field is {sp}"},
                    f"look for a mount over /proc/{p} in this mount namespace (mountinfo)", key=p)
