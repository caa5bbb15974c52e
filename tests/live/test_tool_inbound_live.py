"""`undertow inbound`: a SYN to a closed port (refused), a handshake accepted by the application,
one never accepted, and a UDP datagram to a closed port; all on 127.0.0.1."""

import json
import os
import select
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))")


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_inbound_outcomes():
    closed = _closed_port()
    tool = subprocess.Popen([sys.executable, "-m", "undertow", "inbound", "--json", "--duration", "120",
                             "--summary"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    socks = []
    try:
        # ready once a probe (a refused SYN to the closed port) is reported
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", closed), timeout=2).close()
            except OSError:
                pass
            if select.select([tool.stdout], [], [], 0.3)[0]:
                break
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        socks.append(srv)
        port = srv.getsockname()[1]
        c = socket.create_connection(("127.0.0.1", port))
        a, _ = srv.accept()
        socks += [c, a]
        never = socket.socket()
        never.bind(("127.0.0.1", 0))
        never.listen(4)
        socks.append(never)
        nport = never.getsockname()[1]
        socks.append(socket.create_connection(("127.0.0.1", nport)))
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(b"knock", ("127.0.0.1", closed))
        socks.append(u)
        time.sleep(1.5)
    finally:
        tool.send_signal(2)
        out, err = tool.communicate(timeout=120)
        for s in socks:
            s.close()
    evs = [json.loads(l) for l in out.splitlines() if l.startswith("{") and '"summary"' not in l]
    ref = [e for e in evs if e["outcome"] == "refused" and e["dport"] == closed]
    assert ref and ref[0]["proto"] == "tcp" and ref[0]["reason"] == "NO_SOCKET" and ref[0]["saddr"] == "127.0.0.1", (out, err)
    hs = [e for e in evs if e["outcome"] == "handshake" and e["dport"] == port]
    acc = [e for e in evs if e["outcome"] == "accepted" and e["dport"] == port]
    assert hs and acc and acc[0]["pid"] == os.getpid() and acc[0]["sock"] == hs[0]["sock"]
    assert hs[0]["listener_pid"] == os.getpid()
    assert any(e["outcome"] == "handshake" and e["dport"] == nport for e in evs)
    assert not any(e["outcome"] == "accepted" and e["dport"] == nport for e in evs)
    assert any(e["outcome"] == "udp-closed" and e["dport"] == closed for e in evs)
    summary = [json.loads(l) for l in out.splitlines() if '"summary"' in l]
    assert summary and summary[0]["summary"][0]["outcomes"].get("not-accepted", 0) >= 1
