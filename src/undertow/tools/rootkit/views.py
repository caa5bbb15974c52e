"""The views the checks compare, read as directly as the kernel allows: directories through
the getdents64 system call (no libc ``readdir``, which an ``LD_PRELOAD`` library can
rewrite), BPF iterators run through undertow's own compiler, small /proc files read with
``O_NOFOLLOW``."""

from __future__ import annotations

import ctypes
import os
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional

__all__ = ["getdents", "libc_listdir", "run_iterator", "IteratorUnavailable", "read_small", "comm_of", "exe_of",
           "is_undertow"]

_GETDENTS64 = {"x86_64": 217, "aarch64": 61, "arm64": 61, "riscv64": 61, "loongarch64": 61}


def getdents(path: str) -> List[str]:
    """The names in directory ``path`` as the kernel's getdents64(2) returns them (through
    libc's ``syscall()``, not ``readdir()``: ``struct linux_dirent64`` decoded here).
    Raises OSError."""
    from ...kernel.rawcall import syscall_fn

    nr = _GETDENTS64.get(os.uname().machine)
    if nr is None:
        raise OSError(38, "getdents64 number unknown on this architecture")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        buf = ctypes.create_string_buffer(1 << 16)
        out: List[str] = []
        call = syscall_fn()
        while True:
            n = call(ctypes.c_long(nr), ctypes.c_long(fd), buf, ctypes.c_long(len(buf)))
            if n < 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            if n == 0:
                return out
            raw = buf.raw[:n]
            off = 0
            while off + 19 <= n:
                # struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
                reclen = struct.unpack_from("=H", raw, off + 16)[0]
                if reclen < 19 or off + reclen > n:
                    break
                name = raw[off + 19:off + reclen].split(b"\0", 1)[0]
                if name not in (b".", b".."):
                    out.append(os.fsdecode(name))
                off += reclen
    finally:
        os.close(fd)


def libc_listdir(path: str) -> List[str]:
    """The names in ``path`` through libc's ``readdir()`` (what ``ps`` and ``ls`` see, and
    what an ``LD_PRELOAD`` hider rewrites): Python's :func:`os.listdir` calls it."""
    return os.listdir(path)


class IteratorUnavailable(Exception):
    """A BPF iterator cannot run here (the message says why)."""


def run_iterator(text: str, kernel: object = None) -> List[List[int]]:
    """Run a bpftrace-language ``iter:`` program whose one action is a printf of integers;
    return each record's values. Raises :class:`IteratorUnavailable`."""
    from ...errors import UndertowError

    try:
        from ...bpfrun import BpfRun

        run = BpfRun(text, origin="<undertow rootkit>", kernel=kernel, exclude_self=False)
        try:
            s = run.start(ringbuf_mb=4)
            out: List[List[int]] = []
            lost = 0
            from ... import stop

            while True:
                stop.check()
                recs = s.poll(0.2)
                done = False
                for r in recs:
                    name = type(r).__name__
                    if name == "ExitRequest":
                        done = True
                    elif name == "Lost":
                        lost += 1
                    elif hasattr(r, "values") and r.values is not None:
                        out.append([int(v) if isinstance(v, int) else v for v in r.values])
                if done:
                    break
            if lost:
                raise IteratorUnavailable("the iterator's records did not all fit the ring buffer")
            return out
        finally:
            run.close()
    except UndertowError as e:
        raise IteratorUnavailable(e.message if hasattr(e, "message") else str(e)) from None


def read_small(path: str, limit: int = 1 << 16) -> Optional[bytes]:
    """The first ``limit`` bytes of ``path`` (not following a final symlink), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        parts = []
        got = 0
        while got < limit:  # a seq file (/proc/net/tcp) gives about a page per read(2)
            chunk = os.read(fd, min(limit - got, 1 << 16))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)
    except OSError:
        return None
    finally:
        os.close(fd)


def comm_of(proc: str, pid: int) -> str:
    """/proc/PID/comm, or ``?``."""
    data = read_small(os.path.join(proc, str(pid), "comm"), 64)
    return data.decode("utf-8", "replace").rstrip("\n") if data else "?"


def exe_of(proc: str, pid: int) -> Optional[str]:
    """Where /proc/PID/exe points (``readlink``, never followed), or None."""
    try:
        return os.readlink(os.path.join(proc, str(pid), "exe"))
    except OSError:
        return None


def is_undertow(proc: str, pid: int, cache: Optional[Dict[int, bool]] = None) -> bool:
    """Whether ``pid`` runs undertow (its command line names ``undertow``): its own BPF
    programs and tracefs state are not another's. A process can lie about its command line:
    this only decides whether a finding is shown as undertow's, never hides a hook."""
    if cache is not None and pid in cache:
        return cache[pid]
    data = read_small(os.path.join(proc, str(pid), "cmdline"), 4096) or b""
    yes = b"undertow" in data
    if cache is not None:
        cache[pid] = yes
    return yes
