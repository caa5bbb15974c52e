"""`undertow rootkit` against a real loadable-module rootkit, inside a lab guest (issue 20).

tests/lab/rkmod/utrk.ko (built on the host against Debian's linux-headers for the guest's
kernel: tests/lab/modbuild.py) unlinks itself from the module list, hooks
``__x64_sys_getdents64`` and ``tcp4_seq_show`` through ftrace, patches the kill entry of
``sys_call_table``, and hides a process and a TCP listener (lkm_scenario.planted). undertow
must report the module, the hooks, the pid and the socket. Runs only in a lab guest:

    flock /work/lab.lock python3 tests/lab/lab.py run --kernel 6.12 --env PYTHONPATH=WT/src -- \\
        python3 -m pytest -q tests/lab/guest/test_lkm_rootkit.py
"""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

lkm_scenario = pytest.importorskip("lkm_scenario", reason="tests/lab/guest/lkm_scenario.py is missing")


def module_path():
    base = os.environ.get("UNDERTOW_LAB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "undertow-lab")
    return os.path.join(base, "modules", os.uname().release, "utrk.ko")


def in_lab_guest():
    return os.path.exists("/proc/modules") and os.environ.get("UNDERTOW_LAB_GUEST") != "0"


pytestmark = [
    # never on a host: the module is only ever loaded in a throwaway lab guest
    pytest.mark.skipif(os.environ.get("UNDERTOW_LAB") != "1", reason="runs only inside a lab guest (UNDERTOW_LAB=1)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not os.path.exists("/proc/modules"), reason="this kernel cannot load modules"),
    pytest.mark.skipif(not os.path.exists(module_path()),
                       reason="no utrk.ko for this kernel (built on the host by tests/lab/modbuild.py; "
                              "only ever loaded in a lab guest)"),
]


SRC = os.path.abspath(os.path.join(HERE, "..", "..", "..", "src"))


def test_clean_guest_has_no_findings():
    res = subprocess.run([sys.executable, "-m", "undertow", "rootkit", "--json"], capture_output=True,
                         text=True, timeout=600, env=dict(os.environ, PYTHONPATH=SRC))
    assert "Traceback" not in res.stderr, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
    got = [x for x in lines if x["type"] == "finding"]
    assert not got, json.dumps(got, indent=1)
    assert res.returncode in (0, 2), lines[-1]


def test_module_rootkit_is_reported():
    env = dict(os.environ, PYTHONPATH=SRC)
    with lkm_scenario.planted(module_path()) as what:
        pid, port = what["pid"], what["port"]
        res = subprocess.run([sys.executable, "-m", "undertow", "rootkit", "--json"], capture_output=True,
                             text=True, timeout=600, env=env)
    assert "Traceback" not in res.stderr, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
    got = [x for x in lines if x["type"] == "finding"]
    text = json.dumps(got, indent=1)
    by = {(f["check"], str(f["key"])): f for f in got}
    missing = []  # every expectation is checked: one lab run shows all that is missing

    def expect(what, ok):
        if not ok:
            missing.append(what)

    expect("exit status 1", res.returncode == 1)
    # the module: unlinked from the list, its kobject still there
    f = by.get(("modules", "utrk"))
    expect("module utrk hidden", f is not None and f["severity"] == "high" and "/sys/module" in f["evidence"])
    # its ftrace hooks
    for fn in ("__x64_sys_getdents64", "tcp4_seq_show"):
        f = by.get(("hooks", fn))
        expect(f"ftrace hook on {fn}", f is not None and f["severity"] == "high")
    # the syscall table entry of kill (62)
    skipped = [x for x in lines if x["type"] == "not_checked" and x["what"] == "sys_call_table"]
    expect("sys_call_table[62]", by.get(("hooks", "sys_call_table:62")) is not None or skipped)
    # the show pointer of udp_seq_ops (/proc/net/udp), read through /proc/kcore
    skipped = [x for x in lines if x["type"] == "not_checked" and x["what"] == "/proc/net seq_operations"]
    f = by.get(("hooks", "seq_ops:udp_seq_ops.show"))
    expect("udp_seq_ops.show", (f is not None and f["severity"] == "high") or skipped)
    # the ftrace hook it removed again at once: touched_functions (6.4+) remembers it
    skipped = [x for x in lines if x["type"] == "not_checked" and x["what"] == "ftrace touched_functions"]
    # (getppid takes no arguments: __x64_sys_getppid is an alias of __do_sys_getppid, the name
    # ftrace prints)
    f = by.get(("hooks", "touched:__x64_sys_getppid")) or by.get(("hooks", "touched:__do_sys_getppid"))
    release = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    expect("touched __x64_sys_getppid", (f is not None and f["severity"] == "medium") or
           (skipped and release < (6, 4)))
    # the hidden pid and socket
    f = by.get(("processes", str(pid)))
    expect(f"hidden pid {pid}", f is not None and "hides it" in f["title"])
    expect(f"hidden socket port {port}", any(x["check"] == "sockets" and f"port {port}" in json.dumps(x["evidence"])
                                             for x in got))
    assert not missing, f"missing: {missing}\n{text}"
