"""Process details read from /proc at event time (argv, parent chain, uid, cwd, cgroup).

Short-lived processes may be gone before the reader sees their event: every field is
best effort, and :class:`ProcInfo.gone` says so instead of raising. Values are kept as
the kernel gives them; escaping for terminals is the output layer's job.
"""

from __future__ import annotations

import os
import re
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

_CONTAINER = re.compile(r"(?:docker|cri-containerd|crio|libpod|containerd)[-/]([0-9a-f]{12,64})")


class ProcInfo:
    __slots__ = ("pid", "ppid", "uid", "argv", "cwd", "exe", "cgroup", "container", "parents", "gone",
                 "netns", "pidns")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.ppid: Optional[int] = None
        self.uid: Optional[int] = None
        self.argv: Optional[List[str]] = None
        self.cwd: Optional[str] = None
        self.exe: Optional[str] = None
        self.cgroup: Optional[str] = None
        self.container: Optional[str] = None
        self.parents: List[Dict[str, Any]] = []
        self.gone = False
        # namespace inode numbers (/proc/PID/ns/{net,pid}); a tool that reads them in the
        # kernel at the event sends its own, which wins over these (read a little later)
        self.netns: Optional[int] = None
        self.pidns: Optional[int] = None

    def to_dict(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def _read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as f:
            return f.read(65536)
    except OSError:
        return None


def _status(proc: str, pid: int) -> Dict[str, str]:
    raw = _read(os.path.join(proc, str(pid), "status"))
    out: Dict[str, str] = {}
    for line in (raw or b"").decode("utf-8", "replace").splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def proc_info(pid: int, proc: str = "/proc", chain: int = 8) -> ProcInfo:
    """What /proc says about ``pid`` now; ``gone`` when it already exited."""
    info = ProcInfo(pid)
    base = os.path.join(proc, str(pid))
    st = _status(proc, pid)
    if not st:
        info.gone = True
        return info
    info.ppid = int(st["PPid"]) if st.get("PPid", "").isdigit() else None
    uids = st.get("Uid", "").split()
    info.uid = int(uids[0]) if uids and uids[0].isdigit() else None
    raw = _read(os.path.join(base, "cmdline"))
    # an empty cmdline is a kernel thread's argv (none); any other process has dropped its mm
    # (exiting, a zombie): its argv is unknown, not empty
    kthread = st.get("Kthread") == "1" or info.ppid == 0 or info.ppid == 2
    if raw is not None and (raw or kthread):
        info.argv = [a.decode("utf-8", "surrogateescape") for a in raw.rstrip(b"\x00").split(b"\x00")] if raw else []
    for attr, name in (("cwd", "cwd"), ("exe", "exe")):
        try:
            setattr(info, attr, os.readlink(os.path.join(base, name)))
        except OSError:
            pass
    from .common import ns_inode

    info.netns, info.pidns = ns_inode("net", str(pid), proc), ns_inode("pid", str(pid), proc)
    cg = _read(os.path.join(base, "cgroup"))
    if cg:
        text = cg.decode("utf-8", "replace")
        paths = [line.split(":", 2)[2] for line in text.splitlines() if line.count(":") >= 2]
        info.cgroup = next((p for p in paths if p not in ("/", "")), paths[0] if paths else None)
        m = _CONTAINER.search(text)
        info.container = m.group(1)[:12] if m else None
    ppid = info.ppid
    seen = {pid}
    while ppid and ppid not in seen and len(info.parents) < chain:
        seen.add(ppid)
        up = _parent(proc, ppid)
        if up is None:
            break
        info.parents.append({"pid": ppid, "comm": up[0]})
        ppid = up[1]
    return info


#: (proc, pid) -> (when read, Name, PPid) of the ancestors walked lately. A flood of short
#: processes from one shell has the same ancestors: their /proc/PID/status is read once a
#: second, not per event (an exec flood: ~6 reads less per event, issue 18). The same
#: staleness as the tools' per-process cache (bpftool.run_tool): at most a second.
_PARENTS: Dict[Tuple[str, int], Tuple[float, str, int]] = {}


def _parent(proc: str, pid: int) -> Optional[Tuple[str, int]]:
    """``(Name, PPid)`` of ``pid`` (``/proc/PID/status``, at most a second old), or None when
    it is gone."""
    import time

    now = time.monotonic()
    hit = _PARENTS.get((proc, pid))
    if hit is not None and now - hit[0] <= 1.0:
        return hit[1], hit[2]
    pst = _status(proc, pid)
    if not pst:
        _PARENTS.pop((proc, pid), None)
        return None
    nxt = pst.get("PPid", "")
    if len(_PARENTS) >= 4096:
        _PARENTS.clear()
    _PARENTS[(proc, pid)] = (now, pst.get("Name", "?"), int(nxt) if nxt.isdigit() else 0)
    return pst.get("Name", "?"), int(nxt) if nxt.isdigit() else 0


def fd_entries(proc: str = "/proc") -> Iterator[Tuple[int, int, str]]:
    """``(pid, fd, path of /proc/PID/fd/FD)`` for every open fd of every process that can be
    listed now (processes and fds that go away meanwhile are left out). The caller reads the
    link (``os.readlink``) or the file's identity (``os.stat``) as it needs."""
    try:
        names = os.listdir(proc)
    except OSError:
        return
    for name in names:
        if not name.isdigit():
            continue
        d = os.path.join(proc, name, "fd")
        try:
            fds = os.listdir(d)
        except OSError:
            continue
        pid = int(name)
        for fd in fds:
            yield pid, int(fd), os.path.join(d, fd)


def own_namespaces(proc: str = "/proc") -> Tuple[Optional[int], Optional[int]]:
    """This process's network and pid namespace inode numbers (``/proc/self/ns/{net,pid}``,
    the numbers the tools' ``netns``/``pidns`` fields carry), ``None`` where unreadable."""
    return namespaces("self", proc)


def namespaces(pid: Union[int, str], proc: str = "/proc") -> Tuple[Optional[int], Optional[int]]:
    """The network and pid namespace inode numbers of ``pid`` now (``/proc/PID/ns/{net,pid}``:
    ``stat`` of the kernel's own links, nothing opened), ``None`` where gone or unreadable."""
    out: List[Optional[int]] = []
    for name in ("net", "pid"):
        try:
            out.append(os.stat(os.path.join(proc, str(pid), "ns", name)).st_ino)
        except OSError:
            out.append(None)
    return out[0], out[1]
