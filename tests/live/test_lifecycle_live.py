"""Own the lifecycle (DESIGN.md), on this kernel: a stop signal at any moment of set-up leaves
nothing behind and prints no traceback; a SIGKILLed session's leftovers are removed by the
next one, which says so; a tracer in another pid namespace is judged alive or dead from the
host by its name (undertow_<pid>_<start>_<pidns>_<n>), and never removed while it runs."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from undertow.backends.leftovers import owner_of
from undertow.kernel import Kernel

HERE = os.path.dirname(os.path.abspath(__file__))
CLI_PY = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src", "undertow", "cli.py")


@pytest.fixture(scope="module")
def tfs():
    try:
        return Kernel().tracefs()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"tracefs unusable: {e}")


def libc_path() -> str:
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if re.search(r"/libc[.-][^/]*so", path):
                return path
    pytest.skip("no libc mapped in this process")


def stop_wired() -> bool:
    """Whether cli.main runs commands inside undertow.stop.handling() (the lead's wiring):
    until then SIGINT raises KeyboardInterrupt wherever it lands (a traceback while Python
    imports undertow) and an ignored SIGINT stays ignored."""
    try:
        with open(CLI_PY) as f:
            src = f.read()
    except OSError:
        return False
    return bool(re.search(r"\bstop\.handling\(\)|\bhandling\(\)", src))


# -- what a child left ------------------------------------------------------------------

def state_of(tfs, prefix: str):
    """Instances and dynamic-event lines whose names start with ``prefix``."""
    inst = [f"instances/{i}" for i in tfs.instances() if i.startswith(prefix)]
    dyn = []
    for f in ("uprobe_events", "kprobe_events", "dynamic_events"):
        if tfs.has(f):
            dyn += [f"{f}: {line}" for line in tfs.read(f).splitlines() if f":{prefix}" in line]
    return inst + dyn


def purge(tfs, prefix: str) -> None:
    """Remove what a test's child left (its own names only)."""
    for i in tfs.instances():
        if i.startswith(prefix):
            try:
                tfs.remove_instance(i, timeout=2.0)
            except Exception:  # noqa: BLE001
                pass
    for f in ("uprobe_events", "kprobe_events"):
        if not tfs.has(f):
            continue
        for line in tfs.read(f).splitlines():
            ev = line.split(" ", 1)[0].partition(":")[2]
            if ev.startswith(prefix):
                try:
                    tfs.write(f, f"-:{ev}")
                except Exception:  # noqa: BLE001
                    pass


def prefix_of(pid: int) -> str:
    return f"undertow_{pid}_"


def ready(tfs, prefix: str, event: str) -> bool:
    """The instance named ``prefix...`` has ``event`` enabled and tracing on."""
    for i in tfs.instances():
        if i.startswith(prefix):
            try:
                ev = event.format(inst=i)
                return (tfs.read(f"instances/{i}/events/{ev}/enable").strip() == "1"
                        and tfs.read(f"instances/{i}/tracing_on").strip() == "1")
            except Exception:  # noqa: BLE001 - racing with creation
                return False
    return False


def wait_for(pred, timeout=60.0, every=0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(every)
    return False


def spawn(argv, **kw):
    return subprocess.Popen([sys.executable, "-m", "undertow", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def finish(proc, timeout=30.0):
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


# -- a stop signal at any moment of set-up --------------------------------------------

TARGETS = {
    # name: (argv, event enabled when ready (None: no instance), trigger points)
    "trace-tracepoint": (["trace", "e syscalls/sys_enter_getppid"], "syscalls/sys_enter_getppid"),
    "trace-uprobe": (["trace", "P {libc}:getppid", "e syscalls/sys_enter_getppid"], "syscalls/sys_enter_getppid"),
    "run": (["run", "-e", "tracepoint:syscalls:sys_enter_getppid { @n = count(); }"], None),
    # exec runs a BPF program (issue 18; ftrace only without BPF): no instance, ready once its
    # header is printed (after the attach), as `run` once it printed "Attaching"
    "tool-exec": (["exec"], None),
}
# When the signal is sent: ("spawn", ms) after the start, ("instance", ms) after its instance
# directory appeared (the set-up takes ~50-70 ms from there to tracing_on=1 here), ("ready",
# 0) once tracing. `run` makes no instance: its points are all after the start.
POINTS_INSTANCE = [("spawn", 0), ("spawn", 40), ("instance", 0), ("instance", 1), ("instance", 3),
                   ("instance", 6), ("instance", 10), ("instance", 16), ("instance", 25),
                   ("instance", 40), ("ready", 0)]
POINTS_RUN = [("spawn", ms) for ms in (0, 30, 60, 100, 140, 180, 220, 270, 330, 400)] + [("ready", 0)]
if os.environ.get("UNDERTOW_LAB") == "1":
    # Under the lab's emulation (~15x slower user space) the millisecond points do not land in
    # the phases they aim at on the host, and the full sweep took 12 of the 6.12 tier's ~20
    # minutes (--durations, 2026-12-07). The sweep is the host's; in the guests one point per
    # phase: at the start, as the instance appears, within its set-up, and once tracing.
    POINTS_INSTANCE = [("spawn", 0), ("instance", 0), ("instance", 10), ("ready", 0)]
    POINTS_RUN = [("spawn", 0), ("spawn", 270), ("ready", 0)]


def _trigger(tfs, proc, prefix, event, point, deadline):
    """Wait for ``point``; return False when the child ended before it."""
    kind, ms = point
    if kind == "spawn":
        time.sleep(ms / 1000)
        return True
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if kind == "instance":
            if any(i.startswith(prefix) for i in os.listdir(os.path.join(tfs.path, "instances"))):
                time.sleep(ms / 1000)
                return True
            time.sleep(0.0002)
        elif event is None:  # BPF: ready at its first line ("Attaching" of `run`, a tool's header)
            return bool(proc.stdout.readline())
        elif ready(tfs, prefix, event):
            return True
        else:
            time.sleep(0.002)
    return False


def interpreter_startup(err: str) -> bool:
    """A KeyboardInterrupt raised by Python's own start-up before the interpreter runs any of
    undertow (no undertow file in the traceback): in ``site`` and the ``.pth`` files it runs
    (they import tempfile, zipfile...: exit status 1), or in runpy while it looks for the
    package (``_get_module_details`` -> importlib's ``find_spec``: killed by the signal; seen
    at 30 ms on a loaded host). Not undertow's to prevent: once undertow/__init__ runs, a frame
    of it is in the traceback."""
    return os.sep + "undertow" + os.sep not in err


def lost_at_startup(err: str) -> bool:
    """Python's start-up swallowed the SIGINT: its KeyboardInterrupt was raised inside a
    callback (the import system's module-lock weakref callback), which Python reports as
    "Exception ignored" and goes on, so the program never learns of the signal. Between
    ``site`` and undertow's first statement only runpy runs (undertow/__init__ imports
    nothing before it gives SIGINT its default action), so with no undertow frame this is
    the interpreter's, not undertow's; a user's second Ctrl-C must then stop the program."""
    return ("Exception ignored" in err and "KeyboardInterrupt" in err
            and interpreter_startup(err))


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["TERM", "HUP", "INT"])
def test_stop_signal_at_any_moment_of_setup(tfs, target, sig):
    argv, event = TARGETS[target]
    if "{libc}" in " ".join(argv):
        if not tfs.has("uprobe_events"):
            pytest.skip("no uprobe_events in this kernel")
        argv = [a.replace("{libc}", libc_path()) for a in argv]
    wired = stop_wired()
    points = POINTS_RUN if event is None else POINTS_INSTANCE
    problems = []
    for point in points:
        proc = spawn(argv)
        prefix = prefix_of(proc.pid)
        try:
            sent = _trigger(tfs, proc, prefix, event, point, time.monotonic() + 60)
            resent = False
            if sent:
                proc.send_signal(sig)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:  # ignored? a user would press Ctrl-C again
                    proc.send_signal(sig)
                    resent = True
            out, err = finish(proc)
            left = state_of(tfs, prefix)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            purge(tfs, prefix)
        code = proc.returncode
        tb = "Traceback" in err
        allowed = (0, 128 + sig, -sig)
        if resent and sig == signal.SIGINT and lost_at_startup(err):
            tb, resent = False, False
        if tb and sig == signal.SIGINT and err.rstrip().rstrip(":").endswith("KeyboardInterrupt"):
            if interpreter_startup(err):
                tb, allowed = False, allowed + (1,)
            elif not wired:
                # before the wiring, SIGINT is KeyboardInterrupt: a traceback while Python
                # imports undertow, before cli.main's handler, is known (not a leftover)
                tb = False
        if left or tb or code not in allowed or not sent or resent:
            problems.append((point, sent, resent, code, left, err[-600:]))
    assert problems == [], f"{len(problems)} of {len(points)} trials went wrong: {problems}"


# -- SIGINT with SIGINT ignored (a script's `cmd &`) ------------------------------------

def test_sigint_stops_a_tracer_started_with_sigint_ignored(tfs):
    if not stop_wired():
        pytest.skip("needs stop.handling wiring in cli.main (lead): until then an ignored SIGINT stays ignored")
    proc = spawn(["trace", "e syscalls/sys_enter_getppid"],
                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    prefix = prefix_of(proc.pid)
    try:
        assert wait_for(lambda: ready(tfs, prefix, "syscalls/sys_enter_getppid")), finish(proc)[1]
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        left = state_of(tfs, prefix)
        purge(tfs, prefix)
    assert took < 1.0 and "Traceback" not in err
    assert proc.returncode in (0, 130) and left == []


# -- SIGKILL: the next session removes the leftovers and says so ------------------------

def test_next_session_removes_a_killed_ones_leftovers_and_says_so(tfs):
    if not tfs.has("uprobe_events"):
        pytest.skip("no uprobe_events in this kernel")
    line = f"P {libc_path()}:getppid"
    for _attempt in range(3):  # another session starting meanwhile may remove them first
        a = spawn(["trace", line, "e syscalls/sys_enter_getppid"])
        pa = prefix_of(a.pid)
        b = None
        try:
            assert wait_for(lambda: ready(tfs, pa, "syscalls/sys_enter_getppid")), finish(a)[1]
            a.kill()
            a.wait()
            assert state_of(tfs, pa) != []  # SIGKILL leaves the instance and the uprobe
            b = subprocess.run([sys.executable, "-m", "undertow", "trace", "--duration", "0.2",
                                "e syscalls/sys_enter_getppid"], capture_output=True, text=True, timeout=120)
            left = state_of(tfs, pa)
        finally:
            if a.poll() is None:
                a.kill()
                a.wait()
            purge(tfs, pa)
        assert b.returncode == 0 and left == [], b.stderr
        said = [x for x in b.stderr.splitlines() if x.startswith("undertow: removed leftovers of a killed session:")]
        if said:
            assert len(said) == 1
            assert f"instances/{pa}" in said[0] and f"uprobe_events {pa}" in said[0], said
            return
    pytest.fail("three times another session removed the leftovers first")


# -- pid namespaces ----------------------------------------------------------------------

def unshare_args(boottime=None):
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    args = ["unshare", "--pid", "--fork", "--mount-proc"]
    if boottime is not None:
        help_text = subprocess.run(["unshare", "--help"], capture_output=True, text=True).stdout
        if "--boottime" not in help_text or not os.path.exists("/proc/self/ns/time"):
            pytest.skip("no time namespaces (unshare --time --boottime, CONFIG_TIME_NS)")
        args += ["--time", "--boottime", str(boottime)]
    probe = subprocess.run(args + ["true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a pid namespace here: {probe.stderr.strip()}")
    return args


def child_of(pid: int):
    """The pid of ``pid``'s only child (unshare --fork's), once it exists."""
    found = []

    def look():
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = f.read().split()
        except OSError:
            return False
        found[:] = [int(k) for k in kids]
        return bool(found)
    assert wait_for(look, 30), "unshare did not fork"
    return found[0]


def ns_instance(tfs, pidns: int):
    for i in tfs.instances():
        o = owner_of(i)
        if o is not None and o.ident is not None and o.ident.pidns == pidns:
            return i
    return None


def cleanup_cli(*args, prefix=()):
    return subprocess.run([*prefix, sys.executable, "-m", "undertow", "cleanup", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("boottime", [None, 86400], ids=["pidns", "pidns+timens"])
def test_tracer_in_a_pid_namespace_is_kept_while_alive(tfs, boottime):
    args = unshare_args(boottime)
    outer = subprocess.Popen(args + [sys.executable, "-m", "undertow", "trace", "e syscalls/sys_enter_getppid"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    name = None
    try:
        inner = child_of(outer.pid)
        pidns = int(os.readlink(f"/proc/{inner}/ns/pid")[5:-1])
        assert wait_for(lambda: ns_instance(tfs, pidns) is not None, 60), finish(outer)[1]
        name = ns_instance(tfs, pidns)
        assert name.startswith("undertow_1_")  # pid 1 of its namespace
        assert wait_for(lambda: ready(tfs, name, "syscalls/sys_enter_getppid"), 60)
        dry = cleanup_cli("-n")
        assert f"kept instances/{name} (pid 1 in pid namespace {pidns} is running, pid {inner} here)" \
            in dry.stdout, dry.stdout + dry.stderr
        real = cleanup_cli()
        assert name in tfs.instances() and f"removed instances/{name}" not in real.stdout
        os.kill(inner, signal.SIGKILL)  # pid 1 of the namespace: the whole namespace ends
        outer.wait(timeout=30)
        assert name in tfs.instances()  # SIGKILL leaves it behind...
        gone = cleanup_cli()
        assert f"removed instances/{name} (pid 1 in pid namespace {pidns} has exited)" in gone.stdout, \
            gone.stdout + gone.stderr
        assert name not in tfs.instances()  # ...and the host's cleanup removes it
    finally:
        if outer.poll() is None:
            outer.kill()  # unshare; its child is pid 1 of the namespace: kill it too
            try:
                os.kill(child_of(outer.pid), signal.SIGKILL)
            except (OSError, AssertionError):
                pass
            outer.wait()
        if name:
            purge(tfs, name)


def test_cleanup_in_a_pid_namespace_leaves_the_hosts_state_alone(tfs):
    args = unshare_args()
    a = spawn(["trace", "e syscalls/sys_enter_getppid"])
    pa = prefix_of(a.pid)
    try:
        assert wait_for(lambda: ready(tfs, pa, "syscalls/sys_enter_getppid")), finish(a)[1]
        a.kill()
        a.wait()
        [name] = [i for i in tfs.instances() if i.startswith(pa)]
        inside = cleanup_cli(prefix=args)  # a real cleanup, from a child pid namespace
        assert name in tfs.instances(), inside.stdout  # the host's: cannot be judged from there
        assert f"kept instances/{name} (pid {a.pid} in pid namespace" in inside.stdout, inside.stdout + inside.stderr
        assert "cannot be seen from this pid namespace" in inside.stdout
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
        purge(tfs, pa)
