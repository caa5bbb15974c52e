"""`undertow inbound`, issue 18: what a responder must not miss — a listener whose accept queue
overflows (SYNs dropped: TCP_LISTEN_OVERFLOW), a half-open SYN scan of an open port (SYN,
SYN-ACK, RST: a knock), drops in another network namespace (with its ``netns``). Traffic only
on loopback, in this host's namespace or in one the test makes and removes."""

import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import time

import pytest

from netns_lab import Netns, can_netns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2), raw sockets)")


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Tool:
    """``undertow inbound ARGS`` running until :meth:`stop`; ready once a refused SYN to a
    closed loopback port was reported."""

    def __init__(self, *args):
        self.closed = _closed_port()
        self.p = subprocess.Popen([sys.executable, "-m", "undertow", "inbound", *args, "--duration", "150"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.closed), timeout=2).close()
            except OSError:
                pass
            if select.select([self.p.stdout], [], [], 0.3)[0]:
                return
        self.stop()
        pytest.fail("undertow inbound reported nothing within 90 s")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(2)
        out, err = self.p.communicate(timeout=120)
        return out, err

    def events(self):
        out, err = self.stop()
        return [json.loads(l) for l in out.splitlines() if l.startswith("{") and '"summary"' not in l], out, err


def _csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def syn_scan(port, timeout=3.0):
    """One half-open probe as ``nmap -sS`` does: a raw SYN from an unbound port; the SYN-ACK
    finds no socket here, so this kernel answers it with a RST. Returns (sport, flags seen)."""
    sport = random.randint(40000, 60000)
    hdr = struct.pack("!HHIIBBHHH", sport, port, random.getrandbits(32), 0, 5 << 4, 0x02, 65535, 0, 0)
    pseudo = socket.inet_aton("127.0.0.1") * 2 + struct.pack("!BBH", 0, 6, len(hdr))
    hdr = hdr[:16] + struct.pack("!H", _csum(pseudo + hdr)) + hdr[18:]
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP) as r:
        r.sendto(hdr, ("127.0.0.1", 0))
        r.settimeout(0.5)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                pkt = r.recv(1500)
            except socket.timeout:
                continue
            ihl = (pkt[0] & 15) * 4
            if struct.unpack("!HH", pkt[ihl:ihl + 4]) == (port, sport):
                return sport, pkt[ihl + 13]
    return sport, None


def test_listen_queue_overflow_is_reported():
    # a listener whose accept queue is already full when the tool starts (a stuck service)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    queued = [socket.create_connection(("127.0.0.1", port))]
    time.sleep(0.2)
    tool = Tool("--json")
    late = []
    try:
        for _ in range(3):  # these SYNs find the accept queue full: dropped
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            late.append(c)
        late_ports = {c.getsockname()[1] for c in late}
        time.sleep(1.5)
        evs, out, err = tool.events()
    finally:
        for s in [srv, *queued, *late]:
            s.close()
    ovf = [e for e in evs if e["dport"] == port and e["reason"] == "TCP_LISTEN_OVERFLOW"]
    assert ovf, (out, err)
    e = ovf[0]
    assert e["outcome"] == "dropped" and e["proto"] == "tcp" and e["saddr"] == "127.0.0.1" and e["syn"] is True
    assert e["listener_pid"] == os.getpid() and e["netns"] == os.stat("/proc/self/ns/net").st_ino
    assert {x["sport"] for x in ovf} == late_ports  # each dropped SYN (and its retransmissions)


def test_half_open_syn_scan_is_a_knock():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    tool = Tool("--json")
    try:
        sport, flags = syn_scan(port)
        time.sleep(1.0)
        evs, out, err = tool.events()
    finally:
        srv.close()
    assert flags == 0x12, "no SYN-ACK came back: the scan did not reach the listener"
    knocks = [e for e in evs if e["outcome"] == "knock" and e["dport"] == port]
    assert knocks, (out, err)
    k = knocks[0]
    assert k["saddr"] == "127.0.0.1" and k["sport"] == sport and k["proto"] == "tcp"
    assert k["listener_pid"] == os.getpid() and k["reason"]
    # the scanner's own side: the SYN-ACK that found no socket is not an inbound attempt here
    assert not any(e["dport"] == sport and e["outcome"] == "refused" for e in evs)


NS_CHILD = r'''
import socket, sys, time
closed = int(sys.argv[1])
for _ in range(2):
    try:
        socket.create_connection(("127.0.0.1", closed), timeout=2).close()
    except OSError:
        pass
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(4)
c = socket.create_connection(srv.getsockname())
a, _ = srv.accept()
print(srv.getsockname()[1], flush=True)
time.sleep(1)
'''


@pytest.mark.skipif(not can_netns(), reason="ip netns does not work here")
def test_drops_in_another_netns_carry_it():
    with Netns("inb") as ns:
        name = ns.add()
        inode = Netns.inode(name)
        for as_json in (True, False):
            tool = Tool(*(["--json"] if as_json else []))
            child = Netns.popen(name, NS_CHILD, 9, stdout=subprocess.PIPE, text=True)
            try:
                port = int(child.stdout.readline())
                child.wait(timeout=30)
                time.sleep(1.0)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            if as_json:
                evs, out, err = tool.events()
                ref = [e for e in evs if e["dport"] == 9 and e["outcome"] == "refused" and e["netns"] == inode]
                assert ref, (out, err)
                acc = [e for e in evs if e["dport"] == port and e["outcome"] == "accepted"]
                assert acc and acc[0]["netns"] == inode and acc[0]["pid"] == child.pid or \
                    acc and acc[0]["netns"] == inode, (out, err)
                assert "pidns" in acc[0]
                # the tool's own probes, in the host's namespace, say so
                host = [e for e in evs if e["dport"] == tool.closed and e["outcome"] == "refused"]
                assert host and host[0]["netns"] == os.stat("/proc/self/ns/net").st_ino
            else:
                out, err = tool.stop()
                lines = [l for l in out.splitlines() if " 9 " in l and "refused" in l]
                assert lines and all(f"netns:{inode}" in l for l in lines), (out, err)


UNANSWERED_CHILD = r'''
import socket, struct, sys, time
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
srv = socket.socket(); srv.bind(("10.70.0.1", 0)); srv.listen(8)
port = srv.getsockname()[1]
src, dst, sport = "10.70.0.9", "10.70.0.1", 45678
tcp = struct.pack("!HHIIBBHHH", sport, port, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
iph = iph[:10] + struct.pack("!H", csum(iph)) + iph[12:]
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
r.sendto(iph + tcp, (dst, 0))
print(port, flush=True)
time.sleep(3)  # the SYN-ACK to 10.70.0.9 finds no neighbour: retransmitted after ~1 s
'''


@pytest.mark.skipif(not can_netns(), reason="ip netns does not work here")
def test_unanswered_syn_ack_is_a_knock():
    """A SYN from an address that never answers (a spoofed or firewalled scanner): the kernel
    retransmits its SYN-ACK; the first retransmission is a knock ``SYNACK_UNANSWERED``."""
    from netns_lab import ip, veth_supported

    if not veth_supported():
        pytest.skip("no veth driver in this kernel")
    with Netns("knock") as ns:
        name = ns.add()
        inode = Netns.inode(name)
        ip("-n", name, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        ip("-n", name, "addr", "add", "10.70.0.1/24", "dev", "va")
        ip("-n", name, "link", "set", "va", "up")
        ip("-n", name, "link", "set", "vb", "up")
        tool = Tool("--json")
        child = Netns.popen(name, UNANSWERED_CHILD, stdout=subprocess.PIPE, text=True)
        try:
            port = int(child.stdout.readline())
            child.wait(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        evs, out, err = tool.events()
    knocks = [e for e in evs if e["outcome"] == "knock" and e["dport"] == port]
    assert len(knocks) == 1, (out, err)
    k = knocks[0]
    assert (k["saddr"], k["sport"], k["daddr"], k["reason"], k["netns"]) == \
        ("10.70.0.9", 45678, "10.70.0.1", "SYNACK_UNANSWERED", inode)
    assert k["listener_pid"] == child.pid
