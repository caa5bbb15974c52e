"""Where the kernel's files are: the only place paths under /proc and /sys are spelled.

Every reader in ``undertow.kernel`` takes a :class:`Roots` so unit tests can
point it at a fixture tree (a fake tracefs, a recorded /proc) instead of the
live kernel. ``Roots.from_env()`` honours ``UNDERTOW_PROC``, ``UNDERTOW_SYS``,
``UNDERTOW_TRACEFS``, ``UNDERTOW_BTF`` and ``UNDERTOW_CACHE_DIR``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Optional


@dataclass(frozen=True)
class Roots:
    """Filesystem roots of one kernel view.

    ``tracefs`` is an explicit tracefs directory (``None``: discover it under
    ``sys``); ``btf`` the vmlinux BTF file (``None``: ``<sys>/kernel/btf/vmlinux``);
    ``cache_dir`` the per-user cache (``None``: ``$XDG_CACHE_HOME/undertow`` or
    ``~/.cache/undertow``; ``""`` disables caching). ``live`` says whether these
    are the running kernel's own files (mounting, feature probes and bpf(2)
    only make sense then).
    """

    proc: str = "/proc"
    sys: str = "/sys"
    tracefs: Optional[str] = None
    btf: Optional[str] = None
    cache_dir: Optional[str] = None
    live: bool = True

    @classmethod
    def from_env(cls) -> "Roots":
        env = os.environ
        r = cls(
            proc=env.get("UNDERTOW_PROC", "/proc"),
            sys=env.get("UNDERTOW_SYS", "/sys"),
            tracefs=env.get("UNDERTOW_TRACEFS") or None,
            btf=env.get("UNDERTOW_BTF") or None,
            cache_dir=env.get("UNDERTOW_CACHE_DIR"),
        )
        if r.proc != "/proc" or r.sys != "/sys":
            r = replace(r, live=False)
        return r

    def proc_path(self, *parts: str) -> str:
        return os.path.join(self.proc, *parts)

    def sys_path(self, *parts: str) -> str:
        return os.path.join(self.sys, *parts)

    @property
    def btf_vmlinux(self) -> str:
        return self.btf or self.sys_path("kernel", "btf", "vmlinux")

    @property
    def btf_dir(self) -> str:
        """Directory holding vmlinux and module (split) BTF files."""
        return os.path.dirname(self.btf_vmlinux)
