"""tracefs discovery, event listing, writes and instances on a fake tracefs tree."""

from __future__ import annotations

import errno
import os
import shutil

import pytest

from undertow.errors import TracefsError, TracefsPermissionError, UnknownEventError
from undertow.kernel import tracefs as tracefs_mod
from undertow.kernel.roots import Roots
from undertow.kernel.tracefs import Tracefs, find_tracefs, open_tracefs

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(os.path.dirname(HERE), "fixtures", "tracefs")


@pytest.fixture
def fake(tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A writable copy of the fake tracefs tree."""
    dst = str(tmp_path / "tracing")
    shutil.copytree(FAKE, dst)
    return dst


def test_explicit_root_is_used() -> None:
    t = open_tracefs(Roots(tracefs=FAKE, live=False))
    assert isinstance(t, Tracefs) and t.path == FAKE


def test_explicit_root_missing_is_an_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TracefsError) as ei:
        open_tracefs(Roots(tracefs=str(tmp_path / "nope"), live=False))
    assert ei.value.hints


def test_discovery_under_sys_then_debugfs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sysd = tmp_path / "sys"
    (sysd / "kernel" / "tracing").mkdir(parents=True)  # exists but not mounted (empty)
    shutil.copytree(FAKE, str(sysd / "kernel" / "debug" / "tracing"))
    roots = Roots(proc=str(tmp_path / "proc"), sys=str(sysd), live=False)
    assert find_tracefs(roots) == str(sysd / "kernel" / "debug" / "tracing")
    shutil.copytree(FAKE, str(sysd / "kernel" / "tracing"), dirs_exist_ok=True)
    assert find_tracefs(roots) == str(sysd / "kernel" / "tracing")


def test_discovery_through_proc_mounts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    elsewhere = tmp_path / "my tracing"
    shutil.copytree(FAKE, str(elsewhere))
    proc = tmp_path / "proc"
    proc.mkdir()
    mnt = str(elsewhere).replace(" ", "\\040")
    (proc / "mounts").write_text(
        "proc /proc proc rw 0 0\n"
        f"nodev {mnt} tracefs rw,nosuid,nodev,noexec,relatime 0 0\n"
    )
    roots = Roots(proc=str(proc), sys=str(tmp_path / "sys"), live=False)
    assert find_tracefs(roots) == str(elsewhere)
    assert open_tracefs(roots).path == str(elsewhere)


def test_not_found_and_not_live_gives_hints(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "sys" / "kernel" / "tracing").mkdir(parents=True)
    roots = Roots(proc=str(tmp_path / "proc"), sys=str(tmp_path / "sys"), live=False)
    with pytest.raises(TracefsError) as ei:
        open_tracefs(roots)
    assert "not mounted" in ei.value.message
    assert any("mount -t tracefs nodev /sys/kernel/tracing" in h for h in ei.value.hints)
    assert any("CONFIG_FTRACE" in h for h in ei.value.hints)


def test_not_root_on_live_kernel_says_run_as_root(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "sys" / "kernel" / "tracing").mkdir(parents=True)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    roots = Roots(proc=str(tmp_path / "proc"), sys=str(tmp_path / "sys"), live=True)
    with pytest.raises(TracefsPermissionError) as ei:
        open_tracefs(roots)
    assert isinstance(ei.value, PermissionError) and isinstance(ei.value, TracefsError)
    assert any("root" in h for h in ei.value.hints)


def test_not_root_and_not_mounted_says_not_mounted(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "sys" / "kernel" / "tracing").mkdir(parents=True)
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "mounts").write_text("proc /proc proc rw 0 0\n")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    roots = Roots(proc=str(tmp_path / "proc"), sys=str(tmp_path / "sys"), live=True)
    with pytest.raises(TracefsPermissionError, match="tracefs is not mounted, and only root can mount it"):
        open_tracefs(roots)


def test_mounted_but_unreadable_says_permission_denied(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """tracefs is mode 0700 root's: a user cannot even see its files, but /proc/mounts
    (readable by all) says it is there: permission denied, not "not mounted"."""
    target = tmp_path / "sys" / "kernel" / "tracing"
    shutil.copytree(FAKE, str(target))
    os.chmod(target, 0o700)
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "mounts").write_text(f"nodev {target} tracefs rw,relatime 0 0\n")
    real_access, real_exists = os.access, os.path.exists
    hidden = str(target)
    # as uid 1000 would see it (tests may run as root, who can enter anything)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == hidden else real_access(p, m))
    monkeypatch.setattr(os.path, "exists", lambda p: False if str(p).startswith(hidden + "/") else real_exists(p))
    for live in (True, False):
        roots = Roots(proc=str(tmp_path / "proc"), sys=str(tmp_path / "sys"), live=live)
        with pytest.raises(TracefsPermissionError) as ei:
            open_tracefs(roots)
        msg = ei.value.message
        assert msg.startswith(f"permission denied: tracefs is mounted at {hidden} but this user (uid 1000)")
        assert "mode 0700" in msg and "not mounted" not in msg
        assert ei.value.errno == errno.EACCES
        assert any("run as root" in h for h in ei.value.hints)
        assert not any("mount -t tracefs" in h for h in ei.value.hints)


def test_mount_is_attempted_only_when_live_and_root(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "sys" / "kernel" / "tracing"
    target.mkdir(parents=True)
    calls = []

    def fake_mount(path: str) -> None:
        calls.append(path)
        shutil.copytree(FAKE, path, dirs_exist_ok=True)

    monkeypatch.setattr(tracefs_mod, "mount_tracefs", fake_mount)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    roots = Roots(proc=str(tmp_path / "proc"), sys=str(tmp_path / "sys"), live=True)
    with pytest.raises(TracefsError):
        open_tracefs(roots, mount=False)
    assert calls == []
    t = open_tracefs(roots)
    assert calls == [str(target)] and t.path == str(target)


def test_events_wildcards() -> None:
    t = Tracefs(FAKE)
    assert t.events("syscalls:sys_enter_open*") == [("syscalls", "sys_enter_open"), ("syscalls", "sys_enter_openat")]
    assert t.events("syscalls/sys_enter_open*") == t.events("syscalls:sys_enter_open*")
    assert t.events("sys_enter_open?t") == [("syscalls", "sys_enter_openat")]
    assert t.events("sched:*") == sorted(t.events("sched:*"))
    assert len(t.events("sched:*")) == 3
    assert t.events("*") == t.all_events() and len(t.all_events()) == 10
    assert t.events("s[ck]*:*")[0][0] in ("sched", "skb", "sock")
    assert t.events("nothing:here") == []


def test_events_fall_back_to_walking_events_dir(fake: str) -> None:
    os.unlink(os.path.join(fake, "available_events"))
    t = Tracefs(fake)
    assert t.events("syscalls:sys_enter_open*") == [("syscalls", "sys_enter_open"), ("syscalls", "sys_enter_openat")]
    assert ("sched", "sched_switch") in t.all_events()
    assert not any(g.startswith("header") for g, _ in t.all_events())


def test_event_format_and_did_you_mean() -> None:
    t = Tracefs(FAKE)
    fmt = t.event_format("sched", "sched_switch")
    assert fmt.group == "sched" and fmt.name == "sched_switch"
    assert fmt.id == int(open(os.path.join(FAKE, "events/sched/sched_switch/id")).read())
    assert fmt.field("next_pid").offset == 56
    assert t.event_format("sched", "sched_switch") is fmt  # cached
    with pytest.raises(UnknownEventError) as ei:
        t.event_format("sched", "sched_swich")
    assert isinstance(ei.value, LookupError)
    assert "did you mean sched:sched_switch?" in ei.value.hints
    with pytest.raises(UnknownEventError) as ei2:
        t.event_format("syscall", "sys_enter_openat")
    assert any("syscalls:sys_enter_openat" in h for h in ei2.value.hints)
    with pytest.raises(UnknownEventError):
        t.event_format("..", "..")


def test_event_id_from_the_id_file_or_the_parsed_format(fake: str) -> None:
    t = Tracefs(fake)
    want = int(open(os.path.join(fake, "events/raw_syscalls/sys_enter/id")).read())
    assert t.event_id("raw_syscalls", "sys_enter") == want  # the id file: no format parsed
    assert ("raw_syscalls", "sys_enter") not in t._formats
    fmt = t.event_format("sched", "sched_switch")
    os.unlink(os.path.join(fake, "events/sched/sched_switch/id"))
    assert t.event_id("sched", "sched_switch") == fmt.id  # the parsed format's
    with pytest.raises(TracefsError):
        t.event_id("raw_syscalls", "sys_exit_nope")
    with pytest.raises(UnknownEventError):
        t.event_id("..", "x")


def test_header_page_and_event_from_tree() -> None:
    t = Tracefs(FAKE)
    assert t.header_page().data_offset == 16
    assert t.header_event().time_stamp == 31


def test_has_readable_read() -> None:
    t = Tracefs(FAKE)
    for f in ("kprobe_events", "uprobe_events", "dynamic_events", "error_log", "events/sched/sched_switch/filter"):
        assert t.has(f), f
    assert not t.has("available_filter_functions")
    assert t.readable("available_events") and not t.readable("nope")
    assert t.read("events/sched/sched_switch/filter").strip() == "none"
    with pytest.raises(TracefsError) as ei:
        t.read("missing_file")
    assert ei.value.errno == errno.ENOENT and ei.value.hints
    with pytest.raises(TracefsError):
        t.read("../etc/passwd")
    assert not t.has("../../etc")


def test_write_appends_and_truncates(fake: str) -> None:
    t = Tracefs(fake)
    t.write("kprobe_events", "p:a do_sys_open\n")
    t.write("kprobe_events", "p:b do_sys_open\n")
    assert t.read("kprobe_events") == "p:a do_sys_open\np:b do_sys_open\n"
    t.write("kprobe_events", "p:c vfs_read\n", append=False)
    assert t.read("kprobe_events") == "p:c vfs_read\n"


def test_write_failure_surfaces_new_error_log_lines(fake: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    t = Tracefs(fake)
    log = os.path.join(fake, "error_log")
    real_write = os.write

    def kernel_refuses(fd: int, data) -> int:  # type: ignore[no-untyped-def]
        with open(log, "a") as f:
            f.write("[  200.000002] trace_kprobe: error: Unknown symbol\n"
                    "  Command: p:x no_such_function\n"
                    "               ^\n")
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))

    monkeypatch.setattr(os, "write", kernel_refuses)
    with pytest.raises(TracefsError) as ei:
        t.write("kprobe_events", "p:x no_such_function")
    monkeypatch.setattr(os, "write", real_write)
    e = ei.value
    assert e.errno == errno.ENOENT and isinstance(e, OSError)
    assert "no_such_function" in e.message and "kprobe_events" in e.message
    assert "Unknown symbol" in e.kernel_log
    assert "100.000001" not in e.kernel_log  # the old entry is not repeated
    assert "kernel said:" in e.render()
    assert any("could not find" in h for h in e.hints)


def test_write_to_missing_file_is_enoent_with_hint(fake: str) -> None:
    t = Tracefs(fake)
    with pytest.raises(TracefsError) as ei:
        t.write("kretprobe_events_typo", "x")
    assert ei.value.errno == errno.ENOENT
    assert any("does not exist" in h for h in ei.value.hints)
    assert ei.value.kernel_log == ""
    assert not os.path.exists(os.path.join(fake, "kretprobe_events_typo"))  # never created


def test_new_log_when_old_entries_rotated_out() -> None:
    new_log = tracefs_mod._new_log
    before = "[1] a\n  Command: x\n[2] b\n  Command: y\n"
    after = "[2] b\n  Command: y\n[3] c\n  Command: z\n"
    assert new_log(before, after) == "[3] c\n  Command: z"
    assert new_log("", "[1] a\n") == "[1] a"
    assert new_log(before, before) == ""


def test_instances_lifecycle(fake: str) -> None:
    t = Tracefs(fake)
    assert t.instances() == []  # .keep is hidden
    inst = t.create_instance("undertow_1_0")
    assert inst.path == os.path.join(fake, "instances", "undertow_1_0") and os.path.isdir(inst.path)
    assert t.instances() == ["undertow_1_0"]
    with pytest.raises(TracefsError):
        t.create_instance("undertow_1_0")
    assert t.create_instance("undertow_1_0", exist_ok=True).name == "undertow_1_0"
    with open(os.path.join(inst.path, "tracing_on"), "w") as f:
        f.write("1\n")
    inst.write("tracing_on", "0", append=False)
    assert inst.read("tracing_on") == "0"
    assert inst.has("tracing_on") and not inst.has("trace")
    os.unlink(os.path.join(inst.path, "tracing_on"))
    t.remove_instance("undertow_1_0")
    assert t.instances() == []
    t.remove_instance("undertow_1_0")  # already gone: fine
    with pytest.raises(TracefsError):
        t.remove_instance("undertow_1_0", missing_ok=False)
    for bad in ("", "a/b", "..", "."):
        with pytest.raises(TracefsError):
            t.create_instance(bad)


def test_remove_instance_retries_on_ebusy(fake: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    t = Tracefs(fake)
    t.create_instance("busy")
    real_rmdir = os.rmdir
    tries = []

    def busy_twice(path: str) -> None:
        tries.append(path)
        if len(tries) < 3:
            raise OSError(errno.EBUSY, "Device or resource busy")
        real_rmdir(path)

    monkeypatch.setattr(os, "rmdir", busy_twice)
    t.remove_instance("busy")
    assert len(tries) == 3 and t.instances() == []

    t.create_instance("stuck")
    monkeypatch.setattr(os, "rmdir", lambda p: (_ for _ in ()).throw(OSError(errno.EBUSY, "busy")))
    with pytest.raises(TracefsError) as ei:
        t.remove_instance("stuck", timeout=0.05)
    assert ei.value.errno == errno.EBUSY
