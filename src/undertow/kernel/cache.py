"""A per-user cache directory for derived kernel facts (BTF indexes, feature probes).

The cache is an optimisation only: when it cannot be created or written, every
function here quietly returns ``None``/does nothing, never raises.
"""

from __future__ import annotations

import os
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are strings: typing is not imported at run time (start-up)
    from typing import Optional

from .roots import Roots


def cache_dir(roots: Roots) -> Optional[str]:
    """The cache directory (created 0700), or ``None`` when caching is off or impossible."""
    if roots.cache_dir == "":
        return None
    path = roots.cache_dir
    if path is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "undertow")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError:
        return None
    if not os.access(path, os.W_OK | os.X_OK):
        return None
    return path


def read_cache(roots: Roots, name: str) -> Optional[bytes]:
    d = cache_dir(roots)
    if d is None:
        return None
    try:
        with open(os.path.join(d, name), "rb") as f:
            return f.read()
    except OSError:
        return None


def write_cache(roots: Roots, name: str, data: bytes) -> None:
    """Atomically write ``data`` as cache entry ``name`` (rename over the old one)."""
    d = cache_dir(roots)
    if d is None:
        return
    try:
        import tempfile  # only a cache miss writes (tempfile costs ~5 ms to import)

        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, os.path.join(d, name))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError:
        return


def boot_id(roots: Roots) -> str:
    """The kernel's boot id (changes every boot): keys caches valid for one boot."""
    try:
        with open(roots.proc_path("sys", "kernel", "random", "boot_id")) as f:
            return f.read().strip()
    except OSError:
        return "unknown-boot"
