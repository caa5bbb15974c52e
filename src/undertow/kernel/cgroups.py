"""Cgroup ids to paths, for bpftrace's ``cgroup_path(id[, filter])``.

A cgroup's id (the ``cgroup`` builtin, ``bpf_get_current_cgroup_id``) is the inode
number of its directory in the cgroup file system. bpftrace 0.17 shows, for each
mounted hierarchy whose name matches ``filter`` (``*`` wildcards), ``name:path`` with
the path relative to the mount (``/`` for its root), the names being ``unified`` for
the cgroup2 mount and the mount directory's name for a v1 one, ``unified`` first and the
rest sorted, joined with ``,``; hierarchies where the id is not found are left out.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

__all__ = ["hierarchies", "cgroup_path", "cgroup_paths"]

#: (id, mount) -> path found earlier (checked again with one stat before it is used)
_cache: "Dict[Tuple[int, str], str]" = {}


def hierarchies(mounts: str = "/proc/mounts") -> "List[Tuple[str, str]]":
    """``[(name, mount point)]`` of the mounted cgroup hierarchies."""
    out = []
    try:
        with open(mounts, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split(" ")
        if len(parts) < 3 or parts[2] not in ("cgroup", "cgroup2"):
            continue
        mnt = parts[1].replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
        name = "unified" if parts[2] == "cgroup2" else os.path.basename(mnt.rstrip("/"))
        out.append((name, mnt))
    return out


def cgroup_path(cgid: int, mount: str, limit: int = 100000) -> str:
    """The path of cgroup ``cgid`` under ``mount`` (``/`` for the root), "" when absent;
    at most ``limit`` directories are looked at."""
    hit = _cache.get((cgid, mount))
    if hit is not None:
        try:
            if os.stat(mount + (hit if hit != "/" else "")).st_ino == cgid:
                return hit
        except OSError:
            pass
    try:
        if os.stat(mount).st_ino == cgid:
            _cache[(cgid, mount)] = "/"
            return "/"
    except OSError:
        return ""
    seen = 0
    for top, dirs, _files in os.walk(mount, followlinks=False):
        for d in dirs:
            seen += 1
            p = os.path.join(top, d)
            try:
                if os.lstat(p).st_ino == cgid:
                    rel = p[len(mount.rstrip("/")):]
                    _cache[(cgid, mount)] = rel
                    return rel
            except OSError:
                continue
        if seen > limit:
            break
    return ""


def _matches(name: str, pattern: str) -> bool:
    import re

    rx = ".*".join(re.escape(p) for p in pattern.split("*"))
    return re.fullmatch(rx, name) is not None


def cgroup_paths(cgid: int, pattern: str = "*", mounts: "Optional[List[Tuple[str, str]]]" = None) -> str:
    """``unified:/a/b,cpu:/a`` for cgroup ``cgid`` in the hierarchies named by ``pattern``."""
    roots = [(n, m) for n, m in (hierarchies() if mounts is None else mounts) if _matches(n, pattern or "*")]
    roots.sort(key=lambda nm: (nm[0] != "unified", nm[0]))
    found = [(n, cgroup_path(cgid, m)) for n, m in roots]
    return ",".join(f"{n}:{p}" for n, p in found if p)
