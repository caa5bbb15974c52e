"""Ways to change a file that `undertow filewatch` must see: each technique is a function
run in a child process named after it (``prctl(PR_SET_NAME)``), or a real program (cp, mv,
fallocate, chmod ...). Used by tests/live/test_tool_filewatch_live.py and runnable alone to
measure the tool: ``python3 tests/live/fw_techniques.py [--all] [TECHNIQUE...]`` prints, per
technique, whether an event with the expected op, path, pid and comm was seen.

Every technique works on ``PATH`` (the watched file) in ``DIR`` and leaves a regular file
at ``PATH`` when it ends (a replaced or recreated one when that is the point)."""

import ctypes
import mmap
import os
import struct
import subprocess
import sys

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long

# x86_64 syscall numbers (asm/unistd_64.h); other architectures skip the raw-syscall techniques
NR = {"open": 2, "creat": 85, "futimesat": 261, "openat2": 437, "io_uring_setup": 425,
      "io_uring_enter": 426, "chown": 92, "lchown": 94, "utimes": 235}
X86_64 = os.uname().machine == "x86_64"


def _sys(name, *a):
    r = LIBC.syscall(ctypes.c_long(NR[name]), *a)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{name}: {os.strerror(e)}")
    return r


def _name(comm):
    PR_SET_NAME = 15
    LIBC.prctl(PR_SET_NAME, ctypes.c_char_p(comm.encode()[:15]), 0, 0, 0)


def _other(d, tag):
    p = os.path.join(d, "other." + tag)
    with open(p, "w") as f:
        f.write("replacement " + tag + "\n")
    return p


# -- the techniques run in a child: (path, dir) -> None


def t_open2(path, d):
    """open(2) (not openat) then write."""
    fd = _sys("open", os.fsencode(path), os.O_WRONLY | os.O_APPEND, 0)
    os.write(fd, b"open2\n")
    os.close(fd)


def t_openat2(path, d):
    """openat2(2) with struct open_how, then write."""
    how = struct.pack("QQQ", os.O_WRONLY | os.O_APPEND, 0, 0)
    buf = ctypes.create_string_buffer(how)
    fd = _sys("openat2", -100, os.fsencode(path), buf, len(how))
    os.write(fd, b"openat2\n")
    os.close(fd)


def t_pwritev(path, d):
    fd = os.open(path, os.O_WRONLY)
    os.pwritev(fd, [b"pw", b"v\n"], 0)
    os.close(fd)


def t_pwritev2(path, d):
    fd = os.open(path, os.O_WRONLY)
    os.pwritev(fd, [b"pw", b"v2\n"], 0, os.RWF_SYNC)  # flags: glibc calls pwritev2
    os.close(fd)


def _dup_write(path, how):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    if how == "dup":
        nfd = LIBC.dup(fd)                    # os.dup() is fcntl(F_DUPFD_CLOEXEC)
    elif how == "dup2":
        nfd = os.dup2(fd, 77)
    elif how == "dup3":
        nfd = os.dup2(fd, 78, inheritable=False)  # dup3(O_CLOEXEC)
    else:
        import fcntl
        nfd = fcntl.fcntl(fd, fcntl.F_DUPFD, 90)
    os.close(fd)
    os.write(nfd, how.encode() + b"\n")
    os.close(nfd)


def t_dup(path, d):
    _dup_write(path, "dup")


def t_dup2(path, d):
    _dup_write(path, "dup2")


def t_dup3(path, d):
    _dup_write(path, "dup3")


def t_fcntl_dupfd(path, d):
    _dup_write(path, "fcntl")


def _source(d, tag):
    p = _other(d, tag)
    return os.open(p, os.O_RDONLY), p


def t_sendfile(path, d):
    src, p = _source(d, "sendfile")
    out = os.open(path, os.O_WRONLY)          # O_APPEND: EINVAL
    os.lseek(out, 0, os.SEEK_END)
    os.sendfile(out, src, 0, 5)
    os.close(out); os.close(src); os.unlink(p)


def t_splice(path, d):
    r, w = os.pipe()
    os.write(w, b"spliced\n")
    out = os.open(path, os.O_WRONLY)
    os.lseek(out, 0, os.SEEK_END)
    os.splice(r, out, 8)
    os.close(out); os.close(r); os.close(w)


def t_copy_file_range(path, d):
    src, p = _source(d, "cfr")
    out = os.open(path, os.O_WRONLY)
    os.copy_file_range(src, out, 5, 0, 0)
    os.close(out); os.close(src); os.unlink(p)


def t_chown(path, d):
    os.chown(path, 0, 0)                      # fchownat(AT_FDCWD, path) or chown(2)


def t_chown_legacy(path, d):
    _sys("chown", os.fsencode(path), 0, 0)    # chown(2)


def t_lchown(path, d):
    _sys("lchown", os.fsencode(path), 0, 0)


def t_fchown(path, d):
    fd = os.open(path, os.O_RDONLY)
    os.fchown(fd, 0, 0)
    os.close(fd)


def t_fchownat_dirfd(path, d):
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    os.chown(os.path.basename(path), 0, 0, dir_fd=dfd)
    os.close(dfd)


def t_utimensat(path, d):
    os.utime(path, (1, 1))                    # faked timestamps: utimensat(AT_FDCWD, path)


def t_futimens(path, d):
    fd = os.open(path, os.O_RDONLY)
    os.utime(fd, (2, 2))                      # utimensat(fd, NULL)
    os.close(fd)


def t_futimesat(path, d):
    tv = (ctypes.c_long * 4)(3, 0, 3, 0)
    _sys("futimesat", -100, os.fsencode(path), tv)


def t_chmod_relative(path, d):
    os.chdir(d)
    os.chmod(os.path.basename(path), 0o640)   # fchmodat(AT_FDCWD, "name")


def t_chmod_dirfd(path, d):
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    os.chmod(os.path.basename(path), 0o644, dir_fd=dfd)
    os.close(dfd)


def t_truncate_path(path, d):
    os.truncate(path, 3)                      # truncate(2)


def t_truncate_relative(path, d):
    os.chdir(os.path.dirname(d))
    os.truncate(os.path.join(os.path.basename(d), os.path.basename(path)), 2)


def t_o_trunc(path, d):
    os.close(os.open(path, os.O_WRONLY | os.O_TRUNC))   # what ': > file' does


def t_fallocate_punch(path, d):
    with open(path, "r+b") as f:
        f.write(b"x" * 8192); f.flush()
    fd = os.open(path, os.O_RDWR)
    FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2
    LIBC.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    if LIBC.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) != 0:
        raise OSError(ctypes.get_errno(), "fallocate")
    os.close(fd)


def t_unlink_recreate(path, d):
    os.unlink(path)
    with open(path, "w") as f:                # a new inode at the watched path
        f.write("recreated\n")
    with open(path, "a") as f:
        f.write("again\n")


def t_rename_over_then_write(path, d):
    os.chdir(d)
    p = _other(d, "mvw")
    os.rename(os.path.basename(p), os.path.basename(path))
    with open(path, "a") as f:
        f.write("after\n")


def t_rename_away(path, d):
    away = path + ".away"
    os.rename(path, away)
    with open(away, "a") as f:                # the watched inode, now at another name
        f.write("moved\n")
    os.rename(away, path)


def t_link_over_then_write(path, d):
    """unlink the path, hard-link another file to it, write through the path."""
    p = _other(d, "lnk")
    os.unlink(path)
    os.link(p, path)
    os.unlink(p)
    with open(path, "a") as f:
        f.write("linked in\n")


def t_hardlink_write(path, d):
    link = os.path.join(d, "hardlink")
    os.link(path, link)
    with open(link, "a") as f:
        f.write("via link\n")
    os.unlink(link)


def t_inherited_fd(path, d):
    """A write on an fd the parent opened (after the tool started) and passed down by fork."""
    os.write(int(sys.argv[5]), b"inherited\n")


def t_io_uring_write(path, d):
    """IORING_OP_WRITE on an fd, submitted through io_uring_enter (no write syscall)."""
    ring = _Uring()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    data = ctypes.create_string_buffer(b"uring\n")
    res = ring.submit(23, fd, ctypes.addressof(data), 6, -1)   # IORING_OP_WRITE, off -1: current position
    os.close(fd)
    ring.close()
    if res < 0:
        raise OSError(-res, "io_uring write")


def t_io_uring_renameat(path, d):
    """IORING_OP_RENAMEAT of another file onto the path (no rename syscall)."""
    ring = _Uring()
    old = ctypes.create_string_buffer(os.fsencode(_other(d, "uring")))
    new = ctypes.create_string_buffer(os.fsencode(path))
    res = ring.submit(35, -100, ctypes.addressof(old), -100, ctypes.addressof(new))
    ring.close()
    if res < 0:
        raise OSError(-res, "io_uring renameat")


def t_truncate_via_symlink(path, d):
    """truncate(2) through a symlink to the directory: the path string is not the watched one."""
    link = d + ".lnk"
    os.symlink(d, link)
    try:
        os.truncate(os.path.join(link, os.path.basename(path)), 1)
    finally:
        os.unlink(link)


class _Uring:
    """A one-entry io_uring, set up with raw syscalls (no liburing)."""

    def __init__(self):
        params = ctypes.create_string_buffer(120)
        self.fd = _sys("io_uring_setup", 4, params)
        p = params.raw
        sq_entries, cq_entries = struct.unpack_from("II", p, 0)
        sq_head, sq_tail, sq_mask, _, _, _, sq_array = struct.unpack_from("7I", p, 40)
        cq_head, cq_tail, cq_mask, _, _, cqes = struct.unpack_from("6I", p, 80)
        self.sq = mmap.mmap(self.fd, sq_array + sq_entries * 4, offset=0)
        self.cq = mmap.mmap(self.fd, cqes + cq_entries * 16, offset=0x8000000)
        self.sqes = mmap.mmap(self.fd, sq_entries * 64, offset=0x10000000)
        self.off = (sq_tail, sq_mask, sq_array, cq_head, cq_tail, cq_mask, cqes)

    def submit(self, op, fd, addr, length, offset, rw_flags=0):
        sq_tail, sq_mask, sq_array, cq_head, cq_tail, cq_mask, cqes = self.off
        tail = struct.unpack_from("I", self.sq, sq_tail)[0]
        i = tail & struct.unpack_from("I", self.sq, sq_mask)[0]
        self.sqes[i * 64:(i + 1) * 64] = struct.pack("BBHiqQiI", op, 0, 0, fd, offset, addr, length, rw_flags).ljust(64, b"\0")
        struct.pack_into("I", self.sq, sq_array + 4 * i, i)
        struct.pack_into("I", self.sq, sq_tail, tail + 1)
        LIBC.syscall(ctypes.c_long(NR["io_uring_enter"]), self.fd, 1, 1, 1, None, 0)
        head = struct.unpack_from("I", self.cq, cq_head)[0]
        j = head & struct.unpack_from("I", self.cq, cq_mask)[0]
        _ud, res, _fl = struct.unpack_from("QiI", self.cq, cqes + 16 * j)
        struct.pack_into("I", self.cq, cq_head, head + 1)
        return res

    def close(self):
        for m in (self.sq, self.cq, self.sqes):
            m.close()
        os.close(self.fd)


# -- the programs: (argv, cwd-relative?) run as they are; the comm is the program's name


def p_cp(path, d):
    return ["cp", _other(d, "cp"), path]


def p_mv(path, d):
    return ["mv", os.path.basename(_other(d, "mv")), os.path.basename(path)]   # relative, cwd = d


def p_shell_trunc(path, d):
    return ["sh", "-c", ': > "$1"', "sh", path]


def p_fallocate(path, d):
    with open(path, "r+b") as f:
        f.write(b"y" * 8192)
    return ["fallocate", "-p", "-o", "0", "-l", "4096", path]


def p_touch_d(path, d):
    return ["touch", "-d", "2001-01-01", path]


def p_chmod_relative(path, d):
    return ["chmod", "600", os.path.basename(path)]


def p_chown(path, d):
    return ["chown", "0:0", path]


#: technique -> (what it is, ops that count as seeing it, comm)
EXPECT = {
    "open2": ({"write"}, "t_open2"),
    "openat2": ({"write"}, "t_openat2"),
    "pwritev": ({"pwritev", "pwritev2"}, "t_pwritev"),
    "pwritev2": ({"pwritev2"}, "t_pwritev2"),
    "dup": ({"write"}, "t_dup"),
    "dup2": ({"write"}, "t_dup2"),
    "dup3": ({"write"}, "t_dup3"),
    "fcntl_dupfd": ({"write"}, "t_fcntl_dupfd"),
    "sendfile": ({"sendfile"}, "t_sendfile"),
    "splice": ({"splice"}, "t_splice"),
    "copy_file_range": ({"copy_file_range"}, "t_copy_file_ran"),
    "chown": ({"chown", "fchownat"}, "t_chown"),
    "chown_legacy": ({"chown"}, "t_chown_legacy"),
    "lchown": ({"lchown"}, "t_lchown"),
    "fchown": ({"fchown"}, "t_fchown"),
    "fchownat_dirfd": ({"fchownat"}, "t_fchownat_dirf"),
    "utimensat": ({"utimensat"}, "t_utimensat"),
    "futimens": ({"utimensat"}, "t_futimens"),
    "futimesat": ({"futimesat"}, "t_futimesat"),
    "chmod_relative": ({"fchmodat", "chmod"}, "t_chmod_relativ"),
    "chmod_dirfd": ({"fchmodat"}, "t_chmod_dirfd"),
    "truncate_path": ({"truncate"}, "t_truncate_path"),
    "truncate_relative": ({"truncate"}, "t_truncate_rela"),
    "o_trunc": ({"open-trunc"}, "t_o_trunc"),
    "fallocate_punch": ({"fallocate"}, "t_fallocate_pun"),
    "io_uring_write": ({"io_uring-write"}, "t_io_uring_writ"),
    "inherited_fd": ({"write"}, "t_inherited_fd"),
    "cp": ({"open-trunc", "copy_file_range", "ioctl"}, "cp"),
    "shell_trunc": ({"open-trunc"}, "sh"),
    "fallocate": ({"fallocate"}, "fallocate"),
    "touch_d": ({"utimensat"}, "touch"),
    "chmod_relative_prog": ({"fchmodat", "chmod"}, "chmod"),
    "chown_prog": ({"fchownat", "chown"}, "chown"),
    "rename_away": ({"rename", "write"}, "t_rename_away"),
    "hardlink_write": ({"write"}, "t_hardlink_writ"),
    "mv": ({"rename"}, "mv"),
    "unlink_recreate": ({"unlink", "create", "write"}, "t_unlink_recrea"),
    "rename_over_then_write": ({"rename", "write"}, "t_rename_over_t"),
    "link_over_then_write": ({"link", "write"}, "t_link_over_the"),
}
PROGRAMS = {"cp": p_cp, "mv": p_mv, "shell_trunc": p_shell_trunc, "fallocate": p_fallocate,
            "touch_d": p_touch_d, "chmod_relative_prog": p_chmod_relative, "chown_prog": p_chown}
RAW = {"open2", "openat2", "chown_legacy", "lchown", "futimesat", "io_uring_write", "io_uring_renameat"}

#: Techniques only the vfs hook set sees (fentry/kprobes: the lab's kernels), as EXPECT.
VFS_EXPECT = {
    "truncate_via_symlink": ({"setattr"}, "t_truncate_via"),
    "io_uring_renameat": ({"vfs-rename"}, "t_io_uring_rena"),
}


def run_program(tech, path, d):
    """Run one technique; returns the pid of the process that did it."""
    if tech in PROGRAMS:
        argv = PROGRAMS[tech](path, d)
        pr = subprocess.Popen(argv, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = pr.communicate(timeout=60)
        if pr.returncode != 0:
            raise RuntimeError(f"{tech}: {argv} failed: {err!r}")
        return pr.pid
    if tech == "inherited_fd":
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            pr = subprocess.Popen([sys.executable, __file__, "--child", tech, path, d, str(fd)], pass_fds=[fd])
        finally:
            os.close(fd)
    else:
        pr = subprocess.Popen([sys.executable, __file__, "--child", tech, path, d])
    if pr.wait(timeout=60) != 0:
        raise RuntimeError(f"{tech} failed")
    return pr.pid


def _child(tech, path, d):
    _name(dict(EXPECT, **VFS_EXPECT)[tech][1])
    globals()["t_" + tech](path, d)


def main(argv):
    """Measure: run the tool on a temp file, run each technique, print seen/missed."""
    import json
    import select
    import tempfile
    import time

    all_ops = "--all" in argv
    techs = [a for a in argv if not a.startswith("--")] or list(EXPECT)
    if not X86_64:
        techs = [t for t in techs if t not in RAW]
    d = tempfile.mkdtemp(prefix="ut_fwt_")
    path = os.path.join(d, "watched")
    with open(path, "w") as f:
        f.write("hello\n")
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "undertow", "filewatch", "--json", "-v", path] + (["--all"] if all_ops else [])
    tool = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    try:
        deadline = time.monotonic() + 90
        with open(path, "a") as f:
            while time.monotonic() < deadline and tool.poll() is None:
                f.write("."); f.flush()
                if select.select([tool.stdout], [], [], 0.3)[0]:
                    lines.append(tool.stdout.readline())
                    break
        pids = {}
        for t in techs:
            try:
                pids[t] = run_program(t, path, d)
            except Exception as e:  # noqa: BLE001 - a measuring script: say it and go on
                print(f"{t:24} ERROR {e}")
            if not os.path.exists(path):
                with open(path, "w") as f:
                    f.write("restored\n")
        time.sleep(1.5)
        tool.send_signal(2)
        out, err = tool.communicate(timeout=120)
        lines += out.splitlines()
    finally:
        if tool.poll() is None:
            tool.kill()
        for n in os.listdir(d):
            os.unlink(os.path.join(d, n))
        os.rmdir(d)
    evs = [json.loads(l) for l in lines if l.startswith("{")]
    seen = 0
    for t, pid in pids.items():
        ops, comm = EXPECT[t]
        mine = [e for e in evs if e.get("pid") == pid]
        got = {e["op"] for e in mine if e.get("path") == path and e.get("comm") == comm}
        ok = bool(got & ops)
        seen += ok
        print(f"{t:24} {'seen  ' if ok else 'MISSED'} want {sorted(ops)} got {sorted({e['op'] for e in mine})}")
    print(f"{seen}/{len(pids)} techniques seen")
    print(err.strip().splitlines()[:3] if err else "", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(main(sys.argv[1:]))
