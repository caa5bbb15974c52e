"""The BPF program (bpftrace language) of ``undertow filewatch``, for one of two hook sets.

**syscalls** (every kernel with syscall tracepoints; this is what a kernel without kprobes
and fentry gets):

- the watched files are a map ``@ino[inode, dev] = watch number``, seeded by user space and
  grown in the kernel: an fd-returning call (``open``, ``creat``, ``openat``, ``openat2``,
  ``dup*``, ``fcntl``) whose new file's dentry is the watched *name* (parent directory inode
  + ``d_name``, so relative paths, symlinks and dirfds are resolved by the kernel) adds the
  file's inode: after ``unlink`` + create or a rename over the path, the path is watched
  again (user space also re-reads the path after a rename or link onto it);
- fd-based calls look up ``@w[pid, fd]`` (the fds of watched files): the write family,
  ``sendfile``/``splice``/``copy_file_range`` into the file, ``fallocate``, ``ftruncate``,
  ``fchmod``, ``fchown``, ``utimensat(fd, NULL)``, ``mmap`` (shared + writable), the
  ioctls that clone into the file or set its flags (``chattr``);
- path-based calls compare the path string: an absolute path with the watched path; a
  relative one (to ``AT_FDCWD`` = the task's cwd, or to a dirfd) by the directory's inode and
  the rest of the path (``sub/file`` from the directory above ...);
- io_uring: ``io_uring:io_uring_submit_req`` (``req->opcode``, ``req->cqe.fd``; 6.0/6.1:
  ``io_uring_submit_sqe``)
  for write, writev, fallocate, splice, tee, ftruncate on an fd of a watched file.

**vfs** (fentry, or kprobes as the BPF backend's fallback): the above, plus functions every
path goes through whatever the syscall: ``security_file_permission`` (MAY_WRITE),
``notify_change`` (truncate, chmod, chown, utimes), ``vfs_rename``, ``vfs_unlink``,
``vfs_link`` and ``security_file_open`` (a file opened under the watched name by any path
is added to ``@ino``). A per-thread mark ``@rep[tid]`` set by a syscall probe that already
reported the event keeps the kernel hooks from reporting it again until the syscall returns
(``raw_syscalls:sys_exit`` clears it).

Each record: ``op fd watch inode a b c s1 s2 netns pidns`` (:data:`FIELDS`); records
without strings leave ``s1 s2`` out.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, List, Sequence

__all__ = ["FIELDS", "VFS_FUNCS", "program", "IOURING_OPS", "IOCTLS"]

FIELDS = ("op", "fd", "watch", "inode", "a", "b", "c", "s1", "s2", "netns", "pidns")

#: The kernel functions of the vfs hook set (BTF names; present in 6.1 and 6.12).
VFS_FUNCS = ("security_file_permission", "notify_change", "vfs_rename", "vfs_unlink", "vfs_link",
             "security_file_open")

#: io_uring opcodes that change a file (include/uapi/linux/io_uring.h) -> op name.
IOURING_OPS = {2: "io_uring-writev", 5: "io_uring-write", 17: "io_uring-fallocate", 23: "io_uring-write",
               30: "io_uring-splice", 33: "io_uring-tee", 55: "io_uring-ftruncate", 61: "io_uring-writev"}
#: ... and with --all, the reads.
IOURING_READS = {1: "io_uring-readv", 4: "io_uring-read", 22: "io_uring-read", 49: "io_uring-read",
                 60: "io_uring-readv"}

#: ioctl commands that change a file -> name (include/uapi/linux/fs.h)
IOCTLS = {0x40049409: "FICLONE", 0x4020940D: "FICLONERANGE", 0x40086602: "FS_IOC_SETFLAGS",
          0x401C5820: "FS_IOC_FSSETXATTR"}

_AT_FDCWD = -100
_T = "((struct task_struct *)curtask)"
_NS = f"{_T}->nsproxy->net_ns->ns.inum, {_T}->thread_pid->numbers[{_T}->thread_pid->level].ns->ns.inum"


def _rec(op: str, fd: str = "-1", watch: str = "0", ino: str = "0", a: str = "0", b: str = "0", c: str = "0",
         s1: str = '""', s2: str = '""') -> str:
    """One record; ``op`` is a name made here (never outside text). Without strings the
    record has no string slots (each is ``strlen`` bytes in the ring buffer): 9 values."""
    if s1 == s2 == '""':
        return f'printf("%s %d %d %d %d %d %d %u %u", "{op}", {fd}, {watch}, {ino}, {a}, {b}, {c}, {_NS});'
    return (f'printf("%s %d %d %d %d %d %d %s %s %u %u", "{op}", {fd}, {watch}, {ino}, {a}, {b}, {c}, {s1}, {s2}, '
            f'{_NS});')


class _Dir:
    """What the program needs of one directory: the kernel's (inode, dev)."""

    def __init__(self, ino: int, dev: int) -> None:
        self.ino, self.dev = int(ino), int(dev)


def _name_match(ws: Sequence[Any], dentry: str, out: str) -> str:
    """Statements setting ``out`` to watch number + 1 when ``dentry`` (a ``struct dentry *``)
    is a watched name: its parent's inode is the watched file's directory and ``d_name`` the
    file's name."""
    from ..lang.bt import quote_string

    lines = [f"{out} = 0;",
             f"$pi_ = {dentry}->d_parent->d_inode->i_ino; $pd_ = {dentry}->d_parent->d_inode->i_sb->s_dev;"]
    for k, w in enumerate(ws):
        d = w.dirs[-1]
        lines.append(f"if ({out} == 0 && $pi_ == {d.ino} && $pd_ == {d.dev}) {{ "
                     f"if (str({dentry}->d_name.name) == {quote_string(w.name)}) {{ {out} = {k + 1}; }} }}")
    return "\n  ".join(lines)


def _dir_of(dfd: str, outi: str, outd: str) -> str:
    """Statements: the (inode, dev) of the directory a dirfd (or AT_FDCWD: the cwd) names."""
    cwd = (f"{outi} = {_T}->fs->pwd.dentry->d_inode->i_ino; "
           f"{outd} = {_T}->fs->pwd.dentry->d_inode->i_sb->s_dev;")
    if dfd == str(_AT_FDCWD):
        return cwd
    return (f"{outi} = 0; {outd} = 0;\n"
            f"  if ({dfd} == {_AT_FDCWD}) {{ {outi} = {_T}->fs->pwd.dentry->d_inode->i_ino; "
            f"{outd} = {_T}->fs->pwd.dentry->d_inode->i_sb->s_dev; }}\n"
            f"  else if ({dfd} >= 0 && {dfd} < {_T}->files->fdt->max_fds) {{ "
            f"$df_ = {_T}->files->fdt->fd[{dfd}]; if ($df_ != 0) {{ {outi} = $df_->f_inode->i_ino; "
            f"{outd} = $df_->f_inode->i_sb->s_dev; }} }}")


def _fd_lookup(fd: str) -> str:
    """Statements: ``$f`` the file of ``fd``, ``$k`` its watch + 1 (``@w``, or for a process
    that inherited fds, the file's inode in ``@ino``; remembered in ``@w``)."""
    return (f"$k = @w[pid, {fd}]; $f = (struct file *)0;\n"
            f"  if ({fd} >= 0 && {fd} < {_T}->files->fdt->max_fds) {{ $f = {_T}->files->fdt->fd[{fd}]; }}\n"
            f"  if ($k == 0 && $f != 0) {{ $k = @ino[$f->f_inode->i_ino, $f->f_inode->i_sb->s_dev]; "
            f"if ($k != 0) {{ @w[pid, {fd}] = $k; }} }}")


def _path_match(ws: Sequence[Any], s: str, di: str, dd: str, outk: str, outj: str) -> str:
    """Statements setting ``outk`` (watch + 1) and ``outj`` (0: absolute; j: relative to the
    j-th directory of the watch's path, counted from the root) for path string ``s``."""
    from ..lang.bt import quote_string

    lines = [f"{outk} = 0; {outj} = 0;"]
    for k, w in enumerate(ws):
        if len(w.path.encode("utf-8", "surrogateescape")) <= 255:  # a comparison reads at most 255 bytes
            lines.append(f"if ({outk} == 0 && {s} == {quote_string(w.path)}) {{ {outk} = {k + 1}; }}")
        for j, (d, rest) in enumerate(zip(w.dirs, w.rests)):
            if len(rest.encode("utf-8", "surrogateescape")) > 255:
                continue  # a comparison reads at most 255 bytes (filewatch.path_limit)
            lines.append(f"if ({outk} == 0 && {di} == {d.ino} && {dd} == {d.dev} && {s} == {quote_string(rest)}) "
                         f"{{ {outk} = {k + 1}; {outj} = {j + 1}; }}")
    return "\n  ".join(lines)


def program(ws: Sequence[Any], all_ops: bool, hooks: str = "syscalls",
            have: "Callable[[str], bool] | None" = None, uring: "str | None" = "io_uring_submit_req") -> str:
    """The program for watches ``ws`` (:class:`undertow.tools.filewatch.Watch`, with ``dirs``,
    ``rests``, ``name``); ``hooks`` is ``"syscalls"`` or ``"vfs"``; ``have(event)`` says
    whether a tracepoint (``syscalls:sys_enter_open``) exists: the legacy calls exist on
    x86_64, not on aarch64; ``uring``: the io_uring tracepoint taking the request first
    (``io_uring_submit_req``, 6.0/6.1's ``io_uring_submit_sqe``), or None."""
    def exists(name: str) -> bool:
        return have is None or bool(have(name))

    vfs = hooks == "vfs"
    mark = "@rep[tid] = 1;" if vfs else ""
    parts: List[str] = []
    # -- fds of watched files: opens (by inode, or by the watched name) and duplicates
    opens = [c for c in ("open", "creat", "openat", "openat2") if c == "openat" or exists(f"syscalls:sys_exit_{c}")]
    dups = [c for c in ("dup", "dup2", "dup3", "fcntl") if exists(f"syscalls:sys_exit_{c}")]
    openrep = [
        # O_TRUNC with write access (handle_truncate(), fs/namei.c) wipes the file; FMODE_CREATED
        # (0x100000, include/linux/fs.h) says this open created it
        'if ($how != 0) {',
        f'    if ($f->f_mode & 0x100000) {{ {_rec("create", "args.ret", "$k", "$ino", "$f->f_flags")} {mark} }}',
        f'    else if ($how == 2 && ($f->f_flags & 3)) {{ {_rec("open-trunc", "args.ret", "$k", "$ino", "$f->f_flags")} }}',
    ]
    if all_ops:
        openrep.append(f'    else {{ {_rec("open", "args.ret", "$k", "$ino", "$f->f_flags")} }}')
    openrep.append("  }")
    # do_dentry_open() clears O_TRUNC from f_flags (fs/open.c): the flag is taken at entry
    # (vfs: the truncation's notify_change is the open's row; overlayfs passes it on to the
    # upper file without ATTR_OPEN, fs/overlayfs/inode.c ovl_setattr())
    tr = "@tr[tid] = 1; " + ("@rep[tid] = 1;" if vfs else "")
    trunc_enter = [f"tracepoint:syscalls:sys_enter_{c} /args.flags & 0x200/ {{ {tr} }}"
                   for c in ("open", "openat") if c in opens]
    if "openat2" in opens:
        trunc_enter.append("tracepoint:syscalls:sys_enter_openat2 /((struct open_how *)args.how)->flags & 0x200/ "
                           f"{{ {tr} }}")
    if "creat" in opens:
        trunc_enter.append(f"tracepoint:syscalls:sys_enter_creat {{ {tr} }}")   # O_CREAT|O_WRONLY|O_TRUNC
    parts.append("\n".join(trunc_enter))
    # one probe per syscall event: a second one would be an attachment of its own (dispatch.py)
    opening = " || ".join(f'probe == "tracepoint:syscalls:sys_exit_{c}"' for c in opens)
    parts.append(f"""
{", ".join(f"tracepoint:syscalls:sys_exit_{c}" for c in opens + dups)}
{{
  if (args.ret < 0) {{ delete(@tr[tid]); }}
  else if (args.ret < {_T}->files->fdt->max_fds) {{
  $f = {_T}->files->fdt->fd[args.ret];
  if ($f != 0) {{
  $ino = $f->f_inode->i_ino;
  $dev = $f->f_inode->i_sb->s_dev;
  $k = @ino[$ino, $dev];
  $nk = 0;
  if ($k == 0 || ($f->f_mode & 0x100000)) {{
  {_name_match(ws, "$f->f_path.dentry", "$nk")}
  // a file this open created is a new inode: a watched number seen again was reused
  if ($k != 0 && $nk == 0) {{ delete(@ino[$ino, $dev]); }}
  $k = $nk;
  if ($k != 0) {{ @ino[$ino, $dev] = $k; }}
  }}
  $how = 0;
  if ({opening}) {{ $how = 1 + @tr[tid]; delete(@tr[tid]); }}
  if ($k != 0) {{
  @w[pid, args.ret] = $k;
  @has[pid] = 1;
  {chr(10).join(openrep)}
  }}
  }}
  }}
}}

tracepoint:syscalls:sys_enter_close /@w[pid, args.fd]/
{{
  delete(@w[pid, args.fd]);
}}

// a child inherits its parent's fds: its fd-based calls also look at its fd table
tracepoint:sched:sched_process_fork /@has[pid]/
{{
  @has[args.child_pid] = 1;
  @inh[args.child_pid] = 1;
}}

tracepoint:sched:sched_process_exit /@has[pid] && tid == pid/
{{
  delete(@has[pid]);
  delete(@inh[pid]);
}}
""")
    # -- fd-based calls
    fdcalls = [("write", "fd", "args.count", "0"), ("pwrite64", "fd", "args.count", "args.pos"),
               ("writev", "fd", "args.vlen", "0"), ("pwritev", "fd", "args.vlen", "args.pos_l"),
               ("pwritev2", "fd", "args.vlen", "args.pos_l"), ("sendfile64", "out_fd", "args.count", "0"),
               ("splice", "fd_out", "args.len", "0"), ("copy_file_range", "fd_out", "args.len", "0"),
               ("fallocate", "fd", "args.len", "args.offset"), ("ftruncate", "fd", "args.length", "0"),
               ("fchmod", "fd", "args.mode", "0"), ("fchown", "fd", "args.user", "args.group")]
    if all_ops:
        fdcalls += [("read", "fd", "args.count", "0"), ("pread64", "fd", "args.count", "args.pos"),
                    ("readv", "fd", "args.vlen", "0"), ("preadv", "fd", "args.vlen", "args.pos_l"),
                    ("preadv2", "fd", "args.vlen", "args.pos_l")]
    for call, fd, a, b in fdcalls:
        if not exists(f"syscalls:sys_enter_{call}"):
            continue
        op = "sendfile" if call == "sendfile64" else call
        c = "args.mode" if call == "fallocate" else "0"
        rep = mark if call not in ("read", "pread64", "readv", "preadv", "preadv2") else ""
        parts.append(f"""
tracepoint:syscalls:sys_enter_{call} /@w[pid, args.{fd}] || @inh[pid]/
{{
  {_fd_lookup(f"args.{fd}")}
  if ($k != 0) {{
  {_rec(op, f"args.{fd}", "$k", "$f->f_inode->i_ino", a, b, c)}
  {rep}
  }}
}}""")
    parts.append(f"""
tracepoint:syscalls:sys_enter_mmap /(@w[pid, args.fd] || @inh[pid]) && (args.prot & 2) && (args.flags & 1)/
{{
  {_fd_lookup("args.fd")}
  if ($k != 0) {{
  {_rec("mmap-write", "args.fd", "$k", "$f->f_inode->i_ino", "args.len")}
  }}
}}""")
    # ioctls that change the file (include/uapi/linux/fs.h): FICLONE, FICLONERANGE (a clone
    # into it), FS_IOC_SETFLAGS (chattr: immutable, append-only), FS_IOC_FSSETXATTR
    cmds = " || ".join(f"args.cmd == {c:#x}" for c in sorted(IOCTLS))
    if exists("syscalls:sys_enter_ioctl"):
        parts.append(f"""
tracepoint:syscalls:sys_enter_ioctl /(@w[pid, args.fd] || @inh[pid]) && ({cmds})/
{{
  {_fd_lookup("args.fd")}
  if ($k != 0) {{
  {_rec("ioctl", "args.fd", "$k", "$f->f_inode->i_ino", "args.cmd")}
  {mark}
  }}
}}""")
    # -- path-based calls: (call, dirfd arg or None, path arg, a, b)
    pathcalls = [("unlinkat", "dfd", "pathname", "args.flag", "0"), ("unlink", None, "pathname", "0", "0"),
                 ("fchmodat", "dfd", "filename", "args.mode", "0"), ("fchmodat2", "dfd", "filename", "args.mode", "0"),
                 ("chmod", None, "filename", "args.mode", "0"),
                 ("fchownat", "dfd", "filename", "args.user", "args.group"),
                 ("chown", None, "filename", "args.user", "args.group"),
                 ("lchown", None, "filename", "args.user", "args.group"),
                 ("truncate", None, "path", "args.length", "0"),
                 ("utimensat", "dfd", "filename", "args.utimes", "0"), ("futimesat", "dfd", "filename", "args.utimes", "0"),
                 ("utimes", None, "filename", "args.utimes", "0"), ("utime", None, "filename", "args.times", "0")]
    for call, dfd, arg, a, b in pathcalls:
        if not exists(f"syscalls:sys_enter_{call}"):
            continue
        body = f"""{_dir_of(f"args.{dfd}" if dfd else str(_AT_FDCWD), "$di", "$dd")}
  {_path_match(ws, f"str(args.{arg})", "$di", "$dd", "$k", "$j")}
  if ($k != 0) {{
  {_rec(call, "-1", "$k", "0", a, b, "$j", f"str(args.{arg})")}
  {mark}
  }}"""
        if call == "utimensat":
            # utimensat(fd, NULL, ...) is futimens(): fd-based
            body = f"""if (args.filename == 0) {{
  if (@w[pid, args.dfd] || @inh[pid]) {{
  {_fd_lookup("args.dfd")}
  if ($k != 0) {{
  {_rec("utimensat", "args.dfd", "$k", "$f->f_inode->i_ino", "args.utimes")}
  {mark}
  }}
  }}
  }} else {{
  {body}
  }}"""
        parts.append(f"""
tracepoint:syscalls:sys_enter_{call}
{{
  {body}
}}""")
    # -- two-path calls: rename (either side) and link (a new name for the file, or onto the path)
    for call, od, nd in (("renameat2", "olddfd", "newdfd"), ("renameat", "olddfd", "newdfd"), ("rename", None, None),
                         ("linkat", "olddfd", "newdfd"), ("link", None, None)):
        if not exists(f"syscalls:sys_enter_{call}"):
            continue
        op = "rename" if call.startswith("rename") else "link"
        same = "1" if od is None else f"args.{od} == args.{nd}"
        flags = "args.flags" if call in ("renameat2", "linkat") else "0"
        parts.append(f"""
tracepoint:syscalls:sys_enter_{call}
{{
  {_dir_of(f"args.{od}" if od else str(_AT_FDCWD), "$oi", "$odv")}
  {_path_match(ws, "str(args.oldname)", "$oi", "$odv", "$ko", "$jo")}
  {_dir_of(f"args.{nd}" if nd else str(_AT_FDCWD), "$ni", "$ndv")}
  {_path_match(ws, "str(args.newname)", "$ni", "$ndv", "$kn", "$jn")}
  if ($ko != 0 || $kn != 0) {{
  {_rec(op, f"({same})", "$ko", flags, "$kn", "$jo", "$jn", "str(args.oldname)", "str(args.newname)")}
  {mark}
  }}
}}""")
    # -- io_uring: the request's fd at submission (req->cqe.fd, set by io_init_req()); a
    # registered ("fixed") file is an index, not an fd (REQ_F_FIXED_FILE, bit 0 of req->flags)
    if uring and exists(f"io_uring:{uring}"):
        ops = {**IOURING_OPS, **(IOURING_READS if all_ops else {})}
        cond = " || ".join(f"$op == {n}" for n in sorted(ops))
        names = "\n  ".join(f'{"if" if i == 0 else "else if"} ($op == {n}) {{ '
                            f'{_rec(name, "$fd", "$k", "$ino", "$r->cqe.res", "$op")} }}'
                            for i, (n, name) in enumerate(sorted(ops.items())))
        parts.append(f"""
rawtracepoint:{uring}
{{
  $r = (struct io_kiocb *)arg0;
  $op = $r->opcode;
  $fd = $r->cqe.fd;
  if (({cond}) && !($r->flags & 1) && $fd >= 0 && $fd < {_T}->files->fdt->max_fds) {{
  $f = {_T}->files->fdt->fd[$fd];
  if ($f != 0) {{
  $ino = $f->f_inode->i_ino;
  $k = @ino[$ino, $f->f_inode->i_sb->s_dev];
  if ($k != 0) {{
  {names}
  {mark}
  }}
  }}
  }}
}}""")
    if vfs:
        parts.append(_vfs_part(ws))
    return "\n".join(parts)


def _vfs_part(ws: Sequence[Any]) -> str:
    """The kernel-function hooks (fentry; kprobes where fentry is refused)."""
    # a syscall probe that reported the event marked the thread until the syscall returns
    # (one syscall may pass a hook twice: 6.1's splice to a file checks the permission in
    # do_splice() and again in vfs_iter_write())
    skip = "if (@rep[tid] == 0)"
    return f"""
tracepoint:raw_syscalls:sys_exit /@rep[tid]/
{{
  delete(@rep[tid]);
}}

kfunc:security_file_permission /args.mask & 2/
{{
  $i = args.file->f_inode;
  $k = @ino[$i->i_ino, $i->i_sb->s_dev];
  if ($k != 0) {{
  {skip} {{ {_rec("vfs-write", "-1", "$k", "$i->i_ino", "args.mask")} }}
  }}
}}

kfunc:notify_change
{{
  $d = args.dentry;
  $i = $d->d_inode;
  $k = @ino[$i->i_ino, $i->i_sb->s_dev];
  if ($k == 0) {{
  {_name_match(ws, "$d", "$k")}
  }}
  // ATTR_OPEN (0x8000): the O_TRUNC of an open, reported by the open
  if ($k != 0 && !(args.attr->ia_valid & 0x8000)) {{
  {skip} {{ {_rec("setattr", "-1", "$k", "$i->i_ino", "args.attr->ia_valid", "args.attr->ia_mode", "args.attr->ia_size")} }}
  }}
}}

kfunc:vfs_unlink
{{
  $d = args.dentry;
  $i = $d->d_inode;
  $k = @ino[$i->i_ino, $i->i_sb->s_dev];
  if ($k == 0) {{
  {_name_match(ws, "$d", "$k")}
  }}
  if ($k != 0) {{
  {skip} {{ {_rec("vfs-unlink", "-1", "$k", "$i->i_ino", s1="str($d->d_parent->d_name.name)", s2="str($d->d_name.name)")} }}
  }}
}}

kfunc:vfs_link
{{
  $d = args.old_dentry;
  $i = $d->d_inode;
  $k = @ino[$i->i_ino, $i->i_sb->s_dev];
  $n = args.new_dentry;
  {_name_match(ws, "$n", "$kn")}
  if ($kn != 0) {{ @ino[$i->i_ino, $i->i_sb->s_dev] = $kn; }}
  if ($k != 0 || $kn != 0) {{
  {skip} {{ {_rec("vfs-link", "($d->d_parent == $n->d_parent)", "$k", "$i->i_ino", "$kn", s1="str($d->d_name.name)", s2="str($n->d_name.name)")} }}
  }}
}}

kfunc:vfs_rename
{{
  $od = args.rd->old_dentry;
  $nd = args.rd->new_dentry;
  $i = $od->d_inode;
  $ko = @ino[$i->i_ino, $i->i_sb->s_dev];
  if ($ko == 0) {{
  {_name_match(ws, "$od", "$ko")}
  }}
  $kn = 0;
  if ($nd->d_inode != 0) {{ $kn = @ino[$nd->d_inode->i_ino, $nd->d_inode->i_sb->s_dev]; }}
  if ($kn == 0) {{
  {_name_match(ws, "$nd", "$kn")}
  }}
  // the file renamed onto a watched name is watched from now on
  if ($kn != 0) {{ @ino[$i->i_ino, $i->i_sb->s_dev] = $kn; }}
  if ($ko != 0 || $kn != 0) {{
  {skip} {{ {_rec("vfs-rename", "($od->d_parent == $nd->d_parent)", "$ko", "$i->i_ino", "$kn", s1="str($od->d_name.name)", s2="str($nd->d_name.name)")} }}
  }}
}}

kfunc:security_file_open
{{
  $f = args.file;
  $i = $f->f_inode;
  if (@ino[$i->i_ino, $i->i_sb->s_dev] == 0) {{
  {_name_match(ws, "$f->f_path.dentry", "$k")}
  if ($k != 0) {{ @ino[$i->i_ino, $i->i_sb->s_dev] = $k; }}
  }}
}}
"""
