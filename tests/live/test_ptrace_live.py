"""The ptrace backend on this machine, with strace as the oracle: the same commands under
``strace -f --seccomp-bpf`` and ``undertow trace -c`` show the same syscalls with the same
arguments and results; ``-p`` attaches to a running process (and its threads) and a stop
leaves it running untraced; a user who is not root gets the backend by itself.

Each command's syscalls are compared as (syscall, path or address, flags, result) per
process, in order; processes are matched by the order their first event appears."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
ENV = dict(os.environ, PYTHONPATH=SRC)
PY = os.path.realpath(sys.executable)
LINES = ["e syscalls/sys_enter_openat", "e syscalls/sys_exit_openat",
         "e syscalls/sys_enter_connect", "e syscalls/sys_exit_connect"]
NOBODY = 65534


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connect() is refused
    return port


def undertow_calls(argv, lines=LINES, env=ENV, preexec=None, extra=()):
    """{pid: [(syscall, arg, flags, result)]} from ``undertow trace --json -c``, and stderr."""
    cmd = [PY, "-m", "undertow", "trace", "--json", *extra, "-c", " ".join(argv), *lines]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, preexec_fn=preexec)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    calls, open_ = {}, {}
    for line in res.stdout.splitlines():
        if not line.startswith('{"ts"'):
            continue  # the command's own output
        ev = json.loads(line)
        f = ev["fields"]
        name = ev["probe"].split("_", 2)[2]
        if ev["probe"].startswith("syscalls:sys_enter_"):
            if name == "openat":
                arg, flags = f["filename"], f["flags_names"]
            else:
                arg, flags = f.get("uservaddr_sa"), ""
            open_[ev["tid"]] = (name, arg, flags)
        else:
            name_, arg, flags = open_.pop(ev["tid"])
            assert name_ == name
            result = f.get("errno") or f["ret"]
            calls.setdefault(ev["pid"], []).append((name, arg, flags, result))
    return calls, res.stderr


_STRACE = re.compile(r"^(\w+)\((.*)\)\s+= (-?\d+)(?: (E\w+))?")


def strace_calls(argv, tmp):
    """The same from ``strace -f --seccomp-bpf -ff`` (one file per process)."""
    out = os.path.join(tmp, "st")
    subprocess.run(["strace", "-f", "--seccomp-bpf", "-qq", "-e", "trace=openat,connect", "-e", "signal=none",
                    "-ff", "-o", out, "--", *argv], capture_output=True, timeout=60, check=True, env=ENV)
    calls = {}
    for fn in sorted(os.listdir(tmp), key=lambda n: int(n.rpartition(".")[2]) if n.startswith("st.") else 0):
        if not fn.startswith("st."):
            continue
        pid = int(fn.rpartition(".")[2])
        with open(os.path.join(tmp, fn)) as f:
            for line in f:
                m = _STRACE.match(line)
                if not m:
                    continue
                name, args, ret, err = m.groups()
                if name == "openat":
                    path = re.search(r'"((?:[^"\\]|\\.)*)"', args).group(1)
                    flags = args.split('", ', 1)[1].split(", ")[0]
                    arg = path
                else:
                    a = re.search(r'sin_port=htons\((\d+)\), sin_addr=inet_addr\("([\d.]+)"\)', args)
                    arg, flags = (f"{a.group(2)}:{a.group(1)}" if a else None), ""
                calls.setdefault(pid, []).append((name, arg, flags, err or int(ret)))
    return calls


def _by_order(calls):
    """Per process (in the order they started), its calls; flags as a set (strace lists them in
    its own table's order, undertow by value)."""
    return [[(n, a, frozenset(f.split("|")), r) for n, a, f, r in v] for _k, v in sorted(calls.items())]


needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (.ci/run installs it)")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="compares as root; the non-root test is separate")


def _cases():
    port = _closed_port()
    fork_exec = ("import os\n"
                 "pid = os.fork()\n"
                 "if pid == 0:\n"
                 "    os.execv('/bin/cat', ['cat', '/etc/hostname'])\n"
                 "os.waitpid(pid, 0)\n"
                 "try:\n"
                 "    open('/nonexistent/x')\n"
                 "except OSError:\n"
                 "    pass\n")
    connect = f"import socket\ns = socket.socket()\ns.connect_ex(('127.0.0.1', {port}))\n"
    return {
        "cat": ["/bin/cat", "/etc/hostname"],
        "ls": ["/bin/ls", "/"],
        "connect": [PY, "-S", "-c", connect],
        "fork_exec": [PY, "-S", "-c", fork_exec],
    }


@needs_strace
@needs_root
@pytest.mark.parametrize("case", ["cat", "ls", "connect", "fork_exec"])
def test_same_syscalls_as_strace(case, tmp_path):
    argv = _cases()[case]
    if case in ("connect", "fork_exec"):
        # the snippets contain spaces and newlines: -c splits words as a shell would, so
        # pass them through a file instead
        script = tmp_path / f"{case}.py"
        script.write_text(argv[-1])
        argv = [PY, "-S", str(script)]
    ours, err = undertow_calls(argv)
    st_dir = tmp_path / "strace"
    st_dir.mkdir()
    theirs = strace_calls(argv, str(st_dir))
    assert "backend ptrace" in err
    assert _by_order(ours) == _by_order(theirs)
    flat = [c for v in ours.values() for c in v]
    if case == "connect":
        assert any(c[0] == "connect" and c[3] == "ECONNREFUSED" and c[1].startswith("127.0.0.1:") for c in flat)
    if case == "fork_exec":
        assert len(ours) == 2  # the child was followed through fork and exec
        assert ("openat", "/etc/hostname", "O_RDONLY", 3) in flat
        assert ("openat", "/nonexistent/x", "O_RDONLY|O_CLOEXEC", "ENOENT") in flat


def _target(tmp_path):
    """A process of ours that opens a file in two threads, forever."""
    script = tmp_path / "target.py"
    script.write_text("import threading, time\n"
                      "def t():\n"
                      "    while True:\n"
                      "        open('/etc/hostname').close(); time.sleep(0.05)\n"
                      "threading.Thread(target=t, daemon=True).start()\n"
                      "while True:\n"
                      "    open('/etc/passwd').close(); time.sleep(0.05)\n")
    return subprocess.Popen([PY, "-S", str(script)])


def _tracer_pid(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return -1


def test_attach_to_a_process_and_ctrl_c_leaves_it_running(tmp_path):
    target = _target(tmp_path)
    try:
        time.sleep(0.2)
        p = subprocess.Popen([PY, "-m", "undertow", "trace", "--json", "--backend", "ptrace", "-p", str(target.pid),
                              'e syscalls/sys_enter_openat f:filename~"/etc/*"'], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen = set()
        deadline = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            ev = json.loads(line)
            assert ev["pid"] == target.pid
            seen.add((ev["tid"], ev["fields"]["filename"]))
        names = {n for _t, n in seen}
        assert names == {"/etc/hostname", "/etc/passwd"}, seen
        assert len({t for t, _n in seen}) == 2  # both threads
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
        assert time.monotonic() - t0 < 1.5, "a stop takes at most about a second"
        assert p.returncode == 0 and "Traceback" not in err, err
        assert target.poll() is None and _tracer_pid(target.pid) == 0  # running, untraced
        with open(f"/proc/{target.pid}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] in ("S", "R")
    finally:
        target.kill()
        target.wait()


_FORKER = {
    # a process that, once attached to, starts children: each opens a path naming its own pid
    # and its parent's (the child of fork() runs Python; posix_spawn() is clone(CLONE_VM |
    # CLONE_VFORK), a vfork for ptrace, and the child execs cat)
    "fork": ("import os, time\n"
             "while True:\n"
             "    pid = os.fork()\n"
             "    if pid == 0:\n"
             "        try:\n"
             "            open(f'/nonexistent/ut_child_{os.getpid()}_{os.getppid()}')\n"
             "        except OSError:\n"
             "            pass\n"
             "        os._exit(0)\n"
             "    os.waitpid(pid, 0)\n"
             "    time.sleep(0.05)\n"),
    "vfork": ("import os, time\n"
              "while True:\n"
              "    pid = os.posix_spawn(\n"
              "        '/bin/cat', ['cat', '/nonexistent/ut_spawned_%d' % os.getpid()], {},\n"
              "        file_actions=[(os.POSIX_SPAWN_OPEN, 2, '/dev/null', os.O_WRONLY, 0)])\n"
              "    os.waitpid(pid, 0)\n"
              "    time.sleep(0.05)\n"),
}


def _lines(p, deadline):
    """The lines ``p`` writes on stdout (bytes mode) until ``deadline``, never blocking past it."""
    fd, buf = p.stdout.fileno(), b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buf += chunk
        *lines, buf = buf.split(b"\n")
        yield from lines


@pytest.mark.parametrize("how", ["fork", "vfork"])
def test_attach_follows_the_children_it_starts(how, tmp_path):
    """-p follows the processes the traced one starts after the attach (fork, vfork), as the
    ftrace and BPF backends' -p do: a child's openat shows with the child's pid and result."""
    script = tmp_path / "forker.py"
    script.write_text(_FORKER[how])
    target = subprocess.Popen([PY, "-S", str(script)], stdout=subprocess.DEVNULL)
    p = None
    try:
        time.sleep(0.2)
        p = subprocess.Popen([PY, "-m", "undertow", "trace", "--json", "--backend", "ptrace", "-p", str(target.pid),
                              'e syscalls/sys_enter_openat f:filename~"/nonexistent/ut_*"',
                              'e syscalls/sys_exit_openat'], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        enter = exit_ = None
        for line in _lines(p, time.monotonic() + 20):
            ev = json.loads(line)
            if ev["probe"] == "syscalls:sys_enter_openat" and enter is None:
                enter = ev
            elif ev["probe"] == "syscalls:sys_exit_openat" and enter is not None and ev["tid"] == enter["tid"] \
                    and ev["fields"].get("errno") == "ENOENT":
                exit_ = ev
                break
        assert enter is not None and exit_ is not None, "no event of a child in 20 s"
        child = enter["pid"]
        assert child != target.pid and enter["tid"] == child
        if how == "fork":
            assert enter["fields"]["filename"] == f"/nonexistent/ut_child_{child}_{target.pid}"
            assert enter["comm"] == target.args[0].rsplit("/", 1)[1][:15]
        else:
            assert enter["fields"]["filename"] == f"/nonexistent/ut_spawned_{target.pid}"
            assert enter["comm"] == "cat"  # the child exec'd
        assert exit_["pid"] == child and exit_["fields"]["ret"] == -2
        p.send_signal(signal.SIGINT)
        _out, err = p.communicate(timeout=10)
        assert p.returncode == 0 and b"Traceback" not in err, err
        assert target.poll() is None and _tracer_pid(target.pid) == 0  # running, untraced
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        target.kill()
        target.wait()


def test_the_child_shows_its_return_from_fork(tmp_path):
    """The child's return (0) from the fork the parent traced shows, with the child's pid, as
    the ftrace and BPF backends show it (the kernel reports it in no ptrace stop)."""
    script = tmp_path / "forks.py"
    script.write_text("import os\npid = os.fork()\nif pid == 0:\n    os._exit(0)\nos.waitpid(pid, 0)\n"
                      "print('child', pid, flush=True)\n")
    res = subprocess.run([PY, "-m", "undertow", "trace", "--json", "-c", f"{PY} -S {script}",
                          "e syscalls/sys_exit_clone*", "e syscalls/sys_exit_*fork"],
                         env=ENV, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    child = int([ln for ln in res.stdout.splitlines() if ln.startswith("child ")][0].split()[1])
    evs = [json.loads(x) for x in res.stdout.splitlines() if x.startswith('{"ts"')]
    rets = {(e["pid"], e["tid"]): e["fields"]["ret"] for e in evs}
    parent = [e["pid"] for e in evs if e["fields"]["ret"] == child]
    assert len(parent) == 1 and rets[(child, child)] == 0, evs
    assert {e["probe"] for e in evs if e["pid"] == child} == {e["probe"] for e in evs if e["fields"]["ret"] == child}


def test_duration_ends_the_command():
    """A stop before the command ends kills it (its seccomp filter needs its tracer)."""
    t0 = time.monotonic()
    res = subprocess.run([PY, "-m", "undertow", "trace", "--json", "--duration", "0.5", "-c", "/bin/sleep 30",
                          "e syscalls/sys_enter_execve"], env=ENV, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert time.monotonic() - t0 < 5
    evs = [json.loads(x) for x in res.stdout.splitlines() if x.startswith('{"ts"')]
    assert evs and evs[0]["fields"]["filename"] == "/bin/sleep"
    assert not os.path.exists(f"/proc/{evs[0]['pid']}")


def _drop() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def test_not_root_gets_ptrace_by_itself(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to another user")
    if stat.S_IMODE(os.stat(SRC).st_mode) & 0o005 != 0o005:
        pytest.skip(f"{SRC} is not readable by other users")
    home = tempfile.mkdtemp(prefix="ut_nobody_")
    try:
        os.chown(home, NOBODY, NOBODY)
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "PYTHONPATH": SRC, "UNDERTOW_CACHE_DIR": home,
               "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else PY
        cmd = [python, "-m", "undertow", "trace", "--json", "-c", "/bin/cat /etc/hostname",
               "e syscalls/sys_enter_openat f:filename==\"/etc/hostname\"", "e syscalls/sys_exit_openat"]
        res = subprocess.run(cmd, env=env, preexec_fn=_drop, capture_output=True, text=True, timeout=60)
        if "No module named" in res.stderr:
            pytest.skip("uid 65534 cannot import undertow from " + SRC)
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
        assert "backend ptrace" in res.stderr
        evs = [json.loads(x) for x in res.stdout.splitlines() if x.startswith('{"ts"')]
        enter = [e for e in evs if e["probe"] == "syscalls:sys_enter_openat"]
        assert [e["fields"]["filename"] for e in enter] == ["/etc/hostname"]
        assert enter[0]["comm"] == "cat"
        # -p of a process of this user: auto picks ptrace too
        target = subprocess.Popen([python, "-S", "-c", "import time\nwhile True:\n"
                                   "    open('/etc/hostname').close(); time.sleep(0.05)\n"],
                                  env=env, preexec_fn=_drop)
        try:
            res = subprocess.run([python, "-m", "undertow", "trace", "--json", "--count", "1", "-p", str(target.pid),
                                  "e syscalls/sys_enter_openat"], env=env, preexec_fn=_drop,
                                 capture_output=True, text=True, timeout=60)
            assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
            assert "backend ptrace (tracefs" in res.stderr and "need root" in res.stderr
            ev = json.loads(res.stdout.splitlines()[0])
            assert ev["pid"] == target.pid and ev["fields"]["filename"] == "/etc/hostname"
            assert target.poll() is None
        finally:
            target.kill()
            target.wait()
        # -p of a process of another user (pid 1): a clear error, no traceback
        res = subprocess.run([python, "-m", "undertow", "trace", "-p", "1", "e syscalls/sys_enter_openat"],
                             env=env, preexec_fn=_drop, capture_output=True, text=True, timeout=60)
        assert res.returncode == 1 and "Traceback" not in res.stderr
        assert "cannot ptrace pid 1" in res.stderr and "backend ptrace" in res.stderr
        # doctor says what this user can do
        res = subprocess.run([python, "-m", "undertow", "doctor"], env=env, preexec_fn=_drop,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
        assert "uid 65534 (not root)" in res.stdout
        assert "you can use (ptrace):    syscall tracepoints of your own processes" in res.stdout
        row = [ln for ln in res.stdout.splitlines() if ln.startswith("  ptrace ")][0]
        assert row.split()[1] == "yes", row
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_same_fields_as_the_bpf_backend(tmp_path):
    """Both backends watch one program: the ptrace events carry the BPF events' fields and
    values (plus the decoded extras)."""
    if os.geteuid() != 0:
        pytest.skip("the BPF backend needs root")
    script = tmp_path / "agree.py"
    script.write_text("import ctypes, socket\n"
                      "ctypes.CDLL(None).prctl(15, b'ut_agree', 0, 0, 0)\n"
                      "for p in ('/etc/hostname', '/nonexistent/y'):\n"
                      "    try:\n"
                      "        open(p).close()\n"
                      "    except OSError:\n"
                      "        pass\n"
                      f"socket.socket().connect_ex(('127.0.0.1', {_closed_port()}))\n")
    lines = ['e syscalls/sys_enter_openat f:comm=="ut_agree"', 'e syscalls/sys_exit_openat f:comm=="ut_agree"',
             'e syscalls/sys_enter_connect f:comm=="ut_agree"']
    bpf = subprocess.Popen([PY, "-m", "undertow", "trace", "-v", "--json", "--backend", "bpf", *lines], env=ENV,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = bpf.stderr.readline()
            if not line or "attached" in line:
                break
        raw = subprocess.run([PY, "-m", "undertow", "trace", "--json", "-c", f"{PY} -S {script}", *lines],
                             env=ENV, capture_output=True, text=True, timeout=60)
        assert raw.returncode == 0, raw.stderr
        time.sleep(0.3)
    finally:
        bpf.send_signal(signal.SIGINT)
        out, _ = bpf.communicate(timeout=10)
    want = [json.loads(x) for x in out.splitlines() if x.startswith('{"ts"')]
    got = [json.loads(x) for x in raw.stdout.splitlines() if x.startswith('{"ts"')]
    assert want and got
    # two runs of the program: compare what each event shows, not ids or times
    def shape(evs, strip):
        out = []
        for e in evs:
            f = {k: v for k, v in e["fields"].items() if k not in strip}
            if "uservaddr" in f:
                f["uservaddr"] = "ptr"
            out.append((e["probe"], e["comm"], sorted(f.items())))
        return out
    extras = {"flags_names", "uservaddr_sa", "errno"}
    assert shape(got, extras) == shape(want, ())
