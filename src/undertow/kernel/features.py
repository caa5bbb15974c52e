"""Feature probes: what this kernel really offers, tested by doing it, cached per boot.

Checks features, never version numbers (as libbpf's ``kernel_supports()`` and
drgn do). The probes live in :mod:`undertow.kernel.featprobes`, one module per facility:
tracefs features are read from tracefs itself (files present, the ``README`` syntax
lines); BPF features load a two-instruction program (``r0 = 0; exit``) and attach it to
a real target, then close everything at once: a probe never leaves a program, link,
perf event or dynamic event behind. This module is the registry (:data:`PROBES`, in
order), the report (:class:`Features`: per feature, per backend, what to use instead)
and the cache.

Each :class:`Feature` says ``available`` (``True``/``False``, ``None`` when it
could not be determined), ``reason`` (why, with the errno name when the kernel
refused) and ``instead`` (what to use when it is missing). Results are cached
as JSON in the per-user cache, keyed by the boot id, the undertow version and
the caller's credentials (undertow.kernel.cache: only a directory of the user's that
nobody else can write), and read back strictly: anything unexpected in the file is a miss;
``detect_features(kernel, refresh=True)`` bypasses it.
"""

from __future__ import annotations

import json
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ..errors import FeatureUnavailableError
from ..version import __version__
from . import cache
from .featprobes import bpf as _bpf, btf as _btf, tracefs as _tracefs
from .featprobes.base import (
    CAPS, Feature, ProbeContext, kernel_release, machine, read_facts, run_probe,
)
from .featprobes.bpf import RET0_PROG  # noqa: F401 - importable from here, as before

if TYPE_CHECKING:  # a cycle at run time: the package's Kernel.features() imports this module
    from . import Kernel

__all__ = ["Feature", "Features", "detect_features", "PROBE_KINDS", "FEATURE_TITLES"]

CACHE_SCHEMA = 2

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
    "bpf_iter_task": "BPF task iterators (iter:task)",
    "bpf_iter_task_file": "BPF task file iterators (iter:task_file)",
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
    ("bpf", "iter:task", "bpf_iter_task"),
    ("bpf", "iter:task_file", "bpf_iter_task_file"),
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


class Features:
    """The probed features of one kernel plus facts about it and about us.

    ``facts`` holds strings/ints: ``lockdown``, ``kptr_restrict``,
    ``perf_event_paranoid``, ``unprivileged_bpf_disabled``, ``euid``,
    ``capabilities`` (names), ``cap_eff`` (hex), ``memlock`` ...
    """

    __slots__ = ("kernel", "arch", "facts", "features", "boot_id", "from_cache")

    def __init__(self, kernel: str, arch: str, facts: Dict[str, Any], features: Dict[str, Feature],
                 boot_id: str = "", from_cache: bool = False) -> None:
        self.kernel, self.arch, self.facts, self.features = kernel, arch, facts, features
        self.boot_id, self.from_cache = boot_id, from_cache

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


# Order matters: later probes read earlier results (bpf gates the BPF probes; fentry's
# message mentions tp_btf).
PROBES: List[Tuple[str, Callable[[ProbeContext], Tuple[Optional[bool], str]]]] = [
    ("tracefs", _tracefs.probe_tracefs),
    ("tracepoints", _tracefs.probe_tracepoints),
    ("syscall_tracepoints", _tracefs.probe_syscall_tps),
    ("kprobe_events", _tracefs.probe_kprobe_events),
    ("uprobe_events", _tracefs.probe_uprobe_events),
    ("dynamic_events", _tracefs.probe_dynamic_events),
    ("fprobe", _tracefs.probe_fprobe),
    ("eprobe", _tracefs.probe_eprobe),
    ("kprobe_btf_args", _tracefs.probe_kprobe_btf_args),
    ("hist_triggers", _tracefs.probe_hist),
    ("btf", _btf.probe_btf),
    ("bpf", _bpf.probe_bpf),
    ("bpf_tracepoint", _bpf.probe_bpf_tracepoint),
    ("bpf_raw_tracepoint", _bpf.probe_bpf_raw_tracepoint),
    ("bpf_tp_btf", _bpf.probe_bpf_tp_btf),
    ("bpf_fentry", _bpf.probe_bpf_fentry),
    ("bpf_fexit", _bpf.probe_bpf_fexit),
    ("bpf_kprobe", _bpf.probe_bpf_kprobe),
    ("bpf_kprobe_multi", _bpf.probe_bpf_kprobe_multi),
    ("bpf_uprobe", _bpf.probe_bpf_uprobe),
    ("bpf_uprobe_multi", _bpf.probe_bpf_uprobe_multi),
    ("bpf_iter_task", _bpf.probe_bpf_iter_task),
    ("bpf_iter_task_file", _bpf.probe_bpf_iter_task_file),
    ("bpf_perf_event", _bpf.probe_bpf_perf_event),
    ("bpf_ringbuf", _bpf.probe_bpf_ringbuf),
    ("bpf_perf_buffer", _bpf.probe_bpf_perf_buffer),
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


def _cache_key(ctx: ProbeContext) -> Dict[str, Any]:
    return {
        "schema": CACHE_SCHEMA,
        "version": __version__,
        "boot_id": cache.boot_id(ctx.roots),
        "euid": ctx.euid,
        "cap_eff": ctx.cap_eff,
    }


def _cache_name(ctx: ProbeContext) -> str:
    return f"features-{__version__}-{ctx.euid}.json"


#: Bounds of what the feature cache may hold (anything else is a miss).
_MAX_CACHE = 256 << 10
_MAX_TEXT = 400
_CACHE_KEYS = frozenset({"kernel", "arch", "boot_id", "facts", "features", "backends", "key"})
_SYSCTLS = ("kptr_restrict", "perf_event_paranoid", "unprivileged_bpf_disabled")


def _text(v: Any, limit: int = _MAX_TEXT) -> bool:
    return type(v) is str and len(v) <= limit and v.isprintable()


def _from_cache(raw: bytes, key: Dict[str, Any], ctx: ProbeContext) -> Optional[Features]:
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


def _facts_ok(facts: Any, ctx: ProbeContext) -> bool:
    """Whether cached facts have the shape :func:`read_facts` gives them, with our credentials."""
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
        caps = (f"{ctx.cap_eff:016x}", [n for bit, n in sorted(CAPS.items()) if ctx.cap_eff >> bit & 1])
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
    ctx = ProbeContext(kernel)
    key = _cache_key(ctx)
    use_cache = kernel.roots.live and only is None
    if use_cache and not refresh:
        raw = cache.read_cache(kernel.roots, _cache_name(ctx), limit=_MAX_CACHE)
        got = _from_cache(raw, key, ctx) if raw else None
        if got is not None:
            return got
    facts = read_facts(ctx)
    for name, fn in PROBES:
        if only is not None and name not in only and name not in ("tracefs", "bpf"):
            continue
        run_probe(ctx, name, fn)
    feats = dict(ctx.results)
    _fill_instead(feats)
    result = Features(kernel_release(ctx.roots), machine(ctx.roots), facts, feats,
                      str(key["boot_id"]), False)
    # Do not cache answers that only say a reader module is missing: it may land later.
    complete = not any(f.reason.startswith("unknown: undertow.") for f in feats.values())
    if use_cache and complete:
        d = result.to_json()
        d["key"] = key
        cache.write_cache(kernel.roots, _cache_name(ctx), json.dumps(d, sort_keys=True).encode())
    return result
