"""Binaries of listening processes against their Debian package (what ``dpkg --verify``
compares, read here without running dpkg): a trojaned ``sshd`` or a binary bind-mounted over
the packaged one listens like the real one but has another checksum.

For each process holding a listening TCP socket or a bound UDP socket (the sockets family's
BPF iterator view, or the /proc/net tables and /proc/PID/fd where the iterator cannot run):

- the executable is opened through ``/proc/PID/exe`` (the kernel's reference to the file the
  process runs: a bind mount or a rename cannot redirect it) and hashed with MD5;
- the package is found in ``var/lib/dpkg/info/*.list`` under the process's root
  (``/proc/PID/root``, opened one ``O_NOFOLLOW`` step at a time), for the path the process
  sees and its /usr-merge twin (``/bin`` and ``/usr/bin``, ``/sbin``, ``/lib``);
- the checksum is compared with the package's ``.md5sums`` line.

A mismatch is high; a binary no package lists is a note (/usr/local, /opt, a virtualenv);
no dpkg database: not checked. ``dpkg-divert`` diversions are not followed (a diverted binary
is reported under the package that lists the path).
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Set, Tuple

from .report import Context
from .views import comm_of, exe_of, getdents, read_small

__all__ = ["check_listeners", "merged_twins", "parse_md5sums", "PackageDb", "listening_pids", "path_in_root"]

CHECK = "userspace"
TCP_LISTEN = 10
#: /usr-merge: these top-level directories are links into /usr (Debian 12+ and most systems)
MERGED = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def merged_twins(path: str) -> List[str]:
    """``path`` and the name the same file has on the other side of the /usr merge
    (``/usr/bin/ls`` <-> ``/bin/ls``)."""
    out = [path]
    parts = path.lstrip("/").split("/", 2)
    if parts[0] == "usr" and len(parts) > 2 and parts[1] in MERGED:
        out.append("/" + parts[1] + "/" + parts[2])
    elif parts[0] in MERGED and len(parts) > 1:
        out.append("/usr/" + path.lstrip("/"))
    return out


def parse_md5sums(text: str) -> Dict[str, str]:
    """``PKG.md5sums`` lines (``HEX  relative/path``) as ``{"/path": hex}``."""
    out = {}
    for line in text.splitlines():
        digest, _, path = line.partition("  ")
        if len(digest) == 32 and path:
            out["/" + path.lstrip("/")] = digest.lower()
    return out


def _open_under(rootfd: int, rel: str) -> int:
    """Open ``rel`` under the directory ``rootfd``, one component at a time with
    ``O_NOFOLLOW`` (a link anywhere on the way: ELOOP/ENOTDIR). Returns an fd."""
    parts = [p for p in rel.split("/") if p and p != "."]
    fd = os.dup(rootfd)
    try:
        for i, part in enumerate(parts):
            if part == "..":
                raise OSError(1, "'..' in a path")
            last = i == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_NONBLOCK if last else os.O_DIRECTORY)
            nfd = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def _read_fd(fd: int, limit: int = 1 << 24) -> bytes:
    parts, got = [], 0
    while got < limit:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


class PackageDb:
    """The dpkg database under a root directory (``/proc/PID/root``): which package lists a
    path, and the checksum that package states for it."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.info = os.path.join("var", "lib", "dpkg", "info")
        self._owners: Optional[Dict[str, str]] = None
        self._sums: Dict[str, Dict[str, str]] = {}
        self.rootfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self.infofd = _open_under(self.rootfd, self.info)
            if not stat.S_ISDIR(os.fstat(self.infofd).st_mode):
                os.close(self.infofd)
                raise OSError(20, "var/lib/dpkg/info is not a directory")
        except BaseException:
            os.close(self.rootfd)
            raise

    def close(self) -> None:
        os.close(self.infofd)
        os.close(self.rootfd)

    def _read(self, name: str) -> Optional[str]:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.infofd)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return _read_fd(fd).decode("utf-8", "surrogateescape")
        finally:
            os.close(fd)

    def owners(self, wanted: Set[str]) -> Dict[str, str]:
        """``{path: package stem}`` for the ``wanted`` paths any ``*.list`` names (the stem
        names its ``.md5sums``: ``pkg`` or ``pkg:arch``)."""
        from ... import stop

        out: Dict[str, str] = {}
        for name in sorted(os.listdir(self.infofd)):
            if not name.endswith(".list"):
                continue
            stop.check()
            text = self._read(name)
            if text is None:
                continue
            for line in text.splitlines():
                if line in wanted and line not in out:
                    out[line] = name[:-5]
        return out

    def md5(self, stem: str, path: str) -> Optional[str]:
        """The checksum package ``stem`` states for ``path``; None when it states none."""
        if stem not in self._sums:
            text = self._read(stem + ".md5sums")
            self._sums[stem] = parse_md5sums(text) if text is not None else {}
        return self._sums[stem].get(path)


def _proc_listen_inodes(proc: str) -> Set[int]:
    """Inodes of listening TCP and bound UDP sockets in /proc/net (undertow's namespace)."""
    out: Set[int] = set()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        data = read_small(os.path.join(proc, "net", table), 1 << 24) or b""
        for line in data.decode("ascii", "replace").splitlines()[1:]:
            f = line.split()
            if len(f) < 10:
                continue
            port = int(f[1].rsplit(":", 1)[-1], 16)
            listening = f[3] == "0A" if table.startswith("tcp") else port != 0
            if listening and f[9].isdigit():
                out.add(int(f[9]))
    return out


def listening_pids(ctx: Context) -> Optional[Dict[int, List[str]]]:
    """``{pid: ["tcp port 22", ...]}`` for every process holding a listening TCP or bound
    UDP socket; None when no view can say."""
    from .sockets import held_sockets

    out: Dict[int, List[str]] = {}
    held = held_sockets(ctx)
    if held is not None:
        for h in held:
            if h.family not in (socket.AF_INET, socket.AF_INET6) or not h.port:
                continue
            if h.type == socket.SOCK_STREAM and h.protocol == socket.IPPROTO_TCP and h.state == TCP_LISTEN:
                out.setdefault(h.pid, []).append(f"tcp port {h.port}")
            elif h.type == socket.SOCK_DGRAM and h.protocol == socket.IPPROTO_UDP:
                out.setdefault(h.pid, []).append(f"udp port {h.port}")
        return out
    inodes = _proc_listen_inodes(ctx.proc)
    if not inodes:
        return out
    try:
        pids = [int(n) for n in getdents(ctx.proc) if n.isdigit()]
    except OSError:
        return None
    for pid in pids:
        fddir = os.path.join(ctx.proc, str(pid), "fd")
        try:
            fds = getdents(fddir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fddir, fd))
            except OSError:
                continue
            if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                out.setdefault(pid, []).append(f"socket inode {target[8:-1]}")
    return out


def path_in_root(proc: str, pid: int, exe: str) -> str:
    """The path under the process's own root that names the file it runs. ``readlink`` of
    /proc/PID/exe spells the path from the *reader's* root: for a process in another mount
    namespace whose root the reader cannot reach (a namespace made inside a chroot) it
    carries a prefix (``/mnt/root/usr/bin/x``). The longest tail of ``exe`` that, opened
    under /proc/PID/root (``O_NOFOLLOW`` at each step), is the same file (device and inode)
    as /proc/PID/exe is that path; ``exe`` itself when none is."""
    parts = [p for p in exe.split("/") if p]
    try:
        st = os.stat(os.path.join(proc, str(pid), "exe"))
        rootfd = os.open(os.path.join(proc, str(pid), "root"), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return exe
    try:
        for i in range(len(parts)):
            try:
                fd = _open_under(rootfd, "/".join(parts[i:]))
            except OSError:
                continue
            try:
                got = os.fstat(fd)
            finally:
                os.close(fd)
            if (got.st_dev, got.st_ino) == (st.st_dev, st.st_ino):
                return "/" + "/".join(parts[i:])
        return exe
    finally:
        os.close(rootfd)


def _exe_md5(proc: str, pid: int, cache: Dict[Tuple[int, int, int, int], str]) -> Optional[str]:
    """The MD5 of the file ``pid`` runs, read through /proc/PID/exe (``cache``: by the
    file's device, inode, size and mtime: one daemon's workers are hashed once)."""
    try:
        fd = os.open(os.path.join(proc, str(pid), "exe"), os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if ident not in cache:
            from ... import stop

            h = hashlib.md5(usedforsecurity=False)
            while True:
                stop.check()  # a big binary: ~1 MiB per check
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                h.update(chunk)
            cache[ident] = h.hexdigest()
        return cache[ident]
    except OSError:
        return None
    finally:
        os.close(fd)


def check_listeners(ctx: Context) -> None:
    """Compare listening processes' binaries with their packages; add to ``ctx.report``."""
    from ... import stop
    from ..common import ns_inode

    rep, proc = ctx.report, ctx.proc
    what = "binaries of listening processes vs dpkg"
    pids = listening_pids(ctx)
    if pids is None:
        rep.not_checked(CHECK, what, "no view of listening sockets (BPF iterator and /proc unreadable)")
        return
    by_ns: Dict[Optional[int], List[Tuple[int, str]]] = {}
    for pid in sorted(pids):
        exe = exe_of(proc, pid)
        if not exe or not exe.startswith("/") or exe.endswith(" (deleted)") or exe.startswith(("/memfd:", "/dev/shm/")):
            continue  # judged above (deleted, fileless), or gone
        by_ns.setdefault(ns_inode("mnt", str(pid), proc), []).append((pid, path_in_root(proc, pid, exe)))
    hashes: Dict[Tuple[int, int, int, int], str] = {}
    no_db: List[int] = []
    for ns, members in sorted(by_ns.items(), key=lambda kv: kv[0] or 0):
        stop.check()
        db = None
        for pid, _exe in members[:3]:
            try:
                db = PackageDb(os.path.join(proc, str(pid), "root"))
                break
            except OSError:
                continue
        if db is None:
            no_db.append(members[0][0])
            continue
        try:
            wanted = {p for _pid, exe in members for p in merged_twins(exe)}
            owners = db.owners(wanted)
            for pid, exe in members:
                stop.check()
                digest = _exe_md5(proc, pid, hashes)
                if digest is None:
                    continue
                owned = [(p, owners[p]) for p in merged_twins(exe) if p in owners]
                if not owned:
                    rep.note(CHECK, f"pid {pid} ({comm_of(proc, pid)}) listens and runs {exe}, which no "
                             "package lists", "a binary installed by hand (/usr/local, /opt, a virtualenv) "
                             "has no package checksum to compare", {"/proc/PID/exe": exe, "md5": digest,
                                                                    "listening": ", ".join(pids[pid][:4])})
                    continue
                path, stem = owned[0]
                want = db.md5(stem, path)
                if want is None:
                    rep.note(CHECK, f"pid {pid} ({comm_of(proc, pid)}) runs {exe} of package {stem}, which "
                             "states no checksum for it", "the package ships no md5sums", {"/proc/PID/exe": exe})
                    continue
                if want == digest:
                    continue
                rep.add(CHECK, "high", f"pid {pid} ({comm_of(proc, pid)}) listens and runs {exe}, which differs "
                        f"from package {stem}",
                        {"/proc/PID/exe (md5)": f"{exe}: {digest}",
                         f"dpkg {stem}.md5sums": f"{path.lstrip('/')}: {want}",
                         "listening": ", ".join(pids[pid][:4])},
                        "copy /proc/PID/exe away for analysis; look for a mount over the path (/proc/PID/mountinfo) "
                        "and reinstall the package from a trusted medium (dpkg --verify lists other changed files)",
                        key=f"exe:{pid}")
        finally:
            db.close()
    if no_db and not hashes:
        rep.not_checked(CHECK, what, "no dpkg database (var/lib/dpkg/info) under the listening processes' roots: "
                        "not a Debian system, or not readable")
