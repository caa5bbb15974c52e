"""`undertow connect`: a connect to a listener (established, with latency) and to a closed port
(refused), both on 127.0.0.1, from a child process whose pid is checked."""

import json
import os
import select
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))")

CHILD = r'''
import socket, sys, time
socket.create_connection(("127.0.0.1", int(sys.argv[1]))).close()
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5)
except ConnectionRefusedError:
    pass
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.connect(("127.0.0.1", 5353))
# a listener whose queue is full: further SYNs are dropped, the connect stays in SYN_SENT
full = socket.socket(); full.bind(("127.0.0.1", 0)); full.listen(0)
waiting = []
for _ in range(3):
    c = socket.socket(); c.setblocking(False)
    try:
        c.connect(full.getsockname())
    except BlockingIOError:
        pass
    waiting.append(c)
print(full.getsockname()[1], flush=True)
time.sleep(600)
'''


def test_connect_outcomes_with_process():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    closed = probe.getsockname()[1]
    probe.close()
    tool = subprocess.Popen([sys.executable, "-m", "undertow", "connect", "--json", "--duration", "120",
                             "--summary"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # ready once a probe connect of the test is reported
            socket.create_connection(("127.0.0.1", port)).close()
            srv.accept()[0].close()  # keep the accept queue empty (slow starts under QEMU take many tries)
            if select.select([tool.stdout], [], [], 0.3)[0]:
                break
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(port), str(closed)], stdout=subprocess.PIPE,
                                 text=True)
        full_port = int(child.stdout.readline())
        time.sleep(1.0)
    finally:
        tool.send_signal(2)
        out, err = tool.communicate(timeout=120)
        srv.close()
        child.kill()  # our own child, by its pid
        child.wait()
    evs = [json.loads(l) for l in out.splitlines() if l.startswith("{") and '"summary"' not in l]
    kids = [e for e in evs if e["comm"].startswith("python") and e["pid"] != os.getpid()]
    ok = [e for e in kids if e["dport"] == port and e["outcome"] == "established"]
    ref = [e for e in kids if e["dport"] == closed and e["outcome"] == "refused"]
    assert ok and ref, (out, err)
    assert ok[0]["daddr"] == "127.0.0.1" and ok[0]["latency_ms"] >= 0 and ref[0]["error"] == "ECONNREFUSED"
    assert ok[0]["pid"] == ref[0]["pid"] == child.pid and "ppid" in ok[0]
    udp = [e for e in kids if e["proto"] == "udp" and e["dport"] == 5353]
    assert udp and udp[0]["outcome"] == "connected" and udp[0]["daddr"] == "127.0.0.1"
    waiting = [e for e in kids if e["outcome"] == "in-progress" and e["dport"] == full_port]
    assert waiting and waiting[0]["latency_ms"] > 0
    assert any(e["pid"] == os.getpid() and e["outcome"] == "established" for e in evs)
    assert any('"summary"' in l for l in out.splitlines())
