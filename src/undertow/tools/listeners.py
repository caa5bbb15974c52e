"""Who listens on a port, in every network namespace, and showing pre-existing listening
sockets to a BPF program (``undertow inbound``).

:class:`Listeners` reads ``/proc/PID/net/{tcp,tcp6,udp,udp6}`` once per network namespace and
``/proc/PID/fd`` (links read, never followed); :func:`seed_listeners` copies each TCP listening
socket into a short-lived child (``pidfd_getfd(2)``) and asks it ``getsockopt(SO_ACCEPTCONN)``
so that the program's ``sys_enter_getsockopt`` probe learns the socket's kernel address.
"""

from __future__ import annotations

import os
import socket
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

__all__ = ["Listeners", "seed_listeners"]


class Listeners:
    """Which process listens on a port, in every network namespace that a process is in.

    ``/proc/PID/net/{tcp,tcp6,udp,udp6}`` (read once per namespace, through the first process
    seen in it) give the listening sockets' inodes; ``/proc/PID/fd`` links (``socket:[INODE]``)
    name the process holding each. Keys are ``(netns, proto, port)``; ``netns`` is the
    namespace's inode number (``/proc/PID/ns/net``). Nothing read here is trusted beyond
    numbers: links are read, never followed, and lines that do not parse are skipped."""

    def __init__(self, proc: str = "/proc") -> None:
        from .common import ns_inode

        self.proc = proc
        self.host = ns_inode("net", "self", proc)
        self.by_port: Dict[Tuple[Optional[int], str, int], Tuple[int, str]] = {}
        #: (pid, fd) of each TCP listening socket: what :func:`seed_listeners` copies
        self.tcp_fds: List[Tuple[int, int]] = []
        self.refresh()

    def _sockets(self, pid: str, netns: Optional[int], inodes: Dict[str, Tuple[Optional[int], str, int]]) -> None:
        for name, proto, want in (("tcp", "tcp", "0A"), ("tcp6", "tcp", "0A"), ("udp", "udp", "07"),
                                  ("udp6", "udp", "07")):
            try:
                with open(os.path.join(self.proc, pid, "net", name)) as f:
                    next(f)
                    for line in f:
                        parts = line.split()
                        if len(parts) > 9 and parts[3] == want:
                            inodes[parts[9]] = (netns, proto, int(parts[1].rsplit(":", 1)[1], 16))
            except (OSError, StopIteration, ValueError, IndexError):
                continue

    def refresh(self) -> None:
        from .common import ns_inode

        inodes: Dict[str, Tuple[Optional[int], str, int]] = {}
        seen_ns: set = set()
        found: Dict[Tuple[Optional[int], str, int], Tuple[int, str]] = {}
        tcp_fds: List[Tuple[int, int]] = []
        try:
            pids = [p for p in os.listdir(self.proc) if p.isdigit()]
        except OSError:
            pids = []
        for pid in pids:
            fd_dir = os.path.join(self.proc, pid, "fd")
            try:
                fds = os.listdir(fd_dir)
            except OSError:
                continue
            netns = ns_inode("net", pid, self.proc)
            if netns not in seen_ns:
                seen_ns.add(netns)
                self._sockets(pid, netns, inodes)
            for fd in fds:
                try:
                    target = os.readlink(os.path.join(fd_dir, fd))
                except OSError:
                    continue
                if target.startswith("socket:["):
                    key = inodes.get(target[8:-1])
                    if key is None:
                        continue
                    if key[1] == "tcp" and fd.isdigit():
                        tcp_fds.append((int(pid), int(fd)))
                    if key not in found:
                        try:
                            with open(os.path.join(self.proc, pid, "comm")) as f:
                                comm = f.read().strip()
                        except OSError:
                            comm = "?"
                        found[key] = (int(pid), comm)
        self.by_port, self.tcp_fds = found, tcp_fds

    def lookup(self, proto: str, port: int, netns: Optional[int] = None) -> Optional[Tuple[int, str]]:
        """The (pid, comm) listening on ``proto``/``port`` in ``netns`` (``None``: the tool's)."""
        return self.by_port.get((netns if netns is not None else self.host, proto, port))


def seed_listeners(fds: List[Tuple[int, int]]) -> int:
    """Show the BPF program every TCP listening socket that existed before it: each is copied
    (``pidfd_getfd(2)``, Linux 5.6+, needs ptrace rights over the owner: root) into a child of
    this process — the programs skip the tool's own process — and asked
    ``getsockopt(SO_ACCEPTCONN)``, which the program's ``sys_enter_getsockopt`` probe sees with
    the socket (``sock->sk``); the copies die with the child. Returns how many were seeded
    (at most 255); failures (a process gone, an fd reused) are skipped."""
    if not fds:
        return 0
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only runs _seed and exits
        code = 0
        try:
            code = min(_seed(fds), 255)
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 0


def _seed(fds: List[Tuple[int, int]]) -> int:
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return 0
    pidfd_getfd = 438  # the same number on every architecture (asm-generic/unistd.h)
    done = 0
    for pid, fd in fds:
        try:
            pidfd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            continue
        try:
            mine = libc.syscall(pidfd_getfd, pidfd, fd, 0)
            if mine < 0:
                continue
            try:
                s = socket.socket(fileno=mine)
                try:
                    s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                    done += 1
                finally:
                    s.detach()
            except OSError:
                pass
            finally:
                os.close(mine)
        finally:
            os.close(pidfd)
    return done
