"""`undertow inbound` and `undertow connect` on their kprobe hook set (issue 18): where BPF
kprobes work (the lab's Debian 6.1 and 6.12), ``--verbose`` names the set, a full accept queue
is caught in ``tcp_conn_request`` (no listener seeding needed), a SYN scan's RST in
``tcp_check_req``, and a connect refused by a blackhole route in ``tcp_v4_connect``'s return
(once: the syscall path stays quiet). This host's kernel has no kprobes: skipped here with the
reason, run in the lab (tests/lab)."""

import os
import socket
import subprocess
import sys
import time

import pytest

from undertow.kernel import syscalls as sc
from netns_lab import Netns, can_netns, ip
from test_tool_connect_blind_live import Tool as ConnectTool
from test_tool_inbound_blind_live import Tool as InboundTool, syn_scan

HAS_KPROBES = sc.pmu_type("kprobe") is not None
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))"),
    pytest.mark.skipif(not HAS_KPROBES, reason="this kernel has no kprobes (CONFIG_KPROBES=n); runs in the lab"),
]


def test_inbound_kprobe_set_overflow_and_knock():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    queued = [socket.create_connection(("127.0.0.1", port))]
    scanned = socket.socket()
    scanned.bind(("127.0.0.1", 0))
    scanned.listen(8)
    tool = InboundTool("--json")
    late = []
    try:
        for _ in range(2):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            late.append(c)
        sport, flags = syn_scan(scanned.getsockname()[1], timeout=10)
        time.sleep(2.0)
        evs, out, err = tool.events()
    finally:
        for s in [srv, scanned, *queued, *late]:
            s.close()
    ovf = [e for e in evs if e["dport"] == port and e["reason"] == "TCP_LISTEN_OVERFLOW"]
    assert ovf and ovf[0]["listener_pid"] == os.getpid(), (out, err)
    assert flags == 0x12
    knocks = [e for e in evs if e["outcome"] == "knock" and e["sport"] == sport]
    assert knocks and knocks[0]["reason"] == "RST_AFTER_SYNACK", (out, err)


def test_hook_sets_named_with_verbose():
    for tool in ("inbound", "connect"):
        r = subprocess.run([sys.executable, "-m", "undertow", "--verbose", tool, "--duration", "1"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert f"undertow {tool}: hooks: kprobes:" in r.stderr, r.stderr


@pytest.mark.skipif(not can_netns(), reason="ip netns does not work here")
def test_connect_kprobe_set_sees_a_blackhole_once():
    code = ("import socket\ns = socket.socket()\ntry:\n    s.connect(('10.66.1.1', 8080))\n"
            "except OSError as e:\n    print(e.errno)\n")
    with Netns("conkp") as ns:
        name = ns.add()
        inode = Netns.inode(name)
        ip("-n", name, "route", "add", "blackhole", "10.66.1.0/24")
        tool = ConnectTool("--json")
        child = Netns.popen(name, code, stdout=subprocess.PIPE, text=True)
        try:
            got = child.stdout.read().strip()
            child.wait(timeout=60)
            time.sleep(1.0)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        evs, out, err = tool.events()
    assert got == "22"
    mine = [e for e in evs if e["daddr"] == "10.66.1.1"]
    assert len(mine) == 1 and mine[0]["error"] == "EINVAL" and mine[0]["stage"] == "syscall", (out, err)
    assert mine[0]["pid"] == child.pid and mine[0]["netns"] == inode and mine[0]["comm"].startswith("python")
