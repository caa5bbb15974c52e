"""What every feature probe shares: the :class:`Feature` it answers, the context it runs in
(the kernel facade, readers opened once, our privileges, earlier answers), the two ways a
probe says "cannot tell" (:class:`Unknown`) or "no" (:class:`Refused`), and the facts
about the kernel and about us that :func:`undertow.kernel.features.detect_features` reports.
"""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional, Tuple

from ...errors import BPFError, UndertowError
from .. import bpfsys
from ..rawcall import errno_name

if TYPE_CHECKING:  # a cycle at run time: the package's Kernel.features() imports the probes
    from .. import Kernel

__all__ = ["Feature", "ProbeContext", "Unknown", "Refused", "run_probe", "read_facts", "kernel_release",
           "machine", "CAPS"]


class Feature:
    """One probed capability.

    ``available`` is ``None`` when it could not be determined (e.g. not root,
    a reader module missing); ``reason`` says why in one line; ``instead``
    names what to use when it is missing.
    """

    __slots__ = ("name", "available", "reason", "instead")

    def __init__(self, name: str, available: Optional[bool], reason: str, instead: str = "") -> None:
        self.name, self.available, self.reason, self.instead = name, available, reason, instead

    @property
    def known(self) -> bool:
        return self.available is not None

    def to_json(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"available": bool(self.available), "reason": self.reason}
        if self.available is None:
            d["unknown"] = True
        if self.instead:
            d["instead"] = self.instead
        return d

    @classmethod
    def from_json(cls, name: str, d: Dict[str, Any]) -> "Feature":
        avail = None if d.get("unknown") else bool(d.get("available"))
        return cls(name, avail, str(d.get("reason", "")), str(d.get("instead", "")))


class Unknown(Exception):
    """Raised inside a probe: the answer cannot be determined (``reason``)."""


class ProbeContext:
    """What the probes share: the kernel facade, lazily opened readers, our privileges."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.roots = kernel.roots
        self.results: Dict[str, Feature] = {}
        self._tracefs: Any = None
        self._tracefs_err: Optional[str] = None
        self._btf: Any = None
        self._btf_err: Optional[str] = None
        self._readme: Optional[str] = None
        self.tracefs_detail = ""
        self.cap_eff = cap_eff(self.roots)
        self.euid = os.geteuid()

    # -- readers -----------------------------------------------------------
    def tracefs(self) -> Any:
        if self._tracefs is None and self._tracefs_err is None:
            try:
                self._tracefs = self.kernel.tracefs(mount=self.roots.live)
            except ModuleNotFoundError as e:
                self._tracefs_err = f"unknown: {e.name or 'undertow.kernel.tracefs'} not available"
            except UndertowError as e:
                self._tracefs_err = e.message
            except OSError as e:
                self._tracefs_err = f"tracefs: {errno_name(e.errno or 0)}"
            err = self._tracefs_err
            if err and self.euid != 0 and not err.startswith("unknown:"):
                self.tracefs_detail = self._tracefs_err
                self._tracefs_err = "unknown: needs root to read tracefs"
        if self._tracefs is None:
            raise Unknown(self._tracefs_err or "tracefs unavailable")
        return self._tracefs

    def readme(self) -> str:
        if self._readme is None:
            try:
                self._readme = self.tracefs().read("README")
            except Unknown:
                raise
            except (UndertowError, OSError):
                self._readme = ""
        return self._readme or ""

    def btf(self) -> Any:
        if self._btf is None and self._btf_err is None:
            try:
                self._btf = self.kernel.btf()
            except ModuleNotFoundError as e:
                self._btf_err = f"unknown: {e.name or 'undertow.kernel.btf'} not available"
            except UndertowError as e:
                self._btf_err = f"no BTF: {e.message}"
            except OSError as e:
                self._btf_err = f"no BTF: {errno_name(e.errno or 0)}"
        if self._btf is None:
            raise Unknown(self._btf_err or "BTF unavailable")
        return self._btf

    def btf_id(self, name: str, kind: str) -> Optional[int]:
        """The BTF id of ``name`` of ``kind``; ``None`` when absent, Unknown without BTF."""
        btf = self.btf()
        try:
            tid = btf.find_id(name, kind)
        except LookupError:
            return None
        except UndertowError:
            return None
        return int(tid) if tid else None

    def is_available(self, name: str) -> Optional[bool]:
        f = self.results.get(name)
        return f.available if f else None

    # -- BPF gate ----------------------------------------------------------
    def need_bpf(self) -> None:
        """Raise unless BPF probes make sense here (live roots, bpf(2) works)."""
        if not self.roots.live:
            raise Unknown("unknown: not the running kernel's files (BPF is probed only live)")
        b = self.results.get("bpf")
        if b is not None and b.available is False:
            raise Refused(f"bpf(2) is not usable: {b.reason}")
        if b is not None and b.available is None:
            if b.reason.startswith("unknown: needs root"):
                raise Unknown("unknown: needs root")
            raise Unknown(b.reason)


class Refused(Exception):
    """Raised inside a probe: definitely unavailable (``reason``)."""


def run_probe(ctx: ProbeContext, name: str, fn: Callable[[ProbeContext], Tuple[Optional[bool], str]]) -> Feature:
    try:
        avail, reason = fn(ctx)
    except Unknown as e:
        avail, reason = None, str(e)
    except Refused as e:
        avail, reason = False, str(e)
    except BPFError as e:
        avail, reason = False, e.message
    except Exception as e:  # a probe must never take doctor down
        avail, reason = None, f"unknown: the probe failed: {type(e).__name__}: {e}"
    f = Feature(name, avail, reason)
    ctx.results[name] = f
    return f


def cap_eff(roots: Any) -> Optional[int]:
    try:
        with open(roots.proc_path("self", "status")) as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split(":", 1)[1].strip(), 16)
    except (OSError, ValueError):
        pass
    return None


CAPS = {21: "CAP_SYS_ADMIN", 24: "CAP_SYS_RESOURCE", 38: "CAP_PERFMON", 39: "CAP_BPF"}


def read_text(path: str) -> Optional[str]:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def read_facts(ctx: ProbeContext) -> Dict[str, Any]:
    r = ctx.roots
    facts: Dict[str, Any] = {}
    lock = read_text(r.sys_path("kernel", "security", "lockdown"))
    from ..mounts import filesystem_supported

    if lock is None and r.live and ctx.euid == 0 and filesystem_supported("securityfs", r.proc):
        # securityfs is not mounted here: read it through a private mount, leaving no trace.
        from ..mounts import read_from_private_mount

        lock = read_from_private_mount("securityfs", "lockdown")
        lock = lock.strip() if lock else None
    if lock is None:
        facts["lockdown"] = "unknown"
    else:
        # "none [integrity] confidentiality": the bracketed word is the mode.
        mode = [w.strip("[]") for w in lock.split() if w.startswith("[")]
        facts["lockdown"] = mode[0] if mode else lock
    for key in ("kptr_restrict", "perf_event_paranoid", "unprivileged_bpf_disabled"):
        v = read_text(r.proc_path("sys", "kernel", key))
        facts[key] = int(v) if v is not None and v.lstrip("-").isdigit() else "unknown"
    facts["euid"] = ctx.euid
    facts["root"] = ctx.euid == 0
    if ctx.cap_eff is None:
        facts["cap_eff"] = "unknown"
        facts["capabilities"] = []
    else:
        facts["cap_eff"] = f"{ctx.cap_eff:016x}"
        facts["capabilities"] = [n for bit, n in sorted(CAPS.items()) if ctx.cap_eff >> bit & 1]
    if r.live:
        facts["memlock_unlimited"] = bpfsys.raise_memlock_rlimit()
    return facts


def kernel_release(roots: Any) -> str:
    rel = read_text(roots.proc_path("sys", "kernel", "osrelease"))
    if rel:
        return rel
    return os.uname().release if roots.live else "unknown"


def machine(roots: Any) -> str:
    a = read_text(roots.proc_path("sys", "kernel", "arch"))
    if a:
        return a
    return os.uname().machine if roots.live else "unknown"
