"""User-space tricks: preloaded libraries and executables that are not files.

- ``/etc/ld.so.preload`` in every mount namespace a process runs in (read through
  ``/proc/PID/root``, one directory at a time with ``O_NOFOLLOW``: a link planted there is
  reported, never followed);
- ``LD_PRELOAD`` / ``LD_AUDIT`` in a process's environment (``/proc/PID/environ``: its
  start-up environment);
- executables that are gone or were never files: ``/proc/PID/exe`` naming a deleted file, a
  ``memfd:`` (fileless execution: ``memfd_create`` + ``execveat``) or ``/dev/shm``. A memfd
  sealed against writing (``F_GET_SEALS``) is how container runtimes (runc) protect their
  own binary: a note, not a finding;
- binaries of listening processes that differ from their Debian package (packages.py).
"""

from __future__ import annotations

import fcntl
import os
import stat
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

from .report import Context
from .views import comm_of, exe_of, getdents, read_small

__all__ = ["check", "preload_file"]

CHECK = "userspace"
F_GET_SEALS = 1034  # include/uapi/linux/fcntl.h: F_LINUX_SPECIFIC_BASE + 10
F_SEAL_WRITE, F_SEAL_FUTURE_WRITE = 0x0008, 0x0010


def preload_file(root: str) -> Optional[Tuple[str, bytes]]:
    """``(kind, content)`` of ``etc/ld.so.preload`` under the directory ``root`` (a
    ``/proc/PID/root``): kind ``file`` or ``symlink -> target``; None when absent. Each
    step is opened relative to the one before with ``O_NOFOLLOW``."""
    try:
        rfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            efd = os.open("etc", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=rfd)
        except OSError:
            return None
        try:
            try:
                st = os.stat("ld.so.preload", dir_fd=efd, follow_symlinks=False)
            except OSError:
                return None
            if stat.S_ISLNK(st.st_mode):
                return f"symlink -> {os.readlink('ld.so.preload', dir_fd=efd)}", b""
            if not stat.S_ISREG(st.st_mode):
                return "not a regular file", b""
            try:
                fd = os.open("ld.so.preload", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             dir_fd=efd)
            except OSError:
                return "file", b""
            try:
                return "file", os.read(fd, 4096)
            finally:
                os.close(fd)
        finally:
            os.close(efd)
    finally:
        os.close(rfd)


def _env(proc: str, pid: int) -> Dict[str, str]:
    data = read_small(os.path.join(proc, str(pid), "environ"), 1 << 17) or b""
    out = {}
    for item in data.split(b"\0"):
        if item.startswith((b"LD_PRELOAD=", b"LD_AUDIT=")):
            k, _, v = item.partition(b"=")
            if v.strip():
                out[k.decode()] = v.decode("utf-8", "replace")
    return out


def _sealed(proc: str, pid: int) -> Optional[bool]:
    try:
        fd = os.open(os.path.join(proc, str(pid), "exe"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        seals = fcntl.fcntl(fd, F_GET_SEALS)
        return bool(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE))
    except OSError:
        return None
    finally:
        os.close(fd)


def check(ctx: Context) -> None:
    """Preload files and variables, odd executables; add findings to ``ctx.report``."""
    from ..common import ns_inode

    rep, proc = ctx.report, ctx.proc
    try:
        pids = sorted(int(n) for n in getdents(proc) if n.isdigit())
    except OSError as e:
        rep.not_checked(CHECK, "/proc listing", e.strerror or str(e))
        return
    mnt_seen: Dict[int, List[int]] = {}
    for pid in pids:
        ns = ns_inode("mnt", str(pid), proc)
        if ns is None:
            continue
        mnt_seen.setdefault(ns, []).append(pid)
    for ns, members in sorted(mnt_seen.items()):
        for pid in members[:3]:  # a process may have exited: try another of the namespace
            got = preload_file(os.path.join(proc, str(pid), "root"))
            root_ok = os.path.exists(os.path.join(proc, str(pid), "root", "etc"))
            if got is None and not root_ok:
                continue
            if got is not None:
                kind, content = got
                libs = content.decode("utf-8", "replace").split()
                rep.add(CHECK, "high", f"/etc/ld.so.preload exists in mount namespace {ns} "
                        f"({len(members)} processes, e.g. pid {pid} {comm_of(proc, pid)})",
                        {"/etc/ld.so.preload": f"{kind}: {' '.join(libs)[:400]}" if libs else kind,
                         "processes": f"{len(members)} in mount namespace {ns}"},
                        "every program started there loads these libraries first: read their symbols "
                        "(readdir, fopen, ...); compare with /proc/PID/maps", key=f"mnt:{ns}")
            break
    for pid in pids:
        env = _env(proc, pid)
        if env:
            rep.add(CHECK, "medium", f"pid {pid} ({comm_of(proc, pid)}) started with "
                    f"{' and '.join(sorted(env))}", {"environ": "; ".join(f"{k}={v}" for k, v in env.items())[:400],
                                                     "exe": exe_of(proc, pid) or "?"},
                    "read the library's symbols and the process's maps; sanitizers and faketime do this too",
                    key=pid)
        exe = exe_of(proc, pid)
        if not exe:
            continue
        if exe.startswith("/memfd:"):
            sealed = _sealed(proc, pid)
            ev = {"/proc/PID/exe": exe, "seals": "write-sealed" if sealed else "not sealed" if sealed is False
                  else "unknown"}
            if sealed:
                rep.note(CHECK, f"pid {pid} ({comm_of(proc, pid)}) runs a sealed memfd",
                         "a write-sealed memfd is how container runtimes (runc) run a copy of their binary", ev)
            else:
                rep.add(CHECK, "high", f"pid {pid} ({comm_of(proc, pid)}) runs from a memfd (fileless)", ev,
                        "copy /proc/PID/exe away for analysis; look at its parent and network sockets", key=pid)
        elif exe.startswith("/dev/shm/"):
            rep.add(CHECK, "high", f"pid {pid} ({comm_of(proc, pid)}) runs from /dev/shm",
                    {"/proc/PID/exe": exe}, "copy /proc/PID/exe away; look at its parent and sockets", key=pid)
        elif exe.endswith(" (deleted)"):
            rep.add(CHECK, "medium", f"pid {pid} ({comm_of(proc, pid)}) runs a deleted binary",
                    {"/proc/PID/exe": exe, "file system": "the file is gone"},
                    "an upgrade that did not restart it, or a dropper that removed itself: copy /proc/PID/exe "
                    "and compare with the package", key=pid)
    from .packages import check_listeners

    check_listeners(ctx)
