"""Feature probes: what this kernel really offers, tested by doing it, cached per boot.

Checks features, never version numbers (as libbpf's ``kernel_supports()`` and
drgn do). tracefs features are read from tracefs itself (files present, the
``README`` syntax lines); BPF features load a two-instruction program
(``r0 = 0; exit``) with :mod:`undertow.kernel.syscalls` and attach it to a real
target, then close everything at once: a probe never leaves a program, link,
perf event or dynamic event behind.

Each :class:`Feature` says ``available`` (``True``/``False``, ``None`` when it
could not be determined), ``reason`` (why, with the errno name when the kernel
refused) and ``instead`` (what to use when it is missing). Results are cached
as JSON in the per-user cache, keyed by the boot id, the undertow version and
the caller's credentials (undertow.kernel.cache: only a directory of the user's that
nobody else can write), and read back strictly: anything unexpected in the file is a miss;
``detect_features(kernel, refresh=True)`` bypasses it.
"""

from __future__ import annotations

import errno as _errno
import importlib
import json
import os
from undertow.dclass import dataclass
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are strings: typing is not imported at run time (start-up)
    from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .. import __version__
from ..errors import BPFError, FeatureUnavailableError, UndertowError
from . import cache, syscalls as sc

if TYPE_CHECKING:  # pragma: no cover
    from . import Kernel

__all__ = ["Feature", "Features", "detect_features", "PROBE_KINDS", "FEATURE_TITLES"]

CACHE_SCHEMA = 1

# r0 = 0 (BPF_ALU64|BPF_MOV|BPF_K = 0xb7); exit (BPF_JMP|BPF_EXIT = 0x95).
# struct bpf_insn: code u8, dst_reg:4|src_reg:4 u8, off s16, imm s32 (little endian).
RET0_PROG = bytes.fromhex("b700000000000000" "9500000000000000")

# Human titles, in the order doctor shows them.
FEATURE_TITLES: Dict[str, str] = {
    "tracefs": "tracefs mounted and readable",
    "tracepoints": "tracepoints (static trace events)",
    "syscall_tracepoints": "syscalls:* tracepoints",
    "kprobe_events": "kprobe_events (ftrace kprobes/kretprobes)",
    "uprobe_events": "uprobe_events (ftrace uprobes)",
    "dynamic_events": "dynamic_events",
    "fprobe": "fprobe events (f: in dynamic_events)",
    "eprobe": "event probes (e: in dynamic_events)",
    "kprobe_btf_args": "BTF argument names in probe events",
    "hist_triggers": "hist triggers",
    "btf": "kernel BTF (/sys/kernel/btf/vmlinux)",
    "bpf": "bpf(2) syscall",
    "bpf_tracepoint": "BPF on tracepoints (perf_event_open + SET_BPF)",
    "bpf_raw_tracepoint": "BPF raw tracepoints",
    "bpf_tp_btf": "BPF tp_btf (BTF-typed raw tracepoints)",
    "bpf_fentry": "BPF fentry",
    "bpf_fexit": "BPF fexit",
    "bpf_kprobe": "BPF kprobes (kprobe PMU)",
    "bpf_kprobe_multi": "BPF kprobe_multi links",
    "bpf_uprobe": "BPF uprobes (uprobe PMU)",
    "bpf_uprobe_multi": "BPF uprobe_multi links",
    "bpf_perf_event": "BPF on perf events (profile)",
    "bpf_ringbuf": "BPF ring buffer map",
    "bpf_perf_buffer": "BPF perf event array map",
}

# (backend, probe kind as users write it, feature that decides it)
PROBE_KINDS: List[Tuple[str, str, str]] = [
    ("ftrace", "tracepoint", "tracepoints"),
    ("ftrace", "kprobe", "kprobe_events"),
    ("ftrace", "kretprobe", "kprobe_events"),
    ("ftrace", "uprobe", "uprobe_events"),
    ("ftrace", "uretprobe", "uprobe_events"),
    ("ftrace", "fprobe", "fprobe"),
    ("ftrace", "eprobe", "eprobe"),
    ("bpf", "tracepoint", "bpf_tracepoint"),
    ("bpf", "raw_tracepoint", "bpf_raw_tracepoint"),
    ("bpf", "tp_btf", "bpf_tp_btf"),
    ("bpf", "fentry", "bpf_fentry"),
    ("bpf", "fexit", "bpf_fexit"),
    ("bpf", "kprobe", "bpf_kprobe"),
    ("bpf", "kretprobe", "bpf_kprobe"),
    ("bpf", "kprobe_multi", "bpf_kprobe_multi"),
    ("bpf", "uprobe", "bpf_uprobe"),
    ("bpf", "uretprobe", "bpf_uprobe"),
    ("bpf", "uprobe_multi", "bpf_uprobe_multi"),
    ("bpf", "profile", "bpf_perf_event"),
    ("bpf", "ringbuf output", "bpf_ringbuf"),
    ("bpf", "perf buffer output", "bpf_perf_buffer"),
]

# For a missing feature: the features that can stand in, best first, and how to say so.
_ALTERNATIVES: Dict[str, List[Tuple[str, str]]] = {
    "kprobe_events": [
        ("bpf_fentry", "fentry/fexit (bpf backend)"),
        ("bpf_kprobe", "BPF kprobes"),
        ("tracepoints", "a nearby tracepoint (undertow list 'tracepoint:*')"),
        ("bpf_tp_btf", "tp_btf (typed tracepoint args, bpf backend)"),
        ("bpf_raw_tracepoint", "raw tracepoints (bpf backend)"),
    ],
    "uprobe_events": [("bpf_uprobe", "BPF uprobes (bpf backend)")],
    "fprobe": [("kprobe_events", "kprobes"), ("bpf_fentry", "fentry (bpf backend)"),
               ("tracepoints", "tracepoints")],
    "eprobe": [("bpf_tracepoint", "a BPF tracepoint program (bpf backend)"),
               ("tracepoints", "plain tracepoints with a filter")],
    "kprobe_btf_args": [("bpf_tp_btf", "tp_btf (typed args, bpf backend)"),
                        ("kprobe_events", "$argN with explicit casts")],
    "tracepoints": [("bpf_raw_tracepoint", "raw tracepoints (bpf backend)")],
    "bpf_tracepoint": [("bpf_raw_tracepoint", "raw tracepoints"), ("bpf_tp_btf", "tp_btf"),
                       ("tracepoints", "the ftrace backend")],
    "bpf_raw_tracepoint": [("bpf_tp_btf", "tp_btf"), ("bpf_tracepoint", "BPF tracepoints")],
    "bpf_tp_btf": [("bpf_raw_tracepoint", "raw tracepoints (untyped args)"),
                   ("bpf_tracepoint", "BPF tracepoints (format fields)")],
    "bpf_fentry": [("bpf_kprobe", "BPF kprobes"), ("kprobe_events", "ftrace kprobes"),
                   ("bpf_tp_btf", "tp_btf at a nearby tracepoint"),
                   ("tracepoints", "a nearby tracepoint")],
    "bpf_fexit": [("bpf_kprobe", "BPF kretprobes"), ("kprobe_events", "ftrace kretprobes"),
                  ("bpf_tp_btf", "tp_btf at a nearby tracepoint"),
                  ("tracepoints", "a nearby tracepoint")],
    "bpf_kprobe": [("bpf_fentry", "fentry"), ("kprobe_events", "ftrace kprobes"),
                   ("bpf_tp_btf", "tp_btf at a nearby tracepoint"),
                   ("bpf_raw_tracepoint", "raw tracepoints"),
                   ("tracepoints", "tracepoints")],
    "bpf_kprobe_multi": [("bpf_kprobe", "one BPF kprobe per function"),
                         ("bpf_fentry", "one fentry per function"),
                         ("tracepoints", "tracepoints")],
    "bpf_uprobe": [("uprobe_events", "ftrace uprobes (ftrace backend)")],
    "bpf_uprobe_multi": [("bpf_uprobe", "one BPF uprobe per symbol"),
                         ("uprobe_events", "ftrace uprobes")],
    "bpf_perf_event": [("tracepoints", "a timer tracepoint (timer:hrtimer_expire_entry)")],
    "bpf_ringbuf": [("bpf_perf_buffer", "a perf event array (perf buffer)")],
    "bpf_perf_buffer": [("bpf_ringbuf", "the BPF ring buffer")],
    "btf": [("tracepoints", "tracepoint format fields (typed without BTF)")],
    "tracefs": [("bpf_raw_tracepoint", "raw tracepoints (bpf backend, no tracefs needed)")],
    "bpf": [("tracepoints", "the ftrace backend")],
}

# Feature -> a hint when the alternatives are all missing too.
_LAST_RESORT: Dict[str, str] = {
    "bpf": "run as root (or with CAP_BPF + CAP_PERFMON)",
}


@dataclass
class Feature:
    """One probed capability.

    ``available`` is ``None`` when it could not be determined (e.g. not root,
    a reader module missing); ``reason`` says why in one line; ``instead``
    names what to use when it is missing.
    """

    name: str
    available: Optional[bool]
    reason: str
    instead: str = ""

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


@dataclass
class Features:
    """The probed features of one kernel plus facts about it and about us.

    ``facts`` holds strings/ints: ``lockdown``, ``kptr_restrict``,
    ``perf_event_paranoid``, ``unprivileged_bpf_disabled``, ``euid``,
    ``capabilities`` (names), ``cap_eff`` (hex), ``memlock`` ...
    """

    kernel: str
    arch: str
    facts: Dict[str, Any]
    features: Dict[str, Feature]
    boot_id: str = ""
    from_cache: bool = False

    def __getitem__(self, name: str) -> Feature:
        return self.features[name]

    def __contains__(self, name: object) -> bool:
        return name in self.features

    def __iter__(self) -> Iterator[Feature]:
        return iter(self.features.values())

    def get(self, name: str) -> Optional[Feature]:
        return self.features.get(name)

    def available(self, name: str) -> bool:
        """True only when the feature was probed and works."""
        f = self.features.get(name)
        return bool(f and f.available)

    def require(self, name: str, what: str = "") -> Feature:
        """The feature, or :class:`FeatureUnavailableError` with its reason and ``instead``."""
        f = self.features.get(name)
        if f is not None and f.available:
            return f
        label = what or FEATURE_TITLES.get(name, name)
        if f is None:
            raise FeatureUnavailableError(name, f"{label}: not probed",
                                          hints=["run 'undertow doctor'"])
        hints = [f"use {f.instead} instead"] if f.instead else []
        hints.append("'undertow doctor' lists what this kernel offers")
        raise FeatureUnavailableError(name, f"{label} is not available: {f.reason}", hints=hints)

    def backends(self) -> Dict[str, Dict[str, Any]]:
        """Per backend: usable at all, why, and each probe kind with its feature's verdict."""
        out: Dict[str, Dict[str, Any]] = {}
        for backend, kind, feat in PROBE_KINDS:
            b = out.setdefault(backend, {"kinds": {}})
            f = self.features.get(feat)
            b["kinds"][kind] = {"feature": feat, "available": bool(f and f.available)}
        ft = self.features.get("tracefs")
        out["ftrace"]["available"] = bool(ft and ft.available)
        out["ftrace"]["reason"] = ft.reason if ft else "not probed"
        bp = self.features.get("bpf")
        outputs = [n for n in ("bpf_ringbuf", "bpf_perf_buffer") if self.available(n)]
        attach = [k for k, v in out["bpf"]["kinds"].items() if v["available"] and "output" not in k]
        ok = bool(bp and bp.available and outputs and attach)
        out["bpf"]["available"] = ok
        if not (bp and bp.available):
            out["bpf"]["reason"] = bp.reason if bp else "not probed"
        elif not outputs:
            out["bpf"]["reason"] = "no ring buffer or perf buffer map can be created"
        elif not attach:
            out["bpf"]["reason"] = "no BPF attach type works"
        else:
            out["bpf"]["reason"] = "bpf(2) works"
        return out

    def to_json(self) -> Dict[str, Any]:
        return {
            "kernel": self.kernel,
            "arch": self.arch,
            "boot_id": self.boot_id,
            "facts": dict(self.facts),
            "features": {n: f.to_json() for n, f in self.features.items()},
            "backends": self.backends(),
        }

    @classmethod
    def from_json(cls, d: Dict[str, Any], from_cache: bool = False) -> "Features":
        feats = {n: Feature.from_json(n, v) for n, v in d.get("features", {}).items()}
        return cls(str(d.get("kernel", "")), str(d.get("arch", "")), dict(d.get("facts", {})),
                   feats, str(d.get("boot_id", "")), from_cache)


# ---------------------------------------------------------------------------
# probing machinery
# ---------------------------------------------------------------------------


class _Unknown(Exception):
    """Raised inside a probe: the answer cannot be determined (``reason``)."""


class _Ctx:
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
        self.cap_eff = _cap_eff(self.roots)
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
                self._tracefs_err = f"tracefs: {sc.errno_name(e.errno or 0)}"
            err = self._tracefs_err
            if err and self.euid != 0 and not err.startswith("unknown:"):
                self.tracefs_detail = self._tracefs_err
                self._tracefs_err = "unknown: needs root to read tracefs"
        if self._tracefs is None:
            raise _Unknown(self._tracefs_err or "tracefs unavailable")
        return self._tracefs

    def readme(self) -> str:
        if self._readme is None:
            try:
                self._readme = self.tracefs().read("README")
            except _Unknown:
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
                self._btf_err = f"no BTF: {sc.errno_name(e.errno or 0)}"
        if self._btf is None:
            raise _Unknown(self._btf_err or "BTF unavailable")
        return self._btf

    def btf_id(self, name: str, kind: str) -> Optional[int]:
        """The BTF id of ``name`` of ``kind``; ``None`` when absent, _Unknown without BTF."""
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
            raise _Unknown("unknown: not the running kernel's files (BPF is probed only live)")
        b = self.results.get("bpf")
        if b is not None and b.available is False:
            raise _Refused(f"bpf(2) is not usable: {b.reason}")
        if b is not None and b.available is None:
            if b.reason.startswith("unknown: needs root"):
                raise _Unknown("unknown: needs root")
            raise _Unknown(b.reason)


class _Refused(Exception):
    """Raised inside a probe: definitely unavailable (``reason``)."""


def _run(ctx: _Ctx, name: str, fn: Callable[[_Ctx], Tuple[Optional[bool], str]]) -> Feature:
    try:
        avail, reason = fn(ctx)
    except _Unknown as e:
        avail, reason = None, str(e)
    except _Refused as e:
        avail, reason = False, str(e)
    except BPFError as e:
        avail, reason = False, e.message
    except Exception as e:  # a probe must never take doctor down
        avail, reason = None, f"unknown: the probe failed: {type(e).__name__}: {e}"
    f = Feature(name, avail, reason)
    ctx.results[name] = f
    return f


def _cap_eff(roots: Any) -> Optional[int]:
    try:
        with open(roots.proc_path("self", "status")) as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split(":", 1)[1].strip(), 16)
    except (OSError, ValueError):
        pass
    return None


_CAPS = {21: "CAP_SYS_ADMIN", 24: "CAP_SYS_RESOURCE", 38: "CAP_PERFMON", 39: "CAP_BPF"}


def _read_text(path: str) -> Optional[str]:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _facts(ctx: _Ctx) -> Dict[str, Any]:
    r = ctx.roots
    facts: Dict[str, Any] = {}
    lock = _read_text(r.sys_path("kernel", "security", "lockdown"))
    from .mounts import filesystem_supported

    if lock is None and r.live and ctx.euid == 0 and filesystem_supported("securityfs", r.proc):
        # securityfs is not mounted here: read it through a private mount, leaving no trace.
        from .mounts import read_from_private_mount

        lock = read_from_private_mount("securityfs", "lockdown")
        lock = lock.strip() if lock else None
    if lock is None:
        facts["lockdown"] = "unknown"
    else:
        # "none [integrity] confidentiality": the bracketed word is the mode.
        mode = [w.strip("[]") for w in lock.split() if w.startswith("[")]
        facts["lockdown"] = mode[0] if mode else lock
    for key in ("kptr_restrict", "perf_event_paranoid", "unprivileged_bpf_disabled"):
        v = _read_text(r.proc_path("sys", "kernel", key))
        facts[key] = int(v) if v is not None and v.lstrip("-").isdigit() else "unknown"
    facts["euid"] = ctx.euid
    facts["root"] = ctx.euid == 0
    if ctx.cap_eff is None:
        facts["cap_eff"] = "unknown"
        facts["capabilities"] = []
    else:
        facts["cap_eff"] = f"{ctx.cap_eff:016x}"
        facts["capabilities"] = [n for bit, n in sorted(_CAPS.items()) if ctx.cap_eff >> bit & 1]
    if r.live:
        facts["memlock_unlimited"] = sc.raise_memlock_rlimit()
    return facts


def _kernel_release(roots: Any) -> str:
    rel = _read_text(roots.proc_path("sys", "kernel", "osrelease"))
    if rel:
        return rel
    return os.uname().release if roots.live else "unknown"


def _arch(roots: Any) -> str:
    a = _read_text(roots.proc_path("sys", "kernel", "arch"))
    if a:
        return a
    return os.uname().machine if roots.live else "unknown"


# ---------------------------------------------------------------------------
# tracefs probes
# ---------------------------------------------------------------------------


def _p_tracefs(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    try:
        t = ctx.tracefs()
    except _Unknown as e:
        msg = str(e)
        if ctx.tracefs_detail:
            raise _Unknown(f"{msg}: {ctx.tracefs_detail}") from None
        if msg.startswith("unknown:"):
            raise
        return False, msg
    return True, f"at {t.path}"


def _has(ctx: _Ctx, rel: str) -> bool:
    return bool(ctx.tracefs().has(rel))


def _p_tracepoints(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    if not _has(ctx, "events"):
        return False, "tracefs has no events/ directory (CONFIG_EVENT_TRACING=n)"
    try:
        text = ctx.tracefs().read("available_events")
    except (UndertowError, OSError):
        text = ""
    names = [l for l in text.splitlines() if ":" in l]
    groups = {l.split(":", 1)[0] for l in names}
    if not names:
        return True, "events/ present (available_events unreadable)"
    return True, f"{len(names)} events in {len(groups)} groups"


def _p_syscall_tps(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    if _has(ctx, "events/syscalls"):
        return True, "events/syscalls present"
    return False, "no events/syscalls (CONFIG_FTRACE_SYSCALLS=n)"


def _p_kprobe_events(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    if _has(ctx, "kprobe_events"):
        return True, "kprobe_events present"
    return False, _no_kprobes_reason(ctx)


def _no_kprobes_reason(ctx: _Ctx) -> str:
    pmu = sc.pmu_type("kprobe", ctx.roots)
    try:
        has_events = _has(ctx, "kprobe_events")
    except _Unknown:
        has_events = None
    if pmu is None and has_events is False:
        return ("the kernel has no kprobe support "
                "(CONFIG_KPROBES=n: no kprobe_events, no kprobe PMU)")
    if has_events is False:
        return "no kprobe_events in tracefs (CONFIG_KPROBE_EVENTS=n)"
    return ("no kprobe PMU in /sys/bus/event_source/devices "
            "(CONFIG_KPROBE_EVENTS=n or kernel < 4.17)")


def _p_uprobe_events(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    if _has(ctx, "uprobe_events"):
        return True, "uprobe_events present"
    return False, "no uprobe_events in tracefs (CONFIG_UPROBE_EVENTS=n)"


def _p_dynamic_events(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    if _has(ctx, "dynamic_events"):
        return True, "dynamic_events present"
    return False, "no dynamic_events in tracefs (kernel < 4.17)"


def _p_fprobe(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    if not _has(ctx, "dynamic_events"):
        return False, "no dynamic_events in tracefs"
    # kernel/trace/trace.c readme_msg lists the "f[:[<group>/][<event>]] <func-name>" syntax
    # only under CONFIG_FPROBE_EVENTS (commit 334e5519c375 "tracing/probes: Add tracepoint
    # support on fprobe_events").
    if "f[:[<group>/][<event>]] <func-name>" in ctx.readme():
        return True, "tracefs README documents f: fprobe events"
    return False, "tracefs README has no f: syntax (CONFIG_FPROBE_EVENTS=n)"


def _p_kprobe_btf_args(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    # CONFIG_PROBE_EVENTS_BTF_ARGS adds "<argname>[->field...]" to the fetcharg syntax
    # (commit b576e09701c7 "tracing/probes: Support function parameters if BTF is available").
    if "<argname>" not in ctx.readme():
        return False, "tracefs README has no <argname> fetcharg (CONFIG_PROBE_EVENTS_BTF_ARGS=n)"
    if not (ctx.is_available("kprobe_events") or ctx.is_available("fprobe")):
        return False, "BTF args are documented but there is neither kprobe_events nor fprobe"
    return True, "probe events accept BTF argument names"


def _p_hist(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    for ev in ("sched/sched_switch", "sched/sched_process_exec", "syscalls/sys_enter_openat"):
        if _has(ctx, f"events/{ev}"):
            if _has(ctx, f"events/{ev}/hist"):
                return True, f"events/{ev}/hist present"
            return False, f"no events/{ev}/hist (CONFIG_HIST_TRIGGERS=n)"
    raise _Unknown("unknown: no well-known event to check")


def _eprobe_target(ctx: _Ctx) -> Optional[str]:
    for ev in ("syscalls/sys_enter_getpid", "sched/sched_switch", "raw_syscalls/sys_enter"):
        if _has(ctx, f"events/{ev}"):
            return ev
    return None


def _p_eprobe(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    if not _has(ctx, "dynamic_events"):
        return False, "no dynamic_events in tracefs"
    # The README lists the e: syntax whenever kprobe or uprobe events exist, whether or not
    # CONFIG_EPROBE_EVENTS is set (kernel/trace/trace.c readme_msg), so only defining one
    # tells. A rejected definition leaves nothing behind; an accepted one is removed at once.
    if "<attached-group>.<attached-event>" not in ctx.readme():
        return False, "tracefs README has no e: syntax (kernel < 5.15)"
    if not ctx.roots.live:
        raise _Unknown("unknown: the README lists e:, only a live definition can tell")
    if ctx.euid != 0:
        raise _Unknown("unknown: needs root to try defining an event probe")
    target = _eprobe_target(ctx)
    if target is None:
        raise _Unknown("unknown: no event to attach a test event probe to")
    grp = f"undertow_probe_{os.getpid()}"
    t = ctx.tracefs()
    try:
        t.write("dynamic_events", f"e:{grp}/ep {target.replace('/', '.')}\n")
    except (UndertowError, OSError) as e:
        code = getattr(e, "errno", 0) or 0
        if code == _errno.EINVAL:
            why = f"the kernel refused an event probe on {target}: {sc.errno_name(code)}"
            log = getattr(e, "kernel_log", "").strip()
            return False, why + (f": {log.splitlines()[-1].strip()}" if log
                                 else " (CONFIG_EPROBE_EVENTS=n)")
        return False, f"defining an event probe failed: {sc.errno_name(code)}"
    try:
        t.write("dynamic_events", f"-:{grp}/ep\n")
    except (UndertowError, OSError):
        pass
    return True, f"an event probe on {target} was accepted (and removed)"


def _p_btf(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    path = ctx.roots.btf_vmlinux
    try:
        size = os.stat(path).st_size
    except OSError as e:
        if e.errno == _errno.ENOENT:
            return False, f"no {path} (CONFIG_DEBUG_INFO_BTF=n)"
        return False, f"{path}: {sc.errno_name(e.errno or 0)}"
    try:
        ctx.btf()
    except _Unknown as e:
        msg = str(e)
        if msg.startswith("unknown:"):
            return True, f"{path} ({size} bytes; {msg[len('unknown: '):]})"
        return False, msg
    return True, f"{path} ({size} bytes)"


# ---------------------------------------------------------------------------
# BPF probes
# ---------------------------------------------------------------------------


def _load(prog_type: int, **kw: Any) -> int:
    fd = sc.prog_load(prog_type, RET0_PROG, license="GPL", name="undertow_probe", **kw)
    assert isinstance(fd, int)
    return fd


def _p_bpf(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    if not ctx.roots.live:
        raise _Unknown("unknown: not the running kernel's files (BPF is probed only live)")
    try:
        fd = sc.map_create(sc.MapType.ARRAY, 4, 4, 1, name="undertow_probe")
    except BPFError as e:
        if e.errno == _errno.ENOSYS:
            return False, "no bpf(2) syscall (CONFIG_BPF_SYSCALL=n)"
        if e.errno == _errno.EPERM and ctx.euid != 0:
            raise _Unknown("unknown: needs root (bpf(2) refused with EPERM: no CAP_BPF)") from None
        return False, f"bpf(2) refused: {sc.errno_name(e.errno)}"
    sc.close_fd(fd)
    return True, "bpf(2) creates maps"


def _tracepoint_target(ctx: _Ctx) -> Tuple[str, int]:
    t = ctx.tracefs()
    for ev in ("sched/sched_switch", "syscalls/sys_enter_getpid", "raw_syscalls/sys_enter"):
        if t.has(f"events/{ev}/id"):
            try:
                return ev, int(t.read(f"events/{ev}/id").strip())
            except (ValueError, UndertowError, OSError):
                continue
    raise _Unknown("unknown: no tracepoint id readable in tracefs")


def _p_bpf_tracepoint(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    ev, tp_id = _tracepoint_target(ctx)
    prog = pfd = -1
    try:
        prog = _load(sc.ProgType.TRACEPOINT)
        pfd = sc.perf_event_open(sc.tracepoint_attr(tp_id), pid=-1, cpu=0)
        sc.perf_event_set_bpf(pfd, prog)
    finally:
        sc.close_fd(pfd)
        sc.close_fd(prog)
    return True, f"loaded and attached to {ev.replace('/', ':')}"


def _p_bpf_raw_tracepoint(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    prog = link = -1
    try:
        prog = _load(sc.ProgType.RAW_TRACEPOINT)
        link = sc.raw_tracepoint_open("sched_switch", prog)
    finally:
        sc.close_fd(link)
        sc.close_fd(prog)
    return True, "loaded and attached to sched_switch"


def _p_bpf_tp_btf(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    # tp_btf programs name their tracepoint by the BTF id of the typedef
    # btf_trace_<tracepoint> (include/trace/bpf_probe.h).
    try:
        tid = ctx.btf_id("btf_trace_sched_switch", "typedef")
    except _Unknown as e:
        if str(e).startswith("unknown:"):
            raise
        raise _Refused(f"needs kernel BTF: {e}")
    if tid is None:
        return False, "BTF has no btf_trace_sched_switch typedef (kernel < 5.5)"
    prog = link = -1
    try:
        prog = _load(sc.ProgType.TRACING, expected_attach_type=sc.AttachType.TRACE_RAW_TP,
                     attach_btf_id=tid)
        link = sc.raw_tracepoint_open(None, prog)
    finally:
        sc.close_fd(link)
        sc.close_fd(prog)
    return True, "loaded and attached to sched_switch"


_FENTRY_TARGETS = ("do_sys_openat2", "vfs_read", "do_sys_open", "ksys_read")


def _tracing_func(ctx: _Ctx, attach: int, label: str) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    try:
        target = None
        for name in _FENTRY_TARGETS:
            fid = ctx.btf_id(name, "func")
            if fid:
                target = (name, fid)
                break
    except _Unknown as e:
        if str(e).startswith("unknown:"):
            raise
        raise _Refused(f"needs kernel BTF: {e}")
    if target is None:
        raise _Unknown(f"unknown: none of {', '.join(_FENTRY_TARGETS)} is a BTF FUNC")
    name, fid = target
    prog = link = -1
    try:
        try:
            prog = _load(sc.ProgType.TRACING, expected_attach_type=attach, attach_btf_id=fid)
        except BPFError as e:
            log = getattr(e, "log", "")
            why = f"loading an {label} program for {name} failed: {sc.errno_name(e.errno)}"
            why += ", empty verifier log" if not log.strip() else f": {e.message}"
            if e.errno == _errno.EPERM and ctx.euid == 0 and ctx.is_available("bpf_tp_btf"):
                why += (" (tp_btf, the same program type, loads:"
                        " the kernel refuses this attach type)")
            return False, why
        try:
            link = sc.raw_tracepoint_open(None, prog)
        except BPFError as e:
            return False, (f"{label} for {name} loaded but attaching failed: "
                           f"{sc.errno_name(e.errno)}")
    finally:
        sc.close_fd(link)
        sc.close_fd(prog)
    return True, f"loaded and attached to {name}"


def _p_bpf_fentry(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    return _tracing_func(ctx, sc.AttachType.TRACE_FENTRY, "fentry")


def _p_bpf_fexit(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    return _tracing_func(ctx, sc.AttachType.TRACE_FEXIT, "fexit")


def _p_bpf_kprobe(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    pmu = sc.pmu_type("kprobe", ctx.roots)
    if pmu is None:
        return False, _no_kprobes_reason(ctx)
    prog = pfd = -1
    last: Optional[BPFError] = None
    try:
        prog = _load(sc.ProgType.KPROBE)
        for name in _FENTRY_TARGETS:
            try:
                pfd = sc.perf_event_open(sc.kprobe_attr(pmu, name), pid=-1, cpu=0)
            except BPFError as e:
                last = e
                continue
            sc.perf_event_set_bpf(pfd, prog)
            return True, f"loaded and attached to {name} through the kprobe PMU"
    finally:
        sc.close_fd(pfd)
        sc.close_fd(prog)
    assert last is not None
    return False, f"kprobe PMU refused every test function: {sc.errno_name(last.errno)}"


def _p_bpf_kprobe_multi(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    prog = link = -1
    try:
        try:
            prog = _load(sc.ProgType.KPROBE, expected_attach_type=sc.AttachType.TRACE_KPROBE_MULTI)
        except BPFError as e:
            return False, f"loading a kprobe_multi program failed: {sc.errno_name(e.errno)}"
        try:
            link = sc.link_create_kprobe_multi(prog, ["vfs_read"])
        except BPFError as e:
            extra = " (CONFIG_FPROBE=n)" if e.errno in (_errno.EOPNOTSUPP, _errno.ENOTSUP) else ""
            return False, f"creating a kprobe_multi link failed: {sc.errno_name(e.errno)}{extra}"
    finally:
        sc.close_fd(link)
        sc.close_fd(prog)
    return True, "kprobe_multi link on vfs_read"


def _uprobe_target() -> Tuple[str, int]:
    try:
        elf = importlib.import_module("undertow.kernel.elf")
    except ModuleNotFoundError as e:
        raise _Unknown(f"unknown: {e.name or 'undertow.kernel.elf'} not available") from None
    try:
        path = elf.find_library("libc")
        with elf.ELFFile(path) as f:
            off = f.symbol_file_offset("getpid")
    except UndertowError as e:
        raise _Unknown(f"unknown: no libc getpid to probe: {e.message}") from None
    except OSError as e:
        raise _Unknown(f"unknown: no libc to probe: {e}") from None
    return str(path), int(off)


def _p_bpf_uprobe(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    pmu = sc.pmu_type("uprobe", ctx.roots)
    if pmu is None:
        return False, "no uprobe PMU in /sys/bus/event_source/devices (CONFIG_UPROBE_EVENTS=n)"
    path, off = _uprobe_target()
    prog = pfd = -1
    try:
        prog = _load(sc.ProgType.KPROBE)
        # pid = ourselves, any cpu: the probe only fires in this process.
        pfd = sc.perf_event_open(sc.uprobe_attr(pmu, path, off), pid=os.getpid(), cpu=-1)
        sc.perf_event_set_bpf(pfd, prog)
    finally:
        sc.close_fd(pfd)
        sc.close_fd(prog)
    return True, f"loaded and attached to {os.path.basename(path)}:getpid through the uprobe PMU"


def _p_bpf_uprobe_multi(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    path, off = _uprobe_target()
    prog = link = -1
    try:
        try:
            prog = _load(sc.ProgType.KPROBE, expected_attach_type=sc.AttachType.TRACE_UPROBE_MULTI)
        except BPFError as e:
            return False, f"loading a uprobe_multi program failed: {sc.errno_name(e.errno)}"
        try:
            link = sc.link_create_uprobe_multi(prog, path, [off], pid=os.getpid())
        except BPFError as e:
            return False, f"creating a uprobe_multi link failed: {sc.errno_name(e.errno)}"
    finally:
        sc.close_fd(link)
        sc.close_fd(prog)
    return True, f"uprobe_multi link on {os.path.basename(path)}:getpid"


def _p_bpf_perf_event(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    prog = pfd = -1
    try:
        prog = _load(sc.ProgType.PERF_EVENT)
        attr = sc.software_attr(sc.PerfSwConfig.CPU_CLOCK, freq=49)
        pfd = sc.perf_event_open(attr, pid=-1, cpu=0)
        sc.perf_event_set_bpf(pfd, prog)
    finally:
        sc.close_fd(pfd)
        sc.close_fd(prog)
    return True, "loaded and attached to a cpu-clock software event"


def _p_bpf_ringbuf(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    page = os.sysconf("SC_PAGE_SIZE")
    try:
        fd = sc.map_create(sc.MapType.RINGBUF, 0, 0, page, name="undertow_probe")
    except BPFError as e:
        if e.errno == _errno.EINVAL:
            return False, f"no BPF_MAP_TYPE_RINGBUF: {sc.errno_name(e.errno)} (kernel < 5.8)"
        raise
    sc.close_fd(fd)
    return True, "BPF_MAP_TYPE_RINGBUF created"


def _p_bpf_perf_buffer(ctx: _Ctx) -> Tuple[Optional[bool], str]:
    ctx.need_bpf()
    ncpu = os.cpu_count() or 1
    fd = sc.map_create(sc.MapType.PERF_EVENT_ARRAY, 4, 4, ncpu, name="undertow_probe")
    sc.close_fd(fd)
    return True, "BPF_MAP_TYPE_PERF_EVENT_ARRAY created"


# Order matters: later probes read earlier results (bpf gates the BPF probes; fentry's
# message mentions tp_btf).
PROBES: List[Tuple[str, Callable[[_Ctx], Tuple[Optional[bool], str]]]] = [
    ("tracefs", _p_tracefs),
    ("tracepoints", _p_tracepoints),
    ("syscall_tracepoints", _p_syscall_tps),
    ("kprobe_events", _p_kprobe_events),
    ("uprobe_events", _p_uprobe_events),
    ("dynamic_events", _p_dynamic_events),
    ("fprobe", _p_fprobe),
    ("eprobe", _p_eprobe),
    ("kprobe_btf_args", _p_kprobe_btf_args),
    ("hist_triggers", _p_hist),
    ("btf", _p_btf),
    ("bpf", _p_bpf),
    ("bpf_tracepoint", _p_bpf_tracepoint),
    ("bpf_raw_tracepoint", _p_bpf_raw_tracepoint),
    ("bpf_tp_btf", _p_bpf_tp_btf),
    ("bpf_fentry", _p_bpf_fentry),
    ("bpf_fexit", _p_bpf_fexit),
    ("bpf_kprobe", _p_bpf_kprobe),
    ("bpf_kprobe_multi", _p_bpf_kprobe_multi),
    ("bpf_uprobe", _p_bpf_uprobe),
    ("bpf_uprobe_multi", _p_bpf_uprobe_multi),
    ("bpf_perf_event", _p_bpf_perf_event),
    ("bpf_ringbuf", _p_bpf_ringbuf),
    ("bpf_perf_buffer", _p_bpf_perf_buffer),
]


def _fill_instead(features: Dict[str, Feature]) -> None:
    for name, f in features.items():
        if f.available:
            continue
        alts = [text for alt, text in _ALTERNATIVES.get(name, ())
                if features.get(alt) is not None and features[alt].available]
        if alts:
            f.instead = "; ".join(alts[:3])
        elif name in _LAST_RESORT:
            f.instead = _LAST_RESORT[name]
        if f.available is None and f.reason.startswith("unknown: needs root"):
            f.instead = f.instead or "run as root to probe it"


def _cache_key(ctx: _Ctx) -> Dict[str, Any]:
    return {
        "schema": CACHE_SCHEMA,
        "version": __version__,
        "boot_id": cache.boot_id(ctx.roots),
        "euid": ctx.euid,
        "cap_eff": ctx.cap_eff,
    }


def _cache_name(ctx: _Ctx) -> str:
    return f"features-{__version__}-{ctx.euid}.json"


#: Bounds of what the feature cache may hold (anything else is a miss).
_MAX_CACHE = 256 << 10
_MAX_TEXT = 400
_CACHE_KEYS = frozenset({"kernel", "arch", "boot_id", "facts", "features", "backends", "key"})
_SYSCTLS = ("kptr_restrict", "perf_event_paranoid", "unprivileged_bpf_disabled")


def _text(v: Any, limit: int = _MAX_TEXT) -> bool:
    return type(v) is str and len(v) <= limit and v.isprintable()


def _from_cache(raw: bytes, key: Dict[str, Any], ctx: _Ctx) -> Optional[Features]:
    """The cached :class:`Features`, parsed strictly: the known keys with their types,
    this boot's key, every probed feature and no other, printable bounded strings; facts
    that follow from our credentials must be ours; ``instead`` is derived again, not read.
    Anything else is a miss (None)."""
    try:
        d = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if type(d) is not dict or d.get("key") != key or not set(d) <= _CACHE_KEYS:
        return None
    kernel, arch, boot = d.get("kernel"), d.get("arch"), d.get("boot_id")
    facts, feats = d.get("facts"), d.get("features")
    if not (_text(kernel, 128) and _text(arch, 32) and boot == key["boot_id"]) or type(feats) is not dict:
        return None
    if not _facts_ok(facts, ctx) or set(feats) != {name for name, _fn in PROBES}:
        return None
    out: Dict[str, Feature] = {}
    for name, _fn in PROBES:
        v = feats[name]
        if type(v) is not dict or not set(v) <= {"available", "reason", "unknown", "instead"}:
            return None
        avail, unknown, reason = v.get("available"), v.get("unknown", False), v.get("reason")
        if type(avail) is not bool or type(unknown) is not bool or (unknown and avail) or not _text(reason):
            return None
        out[name] = Feature(name, None if unknown else avail, reason)
    _fill_instead(out)
    return Features(kernel, arch, dict(facts), out, boot, True)


def _facts_ok(facts: Any, ctx: _Ctx) -> bool:
    """Whether cached facts have the shape :func:`_facts` gives them, with our credentials."""
    if type(facts) is not dict:
        return False
    need = {"lockdown", "euid", "root", "cap_eff", "capabilities", *_SYSCTLS}
    if not need <= set(facts) <= need | {"memlock_unlimited"}:
        return False
    if not _text(facts["lockdown"], 64):
        return False
    for k in _SYSCTLS:
        v = facts[k]
        if not (v == "unknown" or (type(v) is int and -(1 << 31) <= v < 1 << 31)):
            return False
    if type(facts.get("memlock_unlimited", False)) is not bool:
        return False
    if ctx.cap_eff is None:
        caps: Tuple[Any, Any] = ("unknown", [])
    else:
        caps = (f"{ctx.cap_eff:016x}", [n for bit, n in sorted(_CAPS.items()) if ctx.cap_eff >> bit & 1])
    return (type(facts["euid"]) is int and facts["euid"] == ctx.euid and facts["root"] is (ctx.euid == 0)
            and (facts["cap_eff"], facts["capabilities"]) == caps)


def detect_features(kernel: "Kernel", refresh: bool = False,
                    only: Optional[List[str]] = None) -> Features:
    """Probe the kernel of ``kernel`` (an :class:`undertow.kernel.Kernel`).

    Results are cached per boot (per-user cache file keyed by boot id,
    undertow version, euid and effective capabilities); ``refresh`` ignores
    and rewrites the cache. ``only`` restricts probing to some names (never
    cached). Never raises for a missing feature: that is what the result says.
    """
    ctx = _Ctx(kernel)
    key = _cache_key(ctx)
    use_cache = kernel.roots.live and only is None
    if use_cache and not refresh:
        raw = cache.read_cache(kernel.roots, _cache_name(ctx), limit=_MAX_CACHE)
        got = _from_cache(raw, key, ctx) if raw else None
        if got is not None:
            return got
    facts = _facts(ctx)
    for name, fn in PROBES:
        if only is not None and name not in only and name not in ("tracefs", "bpf"):
            continue
        _run(ctx, name, fn)
    feats = dict(ctx.results)
    _fill_instead(feats)
    result = Features(_kernel_release(ctx.roots), _arch(ctx.roots), facts, feats,
                      str(key["boot_id"]), False)
    # Do not cache answers that only say a reader module is missing: it may land later.
    complete = not any(f.reason.startswith("unknown: undertow.") for f in feats.values())
    if use_cache and complete:
        d = result.to_json()
        d["key"] = key
        cache.write_cache(kernel.roots, _cache_name(ctx), json.dumps(d, sort_keys=True).encode())
    return result
