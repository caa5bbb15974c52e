"""`undertow filewatch PATH...`: who writes (and with --all: opens, reads, renames, unlinks,
chmods, truncates) these files, matched by device and inode so a rename does not lose them.

One BPF program (bpftrace language) generated for the watched files:

- ``openat()`` returning an fd whose inode (``curtask->files->fdt->fd[ret]->f_inode``, BTF)
  is watched puts (pid, fd) in a map; ``close()`` removes it. At start, user space seeds
  the map with the watched files already open (``/proc/PID/fd``), so a writer that opened
  the file before the tool is seen too;
- ``write``/``pwrite64``/``writev``/``pwritev`` on a mapped fd are writes; ``mmap`` with
  ``PROT_WRITE`` and ``MAP_SHARED`` on one is reported as ``mmap-write`` (the stores through
  the mapping are invisible to syscalls: the mapping is the event); ``ftruncate``/``fchmod``
  on one too;
- path-based calls (``unlinkat``, ``renameat2``, ``fchmodat``, ``truncate``) are matched by
  the path string against the watched absolute paths. Each path is put into the program
  with :func:`undertow.lang.bt.quote_string` (every byte exact: quotes, backslashes,
  newlines, undecodable bytes); a comparison reads at most 255 bytes, so ``--all`` refuses
  a longer path rather than never matching it (without ``--all`` no path is compared: any
  length is watched, by inode).
"""

from __future__ import annotations

import os
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Sequence

__all__ = ["Watch", "kernel_identity", "program", "seed", "parse_record", "path_limit",
           "check_paths"]


class Watch:
    """A watched file: its path as given (absolute) and its (device, inode).

    ``dev``/``ino`` are what ``stat()`` says (used with /proc/PID/fd); ``kdev``/``kino`` are
    what the kernel's ``file->f_inode`` says, which differs on overlayfs (an open file's inode
    is the upper layer's). :func:`kernel_identity` measures the latter.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        st = os.stat(self.path)
        self.ino = st.st_ino
        self.dev = st.st_dev
        # the kernel's sb->s_dev is MKDEV(major, minor) = major << 20 | minor
        self.kdev = (os.major(st.st_dev) << 20) | os.minor(st.st_dev)
        self.kino = st.st_ino


def kernel_identity(ws: Sequence[Watch], kernel: Any) -> None:
    """Set each watch's ``kino``/``kdev`` to the inode the kernel sees for an open file.

    Opens every file, then runs a BEGIN program in this process (``BPF_PROG_TEST_RUN``)
    that reads ``curtask->files->fdt->fd[N]->f_inode`` (BTF) for those fds."""
    from ..backends.bpf.runtime import Printed
    from ..bpfrun import BpfRun

    fds = [os.open(w.path, os.O_RDONLY | os.O_NONBLOCK) for w in ws]
    try:
        body = "".join(
            f'$f{i} = ((struct task_struct *)curtask)->files->fdt->fd[{fd}]; '
            f'printf("%d %d %d", {i}, $f{i}->f_inode->i_ino, $f{i}->f_inode->i_sb->s_dev); '
            for i, fd in enumerate(fds))
        with BpfRun("BEGIN { " + body + "}", origin="<undertow filewatch>", kernel=kernel,
                    exclude_self=False) as bpf:
            for rec in bpf.start(ringbuf_mb=1).drain():  # BEGIN ran in this process at attach
                if isinstance(rec, Printed):
                    i, ino, dev = rec.values
                    ws[i].kino, ws[i].kdev = ino, dev
    finally:
        for fd in fds:
            os.close(fd)


def _match(ws: Sequence[Watch], ino: str, dev: str) -> str:
    return " || ".join(f"({ino} == {w.kino} && {dev} == {w.kdev})" for w in ws)


def _paths(ws: Sequence[Watch], expr: str) -> str:
    from ..lang.bt import quote_string

    return " || ".join(f"{expr} == {quote_string(w.path)}" for w in ws)


def path_limit() -> int:
    """The longest path (bytes) the path-based calls can be matched on."""
    from ..backends.bpf.compiler import STR_COMPARE_BYTES

    return STR_COMPARE_BYTES - 1


def check_paths(ws: Sequence[Watch], all_ops: bool) -> None:
    """Raise :class:`~undertow.errors.UsageError` when ``all_ops`` needs a path compared
    that is longer than :func:`path_limit`."""
    if not all_ops:
        return
    from ..errors import UsageError
    from ..output.values import escape

    limit = path_limit()
    for w in ws:
        n = len(os.fsencode(w.path))
        if n > limit:
            shown = escape(w.path if len(w.path) <= 60 else w.path[:57] + "...")
            raise UsageError(f"--all cannot watch {shown}: its path is {n} bytes, and unlink, rename, chmod and "
                             f"truncate are matched on the path, which can be at most {limit} bytes",
                             hints=["without --all, its writes (and truncates, chmods through open files) "
                                    "are watched by inode, whatever the path's length"])


def program(ws: Sequence[Watch], all_ops: bool, have: Any = None) -> str:
    """The BPF program for these files (``all_ops``: opens, reads and path-based calls too).

    ``have(event)`` says whether a syscall tracepoint exists (the legacy ``rename``,
    ``unlink``, ``chmod``, ``dup2`` exist on x86_64, not on aarch64). With ``all_ops``, a
    path longer than :func:`path_limit` raises :class:`~undertow.errors.UsageError`."""
    def exists(name: str) -> bool:
        return have is None or bool(have(name))

    check_paths(ws, all_ops)

    rec = 'printf("%s %d %d %d %s", "{op}", {fd}, {a}, {b}, {s});'
    fdcalls = ",\n".join(f"tracepoint:syscalls:sys_exit_{c}" for c in ("openat", "dup", "dup2", "dup3")
                          if c == "openat" or exists(f"syscalls:sys_exit_{c}"))
    parts = [f"""
{fdcalls} /args.ret >= 0/
{{
  $f = ((struct task_struct *)curtask)->files->fdt->fd[args.ret];
  $ino = $f->f_inode->i_ino;
  $dev = $f->f_inode->i_sb->s_dev;
  if ({_match(ws, "$ino", "$dev")}) {{
    @w[pid, args.ret] = $ino;
    {rec.format(op="open", fd="args.ret", a="$ino", b="$f->f_flags", s='""') if all_ops else ""}
  }}
}}

tracepoint:syscalls:sys_enter_close
{{
  delete(@w[pid, args.fd]);
}}
"""]
    for call, count in (("write", "args.count"), ("pwrite64", "args.count"), ("writev", "args.vlen"),
                        ("pwritev", "args.vlen")):
        parts.append(f"""
tracepoint:syscalls:sys_enter_{call} /@w[pid, args.fd]/
{{
  {rec.format(op=call, fd="args.fd", a="@w[pid, args.fd]", b=count, s='""')}
}}""")
    parts.append(f"""
tracepoint:syscalls:sys_enter_mmap /@w[pid, args.fd] && (args.prot & 2) && (args.flags & 1)/
{{
  {rec.format(op="mmap-write", fd="args.fd", a="@w[pid, args.fd]", b="args.len", s='""')}
}}

tracepoint:syscalls:sys_enter_ftruncate /@w[pid, args.fd]/
{{
  {rec.format(op="ftruncate", fd="args.fd", a="@w[pid, args.fd]", b="args.length", s='""')}
}}

tracepoint:syscalls:sys_enter_fchmod /@w[pid, args.fd]/
{{
  {rec.format(op="fchmod", fd="args.fd", a="@w[pid, args.fd]", b="args.mode", s='""')}
}}""")
    if all_ops:
        # the open itself only for openat (dup'ed fds are tracked, not reported)
        parts[0] = parts[0].replace('printf("%s %d %d %d %s", "open"', 'if (probe == "tracepoint:syscalls:sys_exit_openat") { printf("%s %d %d %d %s", "open"', 1)
        parts[0] = parts[0].replace('$f->f_flags, "");', '$f->f_flags, ""); }', 1)
        for call, count in (("read", "args.count"), ("pread64", "args.count"), ("readv", "args.vlen")):
            parts.append(f"""
tracepoint:syscalls:sys_enter_{call} /@w[pid, args.fd]/
{{
  {rec.format(op=call, fd="args.fd", a="@w[pid, args.fd]", b=count, s='""')}
}}""")
        for call, arg, extra in (("unlinkat", "args.pathname", "0"), ("unlink", "args.pathname", "0"),
                                 ("fchmodat", "args.filename", "args.mode"), ("chmod", "args.filename", "args.mode"),
                                 ("truncate", "args.path", "args.length")):
            if not exists(f"syscalls:sys_enter_{call}"):
                continue
            parts.append(f"""
tracepoint:syscalls:sys_enter_{call} /{_paths(ws, f"str({arg})")}/
{{
  {rec.format(op=call, fd="-1", a="0", b=extra, s=f"str({arg})")}
}}""")
        for call in ("renameat2", "renameat", "rename"):
            if not exists(f"syscalls:sys_enter_{call}"):
                continue
            parts.append(f"""
tracepoint:syscalls:sys_enter_{call} /{_paths(ws, "str(args.oldname)")} || {_paths(ws, "str(args.newname)")}/
{{
  {rec.format(op="rename", fd="-1", a="0", b="0", s='str(args.newname)')}
}}""")
    return "\n".join(parts)


def seed(session: Any, ws: Sequence[Watch], proc: str = "/proc") -> int:
    """Put the (pid, fd) of every process that has a watched file open into the map."""
    from ..kernel.bpfsys import map_update_elem

    fd_map = session.map_fds.get("@w")
    if fd_map is None:
        return 0
    want = {(w.dev, w.ino): w for w in ws}
    n = 0
    for pid in (p for p in os.listdir(proc) if p.isdigit()):
        d = os.path.join(proc, pid, "fd")
        try:
            fds = os.listdir(d)
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(os.path.join(d, fd))
            except OSError:
                continue
            w = want.get((st.st_dev, st.st_ino))
            if w is not None:
                map_update_elem(fd_map, struct.pack("<QQ", int(pid), int(fd)), struct.pack("<q", w.kino))
                n += 1
    return n


def parse_record(rec: Any, ws: Sequence[Watch]) -> Dict[str, Any]:
    op, fd, ino, arg, text = rec.values
    by_ino = {w.kino: w for w in ws}
    w = by_ino.get(ino)
    path = w.path if w is not None else text
    d: Dict[str, Any] = {"ts": rec.ts, "pid": rec.pid, "tid": rec.tid, "comm": rec.comm, "op": op,
                         "path": path, "inode": ino or None, "fd": fd if fd >= 0 else None}
    if op in ("write", "pwrite64", "read", "pread64"):
        d["bytes"] = arg
    elif op in ("writev", "pwritev", "readv"):
        d["iovecs"] = arg
    elif op == "mmap-write":
        d["length"] = arg
    elif op in ("ftruncate", "truncate"):
        d["length"] = arg
    elif op in ("fchmod", "fchmodat"):
        d["mode"] = oct(arg & 0o7777)
    elif op == "open":
        d["flags"] = arg
        d["write"] = bool(arg & 3)
    elif op == "rename":
        d["to"] = text
    return d
