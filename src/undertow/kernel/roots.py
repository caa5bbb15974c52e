"""Where the kernel's files are: the only place paths under /proc and /sys are spelled.

Every reader in ``undertow.kernel`` takes a :class:`Roots` so unit tests can
point it at a fixture tree (a fake tracefs, a recorded /proc) instead of the
live kernel. ``Roots.from_env()`` honours ``UNDERTOW_PROC``, ``UNDERTOW_SYS``,
``UNDERTOW_TRACEFS``, ``UNDERTOW_BTF`` and ``UNDERTOW_CACHE_DIR``.
"""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Optional


class Roots:
    """Filesystem roots of one kernel view.

    ``tracefs`` is an explicit tracefs directory (``None``: discover it under
    ``sys``); ``btf`` the vmlinux BTF file (``None``: ``<sys>/kernel/btf/vmlinux``);
    ``cache_dir`` the per-user cache (``None``: ``$XDG_CACHE_HOME/undertow`` or
    ``~/.cache/undertow``; ``""`` disables caching). ``live`` says whether these
    are the running kernel's own files (mounting, feature probes and bpf(2)
    only make sense then). Immutable; a plain class (not a dataclass) to keep
    the import cost of the kernel layer low.
    """

    __slots__ = ("proc", "sys", "tracefs", "btf", "cache_dir", "live")
    _FIELDS = ("proc", "sys", "tracefs", "btf", "cache_dir", "live")

    def __init__(self, proc: str = "/proc", sys: str = "/sys", tracefs: Optional[str] = None,
                 btf: Optional[str] = None, cache_dir: Optional[str] = None, live: bool = True) -> None:
        for k, v in zip(self._FIELDS, (proc, sys, tracefs, btf, cache_dir, live)):
            object.__setattr__(self, k, v)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Roots is immutable: use replace()")

    def _key(self) -> tuple:
        return tuple(getattr(self, k) for k in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Roots) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple:
        return (Roots, self._key())

    def __repr__(self) -> str:
        return "Roots(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self._FIELDS) + ")"

    def replace(self, **changes: object) -> "Roots":
        kw = {k: getattr(self, k) for k in self._FIELDS}
        kw.update(changes)
        return Roots(**kw)  # type: ignore[arg-type]

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
            r = r.replace(live=False)
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
