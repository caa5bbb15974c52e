"""`undertow filewatch PATH...`: who changes (writes, truncates, replaces, renames, unlinks,
chmods, chowns, re-times) these files, and with --all also who opens and reads them.

A watched file is two things at once: its inode (matched by device and inode, so a rename
or a hard link does not lose it) and its path (the directory's inode and the name, so a
file put at the path by ``mv``, ``cp``, unlink + create is watched from then on). The BPF
program (bpftrace language) is :mod:`undertow.tools.filewatch_prog`'s, for the hook set
:func:`hook_set` picks: ``syscalls`` (syscall + io_uring tracepoints) or ``vfs`` (the
same, plus fentry/kprobes on the VFS functions every path goes through).

At start, user space seeds the maps: the watched inodes (``@ino``) and the descriptors
already open on them (``/proc/PID/fd`` -> ``@w``), so a writer that opened the file before
the tool is seen too. Each path goes into the program only through
:func:`undertow.lang.bt.quote_string` (every byte exact); a comparison reads at most 255
bytes (:func:`path_limit`), so a path-based call naming a longer path is matched by its
relative forms that fit (from a directory closer to the file).
"""

from __future__ import annotations

import os
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence

__all__ = ["Watch", "kernel_identity", "program", "seed", "parse_record", "path_limit", "hook_set",
           "Tracker", "uring_tracepoint"]


class _Dir:
    """A directory on the watched path: the kernel's (inode, dev)."""

    def __init__(self, path: str, ident: Optional[Any] = None) -> None:
        self.path = path
        if ident is None:
            st = os.stat(path)
            ident = (st.st_ino, (os.major(st.st_dev) << 20) | os.minor(st.st_dev))
        self.ino, self.dev = int(ident[0]), int(ident[1])


class Watch:
    """A watched file: its path as given (absolute) and its (device, inode).

    ``dev``/``ino`` are what ``stat()`` says (used with /proc/PID/fd); ``kdev``/``kino`` are
    what the kernel's ``file->f_inode`` says, which differs on overlayfs (an open file's inode
    is the upper layer's). :func:`kernel_identity` measures the latter. ``dirs`` are the
    directories from ``/`` to the file's own (kernel inode and dev), ``rests`` the path
    relative to each, ``name`` the last component.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        st = os.stat(self.path)
        self.ino = st.st_ino
        self.dev = st.st_dev
        # the kernel's sb->s_dev is MKDEV(major, minor) = major << 20 | minor
        self.kdev = (os.major(st.st_dev) << 20) | os.minor(st.st_dev)
        self.kino = st.st_ino
        self.name = os.path.basename(self.path)
        parts = self.path.split("/")[1:]
        self.dirs = [_Dir("/" + "/".join(parts[:i])) for i in range(len(parts))]
        self.rests = ["/".join(parts[i:]) for i in range(len(parts))]

    @classmethod
    def known(cls, path: str, ino: int, dev: int) -> "Watch":
        """A watch whose identities are given, not read (tests, API callers that stat'ed):
        ``ino``/``dev`` for the file, made-up distinct inodes for its directories."""
        w = cls.__new__(cls)
        w.path = path
        w.ino, w.dev, w.kino, w.kdev = ino, dev, ino, (os.major(dev) << 20) | os.minor(dev)
        w.name = path.rsplit("/", 1)[-1]
        parts = path.split("/")[1:]
        w.dirs = [_Dir("/" + "/".join(parts[:i]), (1000 + i, w.kdev)) for i in range(len(parts))]
        w.rests = ["/".join(parts[i:]) for i in range(len(parts))]
        return w


def kernel_identity(ws: Sequence[Watch], kernel: Any) -> None:
    """Set each watch's ``kino``/``kdev`` (and its directories') to the inode the kernel sees
    for an open file.

    Opens every file and directory, then runs a BEGIN program in this process
    (``BPF_PROG_TEST_RUN``) that reads ``curtask->files->fdt->fd[N]->f_inode`` (BTF)."""
    from ..backends.bpf.runtime import Printed
    from ..bpfrun import BpfRun

    objs: List[Any] = []
    for w in ws:
        objs.append(w)
        objs.extend(w.dirs)
    fds = []
    try:
        for o in objs:
            fds.append(os.open(o.path, os.O_RDONLY | os.O_NONBLOCK))
        body = "".join(
            f'$f{i} = ((struct task_struct *)curtask)->files->fdt->fd[{fd}]; '
            f'printf("%d %d %d", {i}, $f{i}->f_inode->i_ino, $f{i}->f_inode->i_sb->s_dev); '
            for i, fd in enumerate(fds))
        with BpfRun("BEGIN { " + body + "}", origin="<undertow filewatch>", kernel=kernel,
                    exclude_self=False) as bpf:
            for rec in bpf.start(ringbuf_mb=1).drain():  # BEGIN ran in this process at attach
                if isinstance(rec, Printed):
                    i, ino, dev = rec.values
                    o = objs[i]
                    if isinstance(o, Watch):
                        o.kino, o.kdev = ino, dev
                    else:
                        o.ino, o.dev = ino, dev
    finally:
        for fd in fds:
            os.close(fd)


def hook_set(kernel: Any) -> str:
    """``"vfs"`` when BPF can attach to the VFS functions (fentry, or BPF kprobes) and all of
    :data:`~undertow.tools.filewatch_prog.VFS_FUNCS` are in BTF, else ``"syscalls"``
    (:func:`undertow.tools.hooksets.filewatch_choice`)."""
    from .hooksets import filewatch_choice

    return filewatch_choice(kernel).hooks


def uring_tracepoint(kernel: Any) -> Optional[str]:
    """The io_uring tracepoint whose first argument is the request (``struct io_kiocb *``):
    ``io_uring_submit_req`` (kernel >= 6.2), ``io_uring_submit_sqe`` (6.0, 6.1), or None
    (older ones pass the ring first; no io_uring; no BTF). Read from BTF's
    ``btf_trace_<event>`` typedef (its first parameter is the tracepoint's ``__data``)."""
    for name in ("io_uring_submit_req", "io_uring_submit_sqe"):
        try:
            btf = kernel.btf()
            proto = btf.find("btf_trace_" + name, "typedef", hints=False).target.target
            first = btf.strip(proto.params[1][1])
            if first.kind == "ptr" and first.target is not None and first.target.name == "io_kiocb":
                return name
        except Exception:  # noqa: BLE001 - not this one: try the next, or None
            continue
    return None


def path_limit() -> int:
    """The longest path (bytes) the path-based calls can be matched on."""
    from ..backends.bpf.compiler import STR_COMPARE_BYTES

    return STR_COMPARE_BYTES - 1


def program(ws: Sequence[Watch], all_ops: bool, have: Any = None, hooks: str = "syscalls",
            uring: Optional[str] = "io_uring_submit_req") -> str:
    """The BPF program for these files (``all_ops``: opens and reads too) on hook set ``hooks``.

    ``have(event)`` says whether a tracepoint exists (the legacy ``rename``, ``unlink``,
    ``chmod``, ``open`` exist on x86_64, not on aarch64); ``uring`` is
    :func:`uring_tracepoint`'s answer."""
    from .filewatch_prog import program as build

    return build(ws, all_ops, hooks, have, uring)


def seed(session: Any, ws: Sequence[Watch], proc: str = "/proc") -> int:
    """Put the watched inodes into ``@ino`` and the (pid, fd) of every process that has a
    watched file open into ``@w``; returns how many descriptors were found."""
    from ..kernel.bpfsys import map_update_elem
    from .proc import fd_entries

    ino_map = session.map_fds.get("@ino")
    if ino_map is not None:
        for k, w in enumerate(ws):
            map_update_elem(ino_map, struct.pack("<QQ", w.kino, w.kdev), struct.pack("<q", k + 1))
    fd_map = session.map_fds.get("@w")
    if fd_map is None:
        return 0
    has_map = session.map_fds.get("@has")
    want = {(w.dev, w.ino): k for k, w in enumerate(ws)}
    n = 0
    for pid, fd, path in fd_entries(proc):
        try:
            st = os.stat(path)
        except OSError:
            continue
        k = want.get((st.st_dev, st.st_ino))
        if k is not None:
            map_update_elem(fd_map, struct.pack("<QQ", pid, fd), struct.pack("<q", k + 1))
            if has_map is not None:  # its children inherit the fd
                map_update_elem(has_map, struct.pack("<Q", pid), struct.pack("<q", 1))
                n += 1
    return n


class Tracker:
    """After a rename or link onto a watched path (the syscalls hook set cannot read the
    new inode in the kernel), reads the path again and adds the inode found to ``@ino``."""

    def __init__(self, ws: Sequence[Watch]) -> None:
        self.ws = ws
        self.session: Any = None

    def follow(self, k: int) -> None:
        """Watch whatever inode is now at watch ``k``'s path (0-based)."""
        if self.session is None or not 0 <= k < len(self.ws):
            return
        from ..kernel.bpfsys import map_update_elem

        m = self.session.map_fds.get("@ino")
        w = self.ws[k]
        try:
            st = os.lstat(w.path)  # a symlink put at the path is reported, never followed
        except OSError:
            return
        import stat as _stat

        if m is not None and _stat.S_ISREG(st.st_mode):
            kdev = (os.major(st.st_dev) << 20) | os.minor(st.st_dev)
            map_update_elem(m, struct.pack("<QQ", st.st_ino, kdev), struct.pack("<q", k + 1))


#: ATTR_* bits of ``struct iattr.ia_valid`` (include/linux/fs.h) -> the change they name
_ATTRS = ((1, "mode"), (2, "uid"), (4, "gid"), (8, "size"), (16, "atime"), (32, "mtime"))


def _abs(s: str, w: Optional[Watch], j: int) -> str:
    """A path argument made absolute: as given when absolute; relative to the watch's j-th
    directory (1-based) when that is where the kernel found it; else as given."""
    if s.startswith("/") or w is None or not 1 <= j <= len(w.dirs):
        return s
    return os.path.join(w.dirs[j - 1].path, s)


def parse_record(rec: Any, ws: Sequence[Watch], tracker: Optional[Tracker] = None) -> Dict[str, Any]:
    """One record of :mod:`~undertow.tools.filewatch_prog` as a JSON-ready dict."""
    v = rec.values
    if len(v) == 9:   # a record without strings
        op, fd, k, ino, a, b, c, netns, pidns = v
        s1 = s2 = ""
    else:
        op, fd, k, ino, a, b, c, s1, s2, netns, pidns = v
    w = ws[k - 1] if 1 <= k <= len(ws) else None
    d: Dict[str, Any] = {"ts": rec.ts, "pid": rec.pid, "tid": rec.tid, "comm": rec.comm, "op": op,
                         "path": w.path if w is not None else None, "inode": ino or None,
                         "fd": fd if fd >= 0 else None, "netns": netns or None, "pidns": pidns or None}
    if op in ("write", "pwrite64", "read", "pread64", "sendfile", "splice", "copy_file_range"):
        d["bytes"] = a
    elif op in ("writev", "pwritev", "pwritev2", "readv", "preadv", "preadv2"):
        d["iovecs"] = a
    elif op == "mmap-write":
        d["length"] = a
    elif op == "fallocate":
        d["length"], d["offset"], d["mode"] = a, b, c
        d["punch_hole"] = bool(c & 2)   # FALLOC_FL_PUNCH_HOLE
    elif op in ("ftruncate", "truncate"):
        d["length"] = a
    elif op in ("fchmod", "fchmodat", "fchmodat2", "chmod"):
        d["mode"] = oct(a & 0o7777)
    elif op in ("fchown", "fchownat", "chown", "lchown"):
        d["uid"] = a if a != 0xFFFFFFFF else None
        d["gid"] = b if b != 0xFFFFFFFF else None
    elif op in ("open", "open-trunc", "create"):
        d["flags"] = a
        d["write"] = bool(a & 3)
    elif op in ("rename", "link"):
        kn = a
        wn = ws[kn - 1] if 1 <= kn <= len(ws) else None
        d["path"] = (w or wn).path if (w or wn) else None
        same = fd == 1
        # a relative side with the same dirfd as the matched side is in the same directory
        d["from"] = _abs(s1, w if w else (wn if same else None), b if w else c)
        d["to"] = _abs(s2, wn if wn else (w if same else None), c if wn else b)
        d["fd"], d["inode"] = None, None
        # renameat2's RENAME_NOREPLACE (1) / EXCHANGE (2) / WHITEOUT (4); linkat's AT_ flags
        d["flags"] = ino or None
        if wn is not None and tracker is not None:
            tracker.follow(kn - 1)
    elif op in ("vfs-rename", "vfs-link"):
        kn = a
        wn = ws[kn - 1] if 1 <= kn <= len(ws) else None
        d["path"] = (w or wn).path if (w or wn) else None
        # names (the kernel's dentries); in the watched file's directory when both sides are
        # there, else the name alone
        known = w or wn
        if fd == 1 and known is not None:
            s1, s2 = (os.path.join(os.path.dirname(known.path), x) for x in (s1, s2))
        d["from"], d["to"], d["fd"] = s1, s2, None
    elif op == "vfs-unlink":
        d["name"] = s2
    elif op == "setattr":
        d["changes"] = [n for bit, n in _ATTRS if a & bit]
        if a & 1:
            d["mode"] = oct(b & 0o7777)
        if a & 8:
            d["length"] = c
    elif op == "ioctl":
        from .filewatch_prog import IOCTLS

        d["cmd"] = IOCTLS.get(a, hex(a))
    elif op.startswith("io_uring-"):
        d["opcode"] = b
    if op in ("unlinkat", "unlink", "fchmodat", "fchmodat2", "chmod", "fchownat", "chown", "lchown", "truncate",
              "utimensat", "futimesat", "utimes", "utime") and s1:
        d["arg"] = _abs(s1, w, c)
    if d["path"] is None:
        d["path"] = ws[0].path if len(ws) == 1 else "?"
    return d
