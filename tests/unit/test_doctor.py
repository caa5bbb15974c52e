"""Unit tests for `undertow doctor`: text rendering (100 columns, reasons, instead, summary,
non-root note), the --json shape, and the command wiring. Features are built by hand or from
fake roots: nothing here probes the running kernel."""

from __future__ import annotations

import json

import pytest

from undertow import cli
from undertow.commands import doctor
from undertow.kernel import features as F
from undertow.kernel.features import Feature, Features

REQUIRED = ["kprobe_events", "uprobe_events", "tracepoints", "btf", "bpf_tracepoint",
            "bpf_raw_tracepoint", "bpf_tp_btf", "bpf_fentry", "bpf_kprobe", "bpf_uprobe",
            "bpf_ringbuf"]

NO_KPROBES = "the kernel has no kprobe support (CONFIG_KPROBES=n: no kprobe_events, no kprobe PMU)"


def this_machine(root=True):
    feats = {}
    for name, _ in F.PROBES:
        feats[name] = Feature(name, True, "works")
    feats["kprobe_events"] = Feature("kprobe_events", False, NO_KPROBES)
    feats["bpf_kprobe"] = Feature("bpf_kprobe", False, NO_KPROBES)
    feats["bpf_kprobe_multi"] = Feature("bpf_kprobe_multi", False,
                                        "creating a kprobe_multi link failed: EOPNOTSUPP")
    feats["fprobe"] = Feature("fprobe", False, "tracefs README has no f: syntax")
    feats["eprobe"] = Feature("eprobe", False, "EINVAL")
    feats["bpf_fentry"] = Feature(
        "bpf_fentry", False,
        "loading an fentry program for do_sys_openat2 failed: EPERM (Operation not permitted), "
        "empty verifier log (tp_btf, the same program type, loads: "
        "the kernel refuses this attach type)")
    feats["bpf_fexit"] = Feature("bpf_fexit", False, "EPERM")
    facts = {"lockdown": "integrity", "kptr_restrict": 0, "perf_event_paranoid": 2,
             "unprivileged_bpf_disabled": 2, "euid": 0 if root else 1000, "root": root,
             "capabilities": ["CAP_SYS_ADMIN", "CAP_PERFMON", "CAP_BPF"] if root else []}
    if not root:
        for name, f in feats.items():
            if name.startswith("bpf") or name in ("tracefs", "tracepoints", "uprobe_events"):
                feats[name] = Feature(name, None, "unknown: needs root (cannot read tracefs)")
    F._fill_instead(feats)
    return Features("6.18.44-fc-v657", "x86_64", facts, feats, "boot", False)


def test_text_fits_100_columns_and_says_why():
    text = doctor.render_text(this_machine())
    lines = text.splitlines()
    assert max(len(l) for l in lines) <= 100
    assert lines[0].startswith("kernel") and "6.18.44-fc-v657 (x86_64)" in lines[0]
    assert lines[1].startswith("user") and "root" in lines[1]
    kp = [l for l in lines if l.startswith("ftrace  kprobe ")]
    assert kp and " no " in kp[0] and "no kprobe support" in kp[0]
    fentry = text[text.index("bpf     fentry"):]
    assert "EPERM" in fentry.split("bpf     fexit")[0]
    assert "instead:" in text
    tail = "\n".join(lines[-4:])
    assert "you can use (ftrace):" in text and "tracepoint" in tail
    assert "not on this kernel:" in text
    missing = [l for l in lines if l.startswith("not on this kernel:")][0]
    assert "kprobe" in missing and "fentry" in missing and "tracepoint" not in missing


def test_text_non_root_note_and_unknowns():
    text = doctor.render_text(this_machine(root=False))
    assert "not running as root" in text
    assert "could not check:" in text
    row = [l for l in text.splitlines() if l.startswith("bpf     tracepoint")][0]
    assert row.split()[2] == "?"
    assert max(len(l) for l in text.splitlines()) <= 100


def test_hostile_reason_is_escaped():
    f = this_machine()
    f.features["bpf_ringbuf"] = Feature("bpf_ringbuf", False, "evil \x1b[31mred\x1b[0m text")
    text = doctor.render_text(f)
    assert "\x1b" not in text
    assert "\\x1b" in text


def test_long_words_wrap_within_width():
    f = this_machine()
    f.features["btf"] = Feature("btf", False, "x" * 250)
    assert max(len(l) for l in doctor.render_text(f).splitlines()) <= 100


def test_json_shape():
    d = json.loads(doctor.render_json(this_machine()))
    assert d["kernel"] == "6.18.44-fc-v657" and d["arch"] == "x86_64"
    for name in REQUIRED:
        entry = d["features"][name]
        assert isinstance(entry["available"], bool)
        assert isinstance(entry["reason"], str) and entry["reason"]
    assert d["features"]["kprobe_events"]["available"] is False
    assert "instead" in d["features"]["kprobe_events"]
    assert d["backends"]["bpf"]["available"] is True
    assert d["backends"]["ftrace"]["kinds"]["kprobe"]["available"] is False


def test_json_unknown_is_false_plus_flag():
    d = json.loads(doctor.render_json(this_machine(root=False)))
    assert d["features"]["bpf_ringbuf"]["available"] is False
    assert d["features"]["bpf_ringbuf"]["unknown"] is True


@pytest.mark.parametrize("argv", [["doctor"], ["doctor", "--json"], ["doctor", "--refresh"]])
def test_cli_wiring(monkeypatch, capsys, argv):
    seen = {}

    def fake_detect(kernel, refresh=False):
        seen["refresh"] = refresh
        return this_machine()

    monkeypatch.setattr(doctor, "detect_features", fake_detect)
    assert cli.main(argv) == 0
    out = capsys.readouterr()
    assert seen["refresh"] == ("--refresh" in argv)
    assert "Traceback" not in out.err
    if "--json" in argv:
        assert set(json.loads(out.out)) >= {"kernel", "arch", "features", "backends"}
    else:
        assert "probe kind" in out.out


def test_doctor_on_fixture_roots(monkeypatch, capsys, tmp_path):
    # End to end on a fake /proc + /sys with no tracefs: no crash, reasons shown, exit 0.
    kern = tmp_path / "proc" / "sys" / "kernel"
    kern.mkdir(parents=True)
    (kern / "osrelease").write_text("6.18.44-test\n")
    (tmp_path / "sys").mkdir()
    monkeypatch.setenv("UNDERTOW_PROC", str(tmp_path / "proc"))
    monkeypatch.setenv("UNDERTOW_SYS", str(tmp_path / "sys"))
    monkeypatch.setenv("UNDERTOW_TRACEFS", str(tmp_path / "no-tracefs"))
    monkeypatch.setenv("UNDERTOW_CACHE_DIR", "")
    assert cli.main(["doctor", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kernel"] == "6.18.44-test"
    assert d["features"]["tracefs"]["available"] is False
    assert d["features"]["bpf"].get("unknown") is True
    assert d["features"]["btf"]["available"] is False


def test_ptrace_section_says_what_a_user_can_do():
    p = {"available": True, "reason": "PTRACE_SEIZE of your own child works", "syscall_info": True,
         "seccomp": True, "yama_scope": "1", "attach": "only your own descendants (Yama scope 1: ...)"}
    text = doctor.render_text(this_machine(root=False), ptrace=p)
    assert "ptrace (syscall lines for one process" in text
    assert "only your own descendants" in text and "other users' processes" in text
    assert "you can use (ptrace):    syscall tracepoints of your own processes" in text
    assert max(len(l) for l in text.splitlines()) <= 100
    d = json.loads(doctor.render_json(this_machine(root=False), p))
    assert d["ptrace"]["yama_scope"] == "1" and d["ptrace"]["available"] is True
    no = dict(p, available=False, reason="PTRACE_SEIZE of your own child failed: EPERM")
    assert "not usable: PTRACE_SEIZE of your own child failed: EPERM" in doctor.render_text(this_machine(), ptrace=no)
