"""`undertow exec`: every successful execve/execveat, as the kernel saw it at the event.

One BPF program on ``sched:sched_process_exec`` (every kernel), fired in ``exec_binprm()``
after ``begin_new_exec()`` installed the new program, so ``current`` is the new image:

- ``comm``: the record's task name, set by ``begin_new_exec()`` (the new program's, also
  after ``exec -a NAME``; for ``execveat(fd, "", AT_EMPTY_PATH)`` newer kernels name it after
  the file's dentry, ``memfd:NAME`` (fs/exec.c ``bprm->comm_from_dentry``, about 6.14), older
  ones after the fd number, ``3``);
- ``argv``: the first :data:`ARGV_MAX` bytes of the new ``mm_struct``'s argument area,
  ``current->mm->arg_start .. arg_end``: the NUL-separated strings ``copy_strings()``
  wrote there (pages present: the kernel just wrote them), as the program will see them
  (after a ``#!`` script: the interpreter's argv). This area, not the ``execve`` syscall's
  ``argv`` pointers, because it is one bounded read at one hook for every way in (execve,
  execveat, fexecve, 32-bit compat calls, binfmt_misc) and it exists only for an exec that
  succeeded; a longer area is sent cut, with ``argv_truncated``;
- ``exe``: ``mm->exe_file`` (the binary that runs: the interpreter of a script), its path
  walked up the dentry tree as ``d_path()`` does (crossing mounts: ``struct mount``'s
  ``mnt_mountpoint``) to the task's root (``fs->root``: the path as the process sees it, in a
  chroot or a container), at most :data:`PATH_DEPTH` names; the dentry's link count and hash state say a deleted file, a
  dentry that is its own parent a pseudo file (``memfd_create``: ``/memfd:NAME (deleted)``,
  as ``d_path()`` names it through ``simple_dname()``);
- ``netns``/``pidns``: ``nsproxy->net_ns->ns.inum`` and the task's own pid namespace
  (``thread_pid->numbers[level].ns``), the inode numbers ``/proc/PID/ns/{net,pid}`` show;
- ``ld_preload``/``ld_audit``: those variables in the first :data:`ENV_MAX` bytes of the new
  mm's environment area (``env_start .. env_end``, written by ``copy_strings()`` next to the
  arguments), the dynamic loader's ways to run a library inside the program (ld.so(8)).

Execs that fail (``execve``/``execveat`` returning an error: ENOENT, EACCES, ENOEXEC, E2BIG...)
have no ``sched_process_exec``: ``syscalls:sys_enter_execve{,at}`` keep the user's filename
and argv pointers per thread, ``sys_exit_execve{,at}`` with a negative result reads them
(the old mm is intact: an error returned to the caller happens before the point of no return,
fs/exec.c ``bprm_execve()``) and sends the file name, the first :data:`FAILED_ARGS` arguments
(:data:`FAILED_ARG_LEN` bytes each) and the error; comm is the program that tried.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ["ARGV_MAX", "ENV_MAX", "PATH_DEPTH", "FAILED_ARGS", "program", "parse_record", "split_argv", "exe_path",
           "fileless", "loader_vars"]

#: Bytes of the argument area sent per exec (the rest is marked ``argv_truncated``).
ARGV_MAX = 4096
#: Bytes of the environment area searched for LD_PRELOAD/LD_AUDIT.
ENV_MAX = 4096
#: Arguments (and bytes of each) sent for a failed exec.
FAILED_ARGS, FAILED_ARG_LEN = 16, 256
#: Names of the executed file's path sent (the file and its directories up to /).
PATH_DEPTH = 12

#: super_block.s_magic of the file systems memfd_create() files live on
TMPFS_MAGIC, HUGETLBFS_MAGIC = 0x01021994, 0x958458F6

# one step up the path, as d_path() walks it: to the parent, then out of every mount whose
# root that is (a mount stacked on a mount: twice); stop at the task's root (fs->root: a
# chroot, a container's root) or at the top of the tree (a dentry that is its own parent)
_STEP = """
  if ($top == 0) {{
    $d = $d->d_parent;{cross}
    if (($d == $rd && $m == $rm) || $d == $d->d_parent) {{ $top = 1; }} else {{ $n = $n + 1; }}
  }}
  $d{k} = $d;"""

_CROSS = """
    unroll(2) {
      if (!($d == $rd && $m == $rm) && $d == $m->mnt.mnt_root && $m != $m->mnt_parent) {
        $d = $m->mnt_mountpoint; $m = $m->mnt_parent;
      }
    }"""

_EXEC = """
tracepoint:sched:sched_process_exec{filter}
{{
  $t = (struct task_struct *)curtask;
  $mm = $t->mm;
  $len = $mm->arg_end - $mm->arg_start;
  $f = $mm->exe_file;
  $d = $f->f_path.dentry;
  $pseudo = $d == $d->d_parent ? 1 : 0;
  $m = (struct mount *)((uint64)$f->f_path.mnt - offsetof(struct mount, mnt));
  $rd = $t->fs->root.dentry;
  $rm = (struct mount *)((uint64)$t->fs->root.mnt - offsetof(struct mount, mnt));{cross}
  $top = $d == $d->d_parent ? 1 : 0;
  $n = 1;
  $d0 = $d;{steps}
  $pn = $t->thread_pid;
  $el = $mm->env_end - $mm->env_start;
  printf("{fmt}", $t->real_parent->tgid, uid, $len, $t->nsproxy->net_ns->ns.inum,
         $pn->numbers[$pn->level].ns->ns.inum, $f->f_path.dentry->d_inode->i_nlink,
         $f->f_path.dentry->d_hash.pprev == 0 ? 1 : 0, $pseudo, $f->f_path.dentry->d_sb->s_magic, $n, $top,
         str(args.filename), buf(uptr($mm->arg_start), $len){names}, $el, buf(uptr($mm->env_start), $el));
}}
"""

# failed execs: the user's pointers kept at entry, read at an error return (the caller's mm)
_FAILED = """
tracepoint:syscalls:sys_enter_execve{filter} {{ @xf[tid] = (uint64)args.filename; @xa[tid] = (uint64)args.argv;
  @xd[tid] = -100; }}
tracepoint:syscalls:sys_enter_execveat{filter} {{ @xf[tid] = (uint64)args.filename; @xa[tid] = (uint64)args.argv;
  @xd[tid] = args.fd + 1000000; }}
tracepoint:syscalls:sys_exit_execve, tracepoint:syscalls:sys_exit_execveat /@xf[tid]/
{{
  if (args.ret < 0) {{
    $t = (struct task_struct *)curtask;
    $pn = $t->thread_pid;
    $a = @xa[tid];
    $p0 = $a != 0 ? *(uint64 *)uptr($a) : 0;{reads}
    printf("{fmt}", "failed", args.ret, @xd[tid], $t->real_parent->tgid, uid, $t->nsproxy->net_ns->ns.inum,
           $pn->numbers[$pn->level].ns->ns.inum, $p{n} != 0 ? 1 : 0, str(uptr(@xf[tid])){args});
  }}
  delete(@xf[tid]); delete(@xa[tid]); delete(@xd[tid]);
}}
"""

# --pid: the process and every process forked from it after the start (as ftrace's
# event-fork follows them); a thread's entry goes when it exits
_FOLLOW = """
tracepoint:sched:sched_process_fork /pid == {pid} || @follow[pid]/ {{ @follow[args.child_pid] = 1; }}
tracepoint:sched:sched_process_exit /@follow[tid]/ {{ delete(@follow[tid]); }}
"""

_INTS = 11


def program(follow_pid: Optional[int] = None) -> str:
    """The tool's program (bpftrace language); ``follow_pid``: only that process and its
    descendants forked after the start (an integer, validated by the caller)."""
    steps = "".join(_STEP.format(k=k, cross=_CROSS) for k in range(1, PATH_DEPTH))
    names = "".join(f", str($d{k}->d_name.name, 255)" for k in range(PATH_DEPTH))  # NAME_MAX
    fmt = " ".join(["%d"] * _INTS + ["%s", "%r"] + ["%s"] * PATH_DEPTH + ["%d", "%r"])
    text = ""
    filt = ""
    if follow_pid is not None:
        pid = int(follow_pid)
        text = _FOLLOW.format(pid=pid)
        filt = f" /pid == {pid} || @follow[pid]/"
    # argv[k] read only while the ones before it were set; argv[FAILED_ARGS] says "more"
    reads = "".join(f"\n    $p{k} = $p{k - 1} != 0 ? *(uint64 *)uptr($a + {8 * k}) : 0;"
                    for k in range(1, FAILED_ARGS + 1))
    fargs = "".join(f", str(uptr($p{k}), {FAILED_ARG_LEN})" for k in range(FAILED_ARGS))
    ffmt = " ".join(["%s"] + ["%d"] * 7 + ["%s"] * (1 + FAILED_ARGS))
    failed = _FAILED.format(filter=filt, reads=reads, fmt=ffmt, n=FAILED_ARGS, args=fargs)
    return text + _EXEC.format(filter=filt, steps=steps, fmt=fmt, names=names, cross=_CROSS) + failed


#: The settings the program needs: the argument area and file names read whole.
SETTINGS = {"bufsize": ARGV_MAX, "strlen": 4096}


def split_argv(raw: bytes, length: int) -> Tuple[List[str], bool]:
    """The argument strings of ``raw`` (the first bytes of a ``length``-byte NUL-separated
    argument area) and whether the area was longer than what was read; the last string of
    a cut area is kept as far as it was read. Bytes that are not UTF-8 are kept as surrogate
    escapes."""
    truncated = length > len(raw)
    data = raw
    if data.endswith(b"\x00"):
        data = data[:-1]
    parts = data.split(b"\x00") if data else []
    return [p.decode("utf-8", "surrogateescape") for p in parts], truncated


def exe_path(names: Sequence[str], depth: int, complete: bool, pseudo: bool, deleted: bool) -> str:
    """The executed file's path as ``d_path()`` shows it, from the dentry names the program
    walked (the file first, ``depth`` of them): a pseudo file (``memfd_create``) is
    ``/NAME (deleted)``, a deleted file's path ends in `` (deleted)``; a walk that did not
    reach ``/`` starts with ``...``."""
    if pseudo:
        return f"/{names[0] if names else ''} (deleted)"
    parts = list(reversed(list(names[:depth])))
    path = ("/" if complete else ".../") + "/".join(parts)
    return path + " (deleted)" if deleted else path


def fileless(names: Sequence[str], pseudo: bool, deleted: bool, magic: int) -> Optional[str]:
    """Why the executed file is not a file on disk: ``"memfd"`` (``memfd_create``, a pseudo
    file on tmpfs/hugetlbfs named ``memfd:...``), ``"deleted"`` (unlinked, or never linked:
    ``O_TMPFILE``), ``"anonymous"`` (another pseudo file); ``None`` for a file with a name."""
    name = names[0] if names else ""
    if pseudo and magic in (TMPFS_MAGIC, HUGETLBFS_MAGIC) and name.startswith("memfd:"):
        return "memfd"
    if pseudo:
        return "anonymous"
    if deleted:
        return "deleted"
    return None


def loader_vars(raw: bytes) -> Dict[str, Optional[str]]:
    """``ld_preload``/``ld_audit``: the values of ``LD_PRELOAD``/``LD_AUDIT`` among the
    NUL-separated ``NAME=value`` strings of an environment area (None when absent; the last
    one wins, as glibc's ``getenv`` does not promise, so the loader's own rule: the first)."""
    out: Dict[str, Optional[str]] = {"ld_preload": None, "ld_audit": None}
    if b"LD_" not in raw:
        return out
    for item in raw.split(b"\x00"):
        for key, name in ((b"LD_PRELOAD=", "ld_preload"), (b"LD_AUDIT=", "ld_audit")):
            if item.startswith(key) and out[name] is None:
                out[name] = item[len(key):].decode("utf-8", "surrogateescape")
    return out


def _failed(rec: Any) -> Dict[str, Any]:
    """A failed ``execve``/``execveat`` record -> its event (``error``: the errno name)."""
    import errno

    v = rec.values
    ret, dirfd, ppid, uid, netns, pidns, more = v[1:8]
    filename, args = v[8], list(v[9:])
    n = next((i for i, a in enumerate(args) if a == ""), len(args))
    # an empty string stops the list (a NULL pointer, or an empty argument: rare, shown cut)
    argv = args[:n]
    code = -ret
    return {
        "ts": rec.ts, "pid": rec.pid, "ppid": ppid, "uid": uid, "comm": rec.comm, "filename": filename,
        "syscall": "execve" if dirfd == -100 else "execveat",
        "dirfd": None if dirfd == -100 else dirfd - 1000000,
        "exe": None, "fileless": None, "argv": argv,
        "argv_truncated": bool(more) or any(len(a.encode("utf-8", "surrogateescape")) >= FAILED_ARG_LEN - 1
                                            for a in argv),
        "argv_bytes": None, "netns": netns, "pidns": pidns,
        "error": errno.errorcode.get(code, str(code)), "result": ret,
    }


def parse_record(rec: Any) -> Dict[str, Any]:
    """One ``sched_process_exec`` record (or a failed exec's) -> the event's JSON-ready fields
    (the /proc ones are added by the caller where the kernel sent nothing)."""
    v = rec.values
    if v and v[0] == "failed":
        return _failed(rec)
    ppid, uid, length, netns, pidns, nlink, unhashed, pseudo, magic, depth, top = v[:_INTS]
    filename, raw = v[_INTS], v[_INTS + 1]
    names = list(v[_INTS + 2:_INTS + 2 + PATH_DEPTH])
    env = v[_INTS + 2 + PATH_DEPTH + 1] if len(v) > _INTS + 3 + PATH_DEPTH else b""
    argv: Optional[List[str]]
    argv, truncated = split_argv(raw, length)
    if raw and not raw.strip(b"\x00"):
        argv, truncated = None, False  # the read failed (zeros): /proc may still tell
    deleted = bool(nlink == 0 or unhashed)
    return {
        "ts": rec.ts, "pid": rec.pid, "ppid": ppid, "uid": uid, "comm": rec.comm, "filename": filename,
        "exe": exe_path(names, depth, bool(top), bool(pseudo), deleted),
        "fileless": fileless(names, bool(pseudo), deleted, magic),
        "argv": argv, "argv_truncated": truncated, "argv_bytes": length,
        "netns": netns, "pidns": pidns, **loader_vars(env), "error": None,
    }
