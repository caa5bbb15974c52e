"""Feature probes on the running kernel (root).

Ground truth comes from the kernel's own files (tracefs entries, the PMU directories) and from
this machine's measured facts (DESIGN.md: no kprobes, fentry refused with EPERM, tracepoints,
uprobes, BPF tracepoints, raw tracepoints, tp_btf and ringbuf work). Where the kernel is a
different one, the machine-specific assertions skip with the reason and the test checks
consistency instead.
"""

from __future__ import annotations

import os

import pytest

from undertow.kernel import Kernel
from undertow.kernel.features import Features, detect_features
from undertow.kernel.roots import Roots

REQUIRED = ["kprobe_events", "uprobe_events", "tracepoints", "btf", "bpf_tracepoint",
            "bpf_raw_tracepoint", "bpf_tp_btf", "bpf_fentry", "bpf_kprobe", "bpf_uprobe",
            "bpf_ringbuf"]


def _open_fds() -> set:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Roots:
    return Roots(cache_dir=str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def feats(roots: Roots) -> Features:
    return detect_features(Kernel(roots), refresh=True)


@pytest.fixture(scope="module")
def tracing_dir(feats: Features) -> str:
    t = feats["tracefs"]
    if not t.available:
        pytest.skip(f"tracefs unusable: {t.reason}")
    return t.reason[len("at "):]


def _known(feats: Features, name: str) -> bool:
    f = feats[name]
    if f.available is None:
        pytest.skip(f"{name} could not be probed: {f.reason}")
    return bool(f.available)


def test_required_names(feats: Features) -> None:
    for name in REQUIRED:
        assert name in feats, name
        assert feats[name].reason, name


def test_kprobes_match_the_kernel_files(feats: Features, tracing_dir: str) -> None:
    has_events = os.path.exists(os.path.join(tracing_dir, "kprobe_events"))
    has_pmu = os.path.isdir("/sys/bus/event_source/devices/kprobe")
    assert feats["kprobe_events"].available is has_events
    if not has_events and not has_pmu:
        # this machine: CONFIG_KPROBES=n
        assert "no kprobe support" in feats["kprobe_events"].reason
        assert feats["bpf_kprobe"].available is False
        assert "no kprobe support" in feats["bpf_kprobe"].reason
        assert "tracepoint" in feats["kprobe_events"].instead
    else:
        # a kernel with kprobes: the BPF side must agree with the PMU
        assert "no kprobe support" not in feats["kprobe_events"].reason
        if has_pmu and feats["bpf"].available:
            assert feats["bpf_kprobe"].available is True, feats["bpf_kprobe"].reason


def test_tracepoints(feats: Features, tracing_dir: str) -> None:
    assert feats["tracepoints"].available is True
    with open(os.path.join(tracing_dir, "available_events")) as f:
        n = sum(1 for line in f if ":" in line)
    assert feats["tracepoints"].reason.startswith(f"{n} events in ")


def test_uprobes(feats: Features, tracing_dir: str) -> None:
    assert feats["uprobe_events"].available is os.path.exists(
        os.path.join(tracing_dir, "uprobe_events"))
    if not os.path.isdir("/sys/bus/event_source/devices/uprobe"):
        pytest.skip("no uprobe PMU on this kernel")
    assert _known(feats, "bpf_uprobe") is True, feats["bpf_uprobe"].reason
    # uprobe_multi links arrived in 6.6 (commit 89ae89f53d20, "bpf: Add multi uprobe link");
    # the kernel's own symbol is the independent oracle.
    with open("/proc/kallsyms") as f:
        has_multi = any(line.rstrip().endswith(" bpf_uprobe_multi_link_attach") for line in f)
    assert _known(feats, "bpf_uprobe_multi") is has_multi, feats["bpf_uprobe_multi"].reason


@pytest.mark.parametrize("name", ["bpf", "bpf_tracepoint", "bpf_raw_tracepoint", "bpf_ringbuf",
                                  "bpf_perf_buffer", "bpf_perf_event"])
def test_bpf_basics_work(feats: Features, name: str) -> None:
    assert feats[name].available is True, feats[name].reason


def test_tp_btf(feats: Features) -> None:
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        assert feats["btf"].available is False
        pytest.skip("no kernel BTF here")
    assert feats["btf"].available is True
    assert _known(feats, "bpf_tp_btf") is True, feats["bpf_tp_btf"].reason


def test_fentry(feats: Features) -> None:
    ok = _known(feats, "bpf_fentry")
    fexit = _known(feats, "bpf_fexit")
    if ok:
        assert fexit is True, "fentry attaches but fexit does not"
        assert feats["bpf_fentry"].reason.startswith("loaded and attached to ")
        pytest.skip("fentry works here: not the EPERM kernel this test was measured on")
    # this machine: load refused with EPERM and an empty verifier log
    r = feats["bpf_fentry"].reason
    assert "EPERM" in r and "empty verifier log" in r, r
    assert feats["bpf_fentry"].instead


def test_facts(feats: Features) -> None:
    assert feats.kernel == os.uname().release
    assert feats.arch == os.uname().machine
    assert feats.facts["root"] is True
    with open("/proc/sys/kernel/perf_event_paranoid") as f:
        assert feats.facts["perf_event_paranoid"] == int(f.read())
    path = "/sys/kernel/security/lockdown"
    if os.path.exists(path):
        with open(path) as f:
            assert f"[{feats.facts['lockdown']}]" in f.read()
    else:
        from undertow.kernel.mounts import read_from_private_mount

        text = read_from_private_mount("securityfs", "lockdown")
        if text is None:
            assert feats.facts["lockdown"] == "unknown"
        else:
            assert f"[{feats.facts['lockdown']}]" in text


def test_probing_leaves_nothing_behind(roots: Roots, tracing_dir: str) -> None:
    import gc

    gc.collect()  # objects of earlier tests must not close their fds in the middle of the count
    before = _open_fds()
    detect_features(Kernel(roots), refresh=True)
    after = _open_fds()
    assert after == before, f"leaked fds: {sorted(after - before)}"
    with open(os.path.join(tracing_dir, "dynamic_events")) as f:
        assert "undertow_probe" not in f.read()
    assert not [g for g in os.listdir(os.path.join(tracing_dir, "events"))
                if g.startswith("undertow_probe")]


def test_cache_round_trip(roots: Roots, feats: Features) -> None:
    again = detect_features(Kernel(roots))
    if any(f.reason.startswith("unknown: undertow.") for f in feats):
        assert not again.from_cache  # incomplete answers are not cached
        pytest.skip("a reader module is missing, so nothing was cached")
    assert again.from_cache
    assert {n: (f.available, f.reason) for n, f in ((f.name, f) for f in again)} == \
        {n: (f.available, f.reason) for n, f in ((f.name, f) for f in feats)}


def test_lockdown_read_without_leaving_a_mount() -> None:
    from undertow.kernel.mounts import filesystem_supported, read_from_private_mount

    if not filesystem_supported("securityfs"):
        pytest.skip("no securityfs in this kernel")
    before = open("/proc/self/mounts").read()
    text = read_from_private_mount("securityfs", "lockdown")
    after = open("/proc/self/mounts").read()
    assert before == after
    if text is None:
        pytest.skip("securityfs cannot be mounted here (container?)")
    # The file lists the modes with the active one in brackets.
    assert "[" in text and "none" in text
