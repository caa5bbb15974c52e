"""`undertow icmp`: echo requests over a raw socket to 127.0.0.1 (one ping-like, one tunnel-like),
the reply received, and the kernel's own port-unreachable. Traffic stays on loopback."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2), raw sockets)")

CHILD = r'''
import os, socket, struct
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
def echo(ident, seq, payload):
    c = csum(struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload)
    return struct.pack("!BBHHH", 8, 0, c, ident, seq) + payload
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(5)
s.sendto(echo(0x4242, 1, bytes(range(8, 64))), ("127.0.0.1", 0))
for _ in range(2):
    s.recvfrom(2048)                       # our own request (raw sockets see it), then the reply
s.sendto(echo(0x4242, 2, os.urandom(200)), ("127.0.0.1", 0))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"x", ("127.0.0.1", 9))          # nothing listens: the kernel answers port unreachable
'''


READY = CHILD.split("s.settimeout")[0] + "s.sendto(echo(0x0101, 1, bytes(56)), ('127.0.0.1', 0))\n"


def test_icmp_echo_tunnel_flag_reply_and_kernel_errors():
    tool = subprocess.Popen([sys.executable, "-m", "undertow", "icmp", "--json", "--duration", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # ready once a probe echo (id 0x0101) from the test is reported
        deadline = time.monotonic() + 90
        import select
        while time.monotonic() < deadline:
            subprocess.run([sys.executable, "-c", READY], timeout=30)
            if select.select([tool.stdout], [], [], 0.5)[0]:
                break
        child = subprocess.Popen([sys.executable, "-c", CHILD])
        assert child.wait(timeout=60) == 0
        time.sleep(1.5)
    finally:
        tool.send_signal(2)
        out, err = tool.communicate(timeout=120)
    evs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    mine = [e for e in evs if e.get("pid") == child.pid]
    out1 = [e for e in mine if e["direction"] == "out" and e["seq"] == 1]
    assert out1 and out1[0]["type_name"] == "echo-request" and out1[0]["id"] == 0x4242, (out, err)
    assert out1[0]["size"] == 56 and out1[0]["indicators"] == [] and out1[0]["peer"] == "127.0.0.1"
    assert out1[0]["socket"] == "raw" and out1[0]["comm"].startswith("python")
    tun = [e for e in mine if e["direction"] == "out" and e["seq"] == 2]
    assert tun and tun[0]["size"] == 200 and any("size" in i or "entropy" in i for i in tun[0]["indicators"])
    assert any(e["direction"] == "in" and e["type_name"] == "echo-reply" and e["id"] == 0x4242 for e in mine)
    kern = [e for e in evs if e["direction"] == "kernel" and e["type_name"] == "dest-unreachable"]
    assert kern and kern[0]["code"] == 3 and kern[0]["dport"] == 9


PING_SOCKET = r'''
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
s.settimeout(5)
s.sendto(struct.pack("!BBHHH", 8, 0, 0, 0, 7) + bytes(range(16, 72)), ("127.0.0.1", 0))
s.recvfrom(2048)
'''


def test_icmp_ping_socket_in_a_namespace():
    """A ping socket (SOCK_DGRAM/IPPROTO_ICMP) inside a network namespace the test creates,
    where ping_group_range allows root (the setting is per namespace: the host is untouched)."""
    import shutil

    ip = shutil.which("ip")
    if ip is None:
        pytest.skip("needs iproute2's ip to make a namespace")
    ns = f"ut_icmp{os.getpid() % 100000}"
    tool = None
    try:
        made = subprocess.run([ip, "netns", "add", ns], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
        subprocess.run([ip, "-n", ns, "link", "set", "lo", "up"], check=True, capture_output=True)
        subprocess.run([ip, "netns", "exec", ns, sys.executable, "-c",
                        "open('/proc/sys/net/ipv4/ping_group_range', 'w').write('0 0')"], check=True)
        tool = subprocess.Popen([sys.executable, "-m", "undertow", "icmp", "--json", "--duration", "120"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        import select
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            subprocess.run([ip, "netns", "exec", ns, sys.executable, "-c", PING_SOCKET], timeout=30)
            if select.select([tool.stdout], [], [], 0.5)[0]:
                break
        time.sleep(1.0)
    finally:
        out, err = "", ""
        if tool is not None:
            tool.send_signal(2)
            out, err = tool.communicate(timeout=120)
        subprocess.run([ip, "netns", "del", ns], capture_output=True)
    evs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    pings = [e for e in evs if e.get("socket") == "ping" and e["direction"] == "out" and e["seq"] == 7]
    assert pings and pings[0]["type_name"] == "echo-request" and pings[0]["size"] == 56, (out, err)
    assert pings[0]["indicators"] == []
    assert any(e.get("socket") == "ping" and e["direction"] == "in" and e["type_name"] == "echo-reply"
               for e in evs)
