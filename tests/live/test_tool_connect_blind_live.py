"""`undertow connect`, issue 18: connects that fail inside connect() (routes of type blackhole,
unreachable, prohibit, no route at all: EINVAL, EHOSTUNREACH, EACCES, ENETUNREACH) and a
non-blocking connect failed by an ICMP host-unreachable from a router, labelled with the real
error. All inside network namespaces the test makes and removes; never the host's tables."""

import json
import os
import select
import socket
import subprocess
import sys
import time

import pytest

from netns_lab import Netns, can_netns, ip, veth_supported

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2), netns)"),
              pytest.mark.skipif(not can_netns(), reason="ip netns does not work here")]


class Tool:
    """``undertow connect ARGS`` until :meth:`stop`; ready once a loopback connect of ours shows."""

    def __init__(self, *args):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        self.p = subprocess.Popen([sys.executable, "-m", "undertow", "connect", *args, "--duration", "150"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                socket.create_connection(srv.getsockname()).close()
                srv.accept()[0].close()
                if select.select([self.p.stdout], [], [], 0.3)[0]:
                    return
            self.stop()
            pytest.fail("undertow connect reported nothing within 90 s")
        finally:
            srv.close()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(2)
        return self.p.communicate(timeout=120)

    def events(self):
        out, err = self.stop()
        return [json.loads(l) for l in out.splitlines() if l.startswith("{") and '"summary"' not in l], out, err


ROUTES_CHILD = r'''
import errno, socket, sys
for dst in sys.argv[1:]:
    s = socket.socket()
    try:
        s.connect((dst, 8080))
        print(dst, "connected", flush=True)
    except OSError as e:
        print(dst, errno.errorcode.get(e.errno), flush=True)
    s.close()
'''

ROUTES = {"10.66.1.1": ("blackhole", "EINVAL"), "10.66.2.1": ("unreachable", "EHOSTUNREACH"),
          "10.66.3.1": ("prohibit", "EACCES"), "10.66.4.1": (None, "ENETUNREACH")}


def test_connect_failing_inside_connect_shows_the_error():
    with Netns("con") as ns:
        name = ns.add()
        for dst, (kind, _) in ROUTES.items():
            if kind:
                ip("-n", name, "route", "add", kind, dst.rsplit(".", 1)[0] + ".0/24")
        for as_json in (True, False):
            tool = Tool(*(["--json"] if as_json else []))
            child = Netns.popen(name, ROUTES_CHILD, *ROUTES, stdout=subprocess.PIPE, text=True)
            try:
                got = dict(line.split() for line in child.stdout.read().splitlines())
                child.wait(timeout=30)
                time.sleep(0.5)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            assert got == {d: e for d, (_, e) in ROUTES.items()}, got  # what the kernel told the process
            if as_json:
                evs, out, err = tool.events()
                for dst, (_, error) in ROUTES.items():
                    mine = [e for e in evs if e["daddr"] == dst and e["dport"] == 8080]
                    assert len(mine) == 1, (dst, out, err)
                    e = mine[0]
                    assert e["error"] == error and e["pid"] == child.pid and e["proto"] == "tcp", e
                    assert e["outcome"] != "established" and e["netns"] == Netns.inode(name) and e["pidns"]
            else:
                out, err = tool.stop()
                for dst, (_, error) in ROUTES.items():
                    assert any(dst + ":8080" in l and error in l for l in out.splitlines()), (dst, out, err)


NB_CHILD = r'''
import errno, select, socket, sys
s = socket.socket(); s.setblocking(False)
try:
    s.connect((sys.argv[1], 8080))
except BlockingIOError:
    pass
select.select([], [s], [], 20)
err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
print(errno.errorcode.get(err, err), flush=True)
s.close()
'''


@pytest.mark.skipif(not veth_supported(), reason="no veth driver in this kernel")
def test_nonblocking_connect_failed_by_icmp_has_the_real_error():
    with Netns("icmp") as ns:
        a, b = ns.add(), ns.add()
        ip("-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        ip("-n", a, "link", "set", "vb", "netns", b)
        ip("-n", a, "addr", "add", "10.67.0.1/24", "dev", "va")
        ip("-n", b, "addr", "add", "10.67.0.2/24", "dev", "vb")
        ip("-n", a, "link", "set", "va", "up")
        ip("-n", b, "link", "set", "vb", "up")
        ip("-n", a, "route", "add", "10.68.0.0/16", "via", "10.67.0.2")
        # the router: forwards, and has no way to 10.68.1.0/24 (ICMP host unreachable) or
        # forbids 10.68.2.0/24 (ICMP administratively prohibited): both EHOSTUNREACH
        ip("netns", "exec", b, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        ip("-n", b, "route", "add", "unreachable", "10.68.1.0/24")
        ip("-n", b, "route", "add", "prohibit", "10.68.2.0/24")
        tool = Tool("--json")
        seen = {}
        try:
            for dst in ("10.68.1.5", "10.68.2.5"):
                child = Netns.popen(a, NB_CHILD, dst, stdout=subprocess.PIPE, text=True)
                try:
                    seen[dst] = (child.stdout.read().strip(), child.pid)
                    child.wait(timeout=30)
                finally:
                    if child.poll() is None:
                        child.kill()
                        child.wait()
            time.sleep(0.5)
        finally:
            evs, out, err = tool.events()
        for dst, (errname, pid) in seen.items():
            assert errname == "EHOSTUNREACH", (dst, errname)
            mine = [e for e in evs if e["daddr"] == dst]
            assert len(mine) == 1, (dst, out, err)
            assert mine[0]["outcome"] == "unreachable" and mine[0]["error"] == "EHOSTUNREACH", mine[0]
            assert mine[0]["pid"] == pid and mine[0]["netns"] == Netns.inode(a)


AGAIN_CHILD = r'''
import errno, select, socket, sys
s = socket.socket(); s.setblocking(False)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except BlockingIOError:
    pass
select.select([], [s], [], 10)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))  # asks again: the handshake's error comes back
except OSError as e:
    print(errno.errorcode.get(e.errno), flush=True)
'''


def test_second_connect_of_a_nonblocking_socket_is_not_a_new_failure():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    closed = probe.getsockname()[1]
    probe.close()
    tool = Tool("--json")
    child = subprocess.Popen([sys.executable, "-c", AGAIN_CHILD, str(closed)], stdout=subprocess.PIPE, text=True)
    try:
        got = child.stdout.read().strip()
        child.wait(timeout=30)
        time.sleep(0.5)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    evs, out, err = tool.events()
    assert got == "ECONNREFUSED"
    mine = [e for e in evs if e["dport"] == closed and e["pid"] == child.pid]
    assert len(mine) == 1 and mine[0]["error"] == "ECONNREFUSED" and mine[0]["stage"] == "handshake", (out, err)
