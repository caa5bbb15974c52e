"""Session names, owners' liveness across pid namespaces, stale-state removal, and set-up
that leaves nothing behind whatever step an exception lands on (no kernel: fake /proc and
a simulated tracefs)."""

from __future__ import annotations

import errno
import os
import signal

import pytest

from undertow import backends, stop
from undertow.backends import leftovers
from undertow.backends.ftrace.compile import EventSpec
from undertow.backends.ftrace.plan import FtracePlan
from undertow.backends.ftrace.session import FtraceSession
from undertow.errors import TracefsError
from undertow.kernel import owners
from undertow.kernel.owners import INIT_PID_NS, Identity, ProcView
from undertow.kernel.tracefs import Tracefs

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_TRACEFS = os.path.join(os.path.dirname(HERE), "fixtures", "tracefs")
HZ = os.sysconf("SC_CLK_TCK")


# -- a fake /proc -------------------------------------------------------------------------

def add_proc(proc, name, nspids, pidns, start, cmdline=b"python3\0-m\0undertow\0", ns_link=True):
    d = proc / str(name)
    (d / "ns").mkdir(parents=True)
    if ns_link:
        os.symlink(f"pid:[{pidns}]", str(d / "ns" / "pid"))
    fields = ["S"] + ["0"] * 18 + [str(start)] + ["0"] * 30  # field 22 is the 20th after comm
    (d / "stat").write_text(f"{name} (py (x) thon) " + " ".join(fields) + "\n")
    (d / "status").write_text("Name:\tpython3\nNSpid:\t" + "\t".join(map(str, nspids)) + "\n")
    (d / "cmdline").write_bytes(cmdline)


def fake_proc(tmp_path, self_name, self_nspids, self_ns, self_start, boottime=None):
    proc = tmp_path / "proc"
    proc.mkdir()
    add_proc(proc, self_name, self_nspids, self_ns, self_start)
    os.symlink(str(self_name), str(proc / "self"))
    if boottime is not None:
        (proc / str(self_name) / "timens_offsets").write_text(f"monotonic 0 0\nboottime {boottime} 0\n")
    return proc


# -- names --------------------------------------------------------------------------------

def test_name_states_pid_start_and_namespace():
    me = owners.self_identity()
    name = leftovers.next_session_name()
    assert name.startswith(f"undertow_{os.getpid()}_{me.start}_{me.pidns}_")
    o = leftovers.owner_of(name)
    assert o is not None and o.ident == me and not o.legacy
    assert leftovers.next_session_name() != name
    # the longest name there can be still fits a kprobe/uprobe group (63 characters, [A-Za-z0-9_])
    longest = f"undertow_{4194304}_{2 ** 64 - 1}_{2 ** 32 - 1}_{10 ** 10 - 1}"
    assert len(longest) <= 63 and leftovers.owner_of(longest) is not None


@pytest.mark.parametrize("name,pid,legacy", [
    ("undertow_123_4", 123, "old"), ("undertow_123", 123, "old"), ("undertow_sh_77", 77, "script"),
    ("undertow_5_600_4026531836_0", 5, ""),
])
def test_owner_of_each_form(name, pid, legacy):
    o = leftovers.owner_of(name)
    assert o is not None and (o.pid, o.legacy) == (pid, legacy)


@pytest.mark.parametrize("name", ["undertowx_1_2", "undertow_", "undertow_a_1", "undertow_1_2_3",
                                  "undertow_1_2_3_4_5", "sched", "undertow_sh_x"])
def test_not_an_owner(name):
    assert leftovers.owner_of(name) is None


# -- liveness -----------------------------------------------------------------------------

def test_host_view_judges_its_own_namespace(tmp_path):
    proc = fake_proc(tmp_path, 100, [100], INIT_PID_NS, 5000)
    add_proc(proc, 200, [200], INIT_PID_NS, 7000)
    v = ProcView(str(proc))
    assert v.view_ns == INIT_PID_NS and v.sees_all
    assert v.alive(Identity(INIT_PID_NS, 200, 7000)) is True
    assert v.alive(Identity(INIT_PID_NS, 200, 6000)) is False   # pid reused by another process
    assert v.alive(Identity(INIT_PID_NS, 300, 7000)) is False   # gone
    assert v.alive(Identity(INIT_PID_NS, 200, 7001)) is True    # rounding of a timens offset


def test_host_view_finds_a_tracer_inside_a_container(tmp_path):
    proc = fake_proc(tmp_path, 100, [100], INIT_PID_NS, 5000)
    add_proc(proc, 4321, [4321, 1], 4026532999, 9000)  # pid 1 of a child namespace
    v = ProcView(str(proc))
    assert v.alive(Identity(4026532999, 1, 9000)) is True
    assert v.find(Identity(4026532999, 1, 9000)) == "4321"
    assert v.alive(Identity(4026532999, 1, 8000)) is False      # that namespace's pid 1 is another now
    assert v.alive(Identity(4026532888, 1, 9000)) is False      # a namespace with no process left
    assert v.alive(Identity(4026532999, 7, 9000)) is False


def test_unreadable_namespace_link_is_never_taken_for_dead(tmp_path):
    proc = fake_proc(tmp_path, 100, [100], INIT_PID_NS, 5000)
    add_proc(proc, 4321, [4321, 1], 4026532999, 9000, ns_link=False)  # EACCES on ns/pid
    v = ProcView(str(proc))
    assert v.alive(Identity(4026532999, 1, 9000)) is None
    assert v.alive(Identity(4026532999, 1, 8000)) is False  # not even the start time matches


def test_container_view_leaves_the_host_alone(tmp_path):
    ns = 4026532777
    proc = fake_proc(tmp_path, 1, [1], ns, 5000)
    add_proc(proc, 2, [2], ns, 6000)
    add_proc(proc, 3, [3, 1], 4026532555, 6500)  # a nested namespace's init
    v = ProcView(str(proc))
    assert v.view_ns == ns and not v.sees_all
    assert v.alive(Identity(INIT_PID_NS, 4242, 100)) is None    # the host's: cannot be seen
    assert v.alive(Identity(4026532666, 1, 100)) is None        # a sibling's: cannot be seen
    assert v.alive(Identity(ns, 9, 100)) is False                # ours: gone
    assert v.alive(Identity(ns, 2, 6000)) is True
    assert v.alive(Identity(4026532555, 1, 6500)) is True        # a nested one's
    assert v.alive(Identity(4026532555, 2, 6500)) is False       # nested, visible, gone


def test_time_namespace_offset_is_removed(tmp_path):
    # inside a time namespace booted "10 s earlier", /proc shows start times 10*HZ higher
    proc = fake_proc(tmp_path, 100, [100], INIT_PID_NS, 5000 + 10 * HZ, boottime=10)
    add_proc(proc, 200, [200], INIT_PID_NS, 7000 + 10 * HZ)
    v = ProcView(str(proc))
    assert v.alive(Identity(INIT_PID_NS, 200, 7000)) is True
    owners._self.clear()
    try:
        assert owners.self_identity(str(proc)).start == 5000
    finally:
        owners._self.clear()


# -- survey and removal on a tracefs tree -----------------------------------------------

@pytest.fixture
def tree(tmp_path):
    import shutil

    dst = tmp_path / "tracing"
    shutil.copytree(FAKE_TRACEFS, str(dst))
    return dst


def test_survey_removes_the_dead_and_keeps_the_rest(tmp_path, tree):
    proc = fake_proc(tmp_path, 100, [100], INIT_PID_NS, 5000)
    add_proc(proc, 200, [200], INIT_PID_NS, 7000)
    add_proc(proc, 4321, [4321, 1], 4026532999, 9000)
    live = "undertow_200_7000_%d_0" % INIT_PID_NS
    dead = "undertow_300_7000_%d_1" % INIT_PID_NS
    reused = "undertow_200_6000_%d_0" % INIT_PID_NS
    boxed = "undertow_1_9000_4026532999_0"
    old_dead = "undertow_999999_3"
    for n in (live, dead, reused, boxed, old_dead, "someone_else"):
        (tree / "instances" / n).mkdir()
    (tree / "uprobe_events").write_text(f"p:{dead}/e0 /bin/true:0x0000000000001000\n"
                                        f"p:{boxed}/e0 /bin/true:0x0000000000001000\n")
    tfs = Tracefs(str(tree))
    got = {str(i): i for i in leftovers.survey(tfs, str(proc))}
    assert set(got) == {f"instances/{n}" for n in (live, dead, reused, boxed, old_dead)} | \
        {f"uprobe_events {dead}/e0", f"uprobe_events {boxed}/e0"}
    assert got[f"instances/{live}"].alive is True
    assert got[f"instances/{boxed}"].alive is True
    assert "pid 1 in pid namespace 4026532999 is running, pid 4321 here" == got[f"instances/{boxed}"].why
    assert got[f"instances/{dead}"].alive is False and got[f"instances/{reused}"].alive is False
    assert got[f"instances/{old_dead}"].alive is False
    removed = leftovers.remove_stale(tfs, proc=str(proc))
    assert sorted(removed) == sorted([f"instances/{dead}", f"instances/{reused}", f"instances/{old_dead}",
                                      f"uprobe_events {dead}/e0"])
    assert sorted(os.listdir(tree / "instances")) == sorted([".keep", live, boxed, "someone_else"])
    assert (tree / "uprobe_events").read_text().endswith(f"-:{dead}/e0")  # a file here: appended


def test_old_names_are_judged_only_from_the_initial_namespace(tmp_path, tree):
    proc = fake_proc(tmp_path, 1, [1], 4026532777, 5000)
    (tree / "instances" / "undertow_999999_3").mkdir()
    tfs = Tracefs(str(tree))
    [item] = leftovers.survey(tfs, str(proc))
    assert item.alive is None and "initial pid namespace" in item.why
    assert leftovers.remove_stale(tfs, proc=str(proc)) == []


# -- set-up interrupted at every step -----------------------------------------------------

class SimInstance:
    def __init__(self, tfs, name):
        self.tfs, self.name = tfs, name
        self.path = os.path.join(tfs.root, "instances", name)

    def has(self, rel):
        return rel in ("buffer_percent", "set_event_notrace_pid", "options/event-fork")

    def write(self, rel, text, append=True):
        self.tfs.op(("write", self.name, rel), lambda: self.tfs.need(self.name))

    def read(self, rel):
        return ""


class SimTracefs:
    """A tracefs that keeps only what exists (instances, probe definitions) and raises
    KeyboardInterrupt before or after its ``fail_at``-th operation took effect."""

    def __init__(self, root, fail_at=-1, after=True):
        self.root = root
        self.real = Tracefs(FAKE_TRACEFS)
        self.instances_made, self.defined = set(), set()
        self.n, self.fail_at, self.after = 0, fail_at, after

    def op(self, what, effect):
        n, self.n = self.n, self.n + 1  # one exception only: close() after it runs whole
        if n == self.fail_at and not self.after:
            raise KeyboardInterrupt(what)
        effect()
        if n == self.fail_at:
            raise KeyboardInterrupt(what)

    def need(self, name):
        if name not in self.instances_made:
            raise TracefsError(f"no instance {name}")

    # what survey() reads
    def instances(self):
        return sorted(self.instances_made)

    def has(self, rel):
        return False

    def instance(self, name):
        return SimInstance(self, name)

    def create_instance(self, name, exist_ok=False):
        os.makedirs(os.path.join(self.root, "instances", name, "per_cpu", "cpu0"), exist_ok=True)
        open(os.path.join(self.root, "instances", name, "per_cpu", "cpu0", "trace_pipe_raw"), "w").close()
        self.op(("mkdir", name), lambda: self.instances_made.add(name))
        return SimInstance(self, name)

    def remove_instance(self, name, missing_ok=True, timeout=1.0):
        self.instances_made.discard(name)

    def write(self, rel, text, append=True):
        if text.startswith("-:"):
            ev = text[2:]
            if ev not in self.defined:
                e = TracefsError(f"no {ev}")
                e.errno = errno.ENOENT
                raise e
            self.defined.discard(ev)
            return
        self.op(("define", text), lambda: self.defined.add(text.split(" ")[0].split(":", 1)[1]))

    def header_page(self):
        return self.real.header_page()

    def event_format(self, group, event):
        return self.real.event_format("sched", "sched_process_exec")


class SimKernel:
    def __init__(self, tfs):
        self.tfs = tfs

    def tracefs(self):
        return self.tfs


def plan_with_probes():
    g = leftovers.next_session_name()
    specs = [EventSpec(g, "e0", "uprobe", "p0", f"p:{g}/e0 /bin/true:0x1000", "uprobe_events"),
             EventSpec(g, "e1", "uretprobe", "p1", f"r:{g}/e1 /bin/true:0x1000", "uprobe_events",
                       filter="common_pid != 0"),
             EventSpec("sched", "sched_process_exec", "tracepoint", "sched:sched_process_exec")]
    return FtracePlan(specs=specs, instance=g, self_pid=os.getpid())


def test_a_full_setup_has_this_many_steps(tmp_path):
    sim = SimTracefs(str(tmp_path))
    s = FtraceSession.start(plan_with_probes(), SimKernel(sim))
    assert sim.instances_made and len(sim.defined) == 2
    steps = sim.n
    s.close()
    assert not sim.instances_made and not sim.defined
    assert steps > 10


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
def test_an_exception_at_any_step_leaves_nothing(tmp_path, after):
    full = SimTracefs(str(tmp_path / "full"))
    s = FtraceSession.start(plan_with_probes(), SimKernel(full))
    steps = full.n
    s.close()
    for k in range(steps):
        sim = SimTracefs(str(tmp_path / str(k)), fail_at=k, after=after)
        with pytest.raises(KeyboardInterrupt):
            FtraceSession.start(plan_with_probes(), SimKernel(sim))
        assert (k, sim.instances_made, sim.defined) == (k, set(), set())


def test_a_stop_request_ends_setup_between_steps(tmp_path):
    sim = SimTracefs(str(tmp_path))
    stop.request(signal.SIGTERM)
    try:
        with pytest.raises(stop.Interrupted):
            FtraceSession.start(plan_with_probes(), SimKernel(sim))
    finally:
        stop.reset()
    assert sim.n == 0 and not sim.instances_made


def test_close_interrupted_runs_whole_again(tmp_path):
    sim = SimTracefs(str(tmp_path))
    s = FtraceSession.start(plan_with_probes(), SimKernel(sim))
    real = sim.remove_instance

    def interrupted(name, missing_ok=True, timeout=1.0):
        raise KeyboardInterrupt

    sim.remove_instance = interrupted
    with pytest.raises(KeyboardInterrupt):
        s.close()
    assert sim.instances_made  # ...left for the next call (or the atexit one)
    sim.remove_instance = real
    s.close()
    assert not sim.instances_made and not sim.defined


def test_leftovers_removed_at_start_are_reported(tmp_path, monkeypatch):
    told = []
    monkeypatch.setattr(backends, "leftovers_reporter", told.append)
    monkeypatch.setattr("undertow.backends.ftrace.session.remove_stale",
                        lambda tfs, **kw: ["instances/undertow_1_2_3_0"])
    sim = SimTracefs(str(tmp_path))
    s = FtraceSession.start(plan_with_probes(), SimKernel(sim))
    s.close()
    assert told == [["instances/undertow_1_2_3_0"]] and s.removed_stale == ["instances/undertow_1_2_3_0"]
    told.clear()
    monkeypatch.setattr("undertow.backends.ftrace.session.remove_stale", lambda tfs, **kw: [])
    FtraceSession.start(plan_with_probes(), SimKernel(SimTracefs(str(tmp_path / "b")))).close()
    assert told == []


# -- the command -------------------------------------------------------------------------

def test_cleanup_command_lists_what_it_removes_and_keeps(tmp_path, tree, monkeypatch, capsys):
    from undertow.cli import main

    proc = fake_proc(tmp_path, 100, [100], INIT_PID_NS, 5000)
    add_proc(proc, 4321, [4321, 1], 4026532999, 9000)
    dead, boxed = "undertow_300_7000_%d_1" % INIT_PID_NS, "undertow_1_9000_4026532999_0"
    for n in (dead, boxed):
        (tree / "instances" / n).mkdir()
    monkeypatch.setenv("UNDERTOW_TRACEFS", str(tree))
    monkeypatch.setenv("UNDERTOW_PROC", str(proc))
    assert main(["cleanup", "-n"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sorted(out) == sorted([f"would remove instances/{dead} (pid 300 has exited)",
                                  f"kept instances/{boxed} (pid 1 in pid namespace 4026532999 is running, "
                                  "pid 4321 here)"])
    assert sorted(os.listdir(tree / "instances")) == sorted([".keep", dead, boxed])
    assert main(["cleanup"]) == 0
    assert f"removed instances/{dead} (pid 300 has exited)" in capsys.readouterr().out
    assert sorted(os.listdir(tree / "instances")) == sorted([".keep", boxed])
