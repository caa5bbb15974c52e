"""Issue 17 item 4 on this kernel: strings and names as the user means them, on both backends.

- ``(char *)%0`` on a uprobe and ``+0(%di):string`` (kprobe_events' syntax) print the string;
- ``e syscalls/sys_enter_openat`` prints the path on the default backend (auto takes BPF,
  and --verbose says why);
- renamed tracepoint fields show under their new names;
- the COMM column is the name at the event across an exec (bash -c 'exec python3 ...').

Ground truth: processes we start, with names and arguments we choose.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import sys

import pytest

from undertow.kernel import Kernel

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (tracefs, uprobes, BPF)")

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def undertow(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run([sys.executable, "-m", "undertow", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def trace_while(script: str, *args: str) -> subprocess.CompletedProcess:
    """``undertow trace -v ARGS`` while bash runs ``script``: started once the tracer says it is
    attached (a start takes 10-60 s in the lab), the tracer stopped with SIGINT after it
    (--drain: everything made before is shown)."""
    tr = subprocess.Popen([sys.executable, "-m", "undertow", "trace", "-v", "--drain", "--duration", "120", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, PYTHONPATH=SRC))
    err_head = []
    try:
        for line in tr.stderr:
            err_head.append(line)
            if "undertow trace: attached" in line:
                break
        subprocess.run(["bash", "-c", script], timeout=90)
        time.sleep(0.5)
        tr.send_signal(signal.SIGINT)
        out, err = tr.communicate(timeout=90)
    finally:
        if tr.poll() is None:
            tr.kill()
            tr.wait()
    return subprocess.CompletedProcess(tr.args, tr.returncode, out, "".join(err_head) + err)


@pytest.fixture(scope="module")
def kernel():
    k = Kernel()
    try:
        k.tracefs()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"tracefs unusable: {e}")
    return k


def _needs(kernel, what: str) -> None:
    if what == "uprobe" and not kernel.tracefs().has("uprobe_events"):
        pytest.skip("no uprobe_events")
    if what == "bpf":
        f = kernel.features().get("bpf_ringbuf")
        if f is not None and f.available is False:
            pytest.skip(f"no BPF ring buffer: {f.reason}")


def _events(out: str, probe_word: str):
    return [line for line in out.splitlines() if probe_word in line and not line.startswith("#")]


@pytest.mark.parametrize("backend", ["ftrace", "bpf"])
@pytest.mark.parametrize("field", ["host=(char *)%0", "host=+0(%di):string", "host=%di:string"])
def test_uprobe_char_pointer_is_a_string(kernel, backend, field):
    _needs(kernel, "uprobe")
    if backend == "bpf":
        _needs(kernel, "bpf")
    # a numeric host: glibc's getaddrinfo runs, nothing is looked up (no traffic at all)
    p = trace_while(f"{PY} -c 'import socket\nsocket.getaddrinfo(\"127.0.0.9\", 80, "
                    f"flags=socket.AI_NUMERICHOST)'", "--backend", backend, f"P libc:getaddrinfo {field}")
    assert p.returncode == 0, p.stderr
    lines = _events(p.stdout, "getaddrinfo")
    assert any('host="127.0.0.9"' in line for line in lines), p.stdout + p.stderr


def test_openat_filename_is_a_path_by_default(kernel, tmp_path):
    _needs(kernel, "bpf")
    target = tmp_path / "ut-strings-file"
    target.write_text("x")
    p = trace_while(f"cat {target} >/dev/null", 'e syscalls/sys_enter_openat f:comm=="cat"')
    assert p.returncode == 0, p.stderr
    assert "backend bpf (ftrace: syscalls/sys_enter_openat records only the address in filename" in p.stderr
    assert f'filename="{target}"' in p.stdout, p.stdout


def test_openat_filename_on_ftrace_stays_an_address(kernel):
    p = undertow("trace", "-v", "--backend", "ftrace", "--count", "1", "--duration", "10",
                 "e syscalls/sys_enter_openat")
    assert p.returncode == 0, p.stderr
    assert "backend ftrace (ftrace: syscalls/sys_enter_openat records only the address" in p.stderr


@pytest.mark.parametrize("backend", ["ftrace", "bpf"])
def test_renamed_tracepoint_fields(kernel, backend):
    if backend == "bpf":
        _needs(kernel, "bpf")
    p = undertow("trace", "--backend", backend, "--count", "3", "--duration", "10",
                 "e sched/sched_switch prev_comm next=next_pid")
    assert p.returncode == 0, p.stderr
    lines = _events(p.stdout, "sched_switch")
    assert lines and all("prev_comm=" in line and " next=" in line for line in lines), p.stdout


EXEC = ("exec 3</etc/hostname; exec 3<&-; sleep 1; "
        f"exec {PY} -c 'import os\nfor _ in range(3): os.close(os.open(\"/etc/hostname\", 0))'")


@pytest.mark.parametrize("backend", ["ftrace", "bpf"])
@pytest.mark.parametrize("line", ["e syscalls/sys_enter_close fd", "P libc:close fd=%di:s32"])
def test_comm_across_exec(kernel, backend, line):
    """bash closes fd 3, sleeps, execs python3, which closes 3 more files: the bash events say
    bash and the python events python3, whenever the reader first looked at /proc."""
    if line.startswith("P"):
        _needs(kernel, "uprobe")
    if backend == "bpf":
        _needs(kernel, "bpf")
    # the child waits until the tracer says it is attached (-v): a start takes 10-60 s in the lab
    child = subprocess.Popen(["bash", "-c", "read _; " + EXEC], stdin=subprocess.PIPE, text=True)
    tr = subprocess.Popen([sys.executable, "-m", "undertow", "trace", "-v", "--json", "--backend", backend,
                           "-p", str(child.pid), "--duration", "120", "--drain", line],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, PYTHONPATH=SRC))
    try:
        for err_line in tr.stderr:
            if "undertow trace: attached" in err_line:
                break
        child.stdin.write("go\n")
        child.stdin.close()
        child.wait(timeout=90)
        time.sleep(0.5)
        tr.send_signal(signal.SIGINT)  # everything made before it is shown (--drain)
        out, err = tr.communicate(timeout=90)
    finally:
        for proc in (tr, child):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert tr.returncode == 0, err
    import json

    evs = [json.loads(x) for x in out.splitlines() if x.startswith('{"ts"')]
    comms = [e["comm"] for e in evs if e["pid"] == child.pid]
    assert "bash" in comms and "python3" in comms, comms
    # the names change once, at the exec: bash..., then python3...
    first_py = comms.index("python3")
    assert set(comms[:first_py]) == {"bash"} and set(comms[first_py:]) == {"python3"}, comms
