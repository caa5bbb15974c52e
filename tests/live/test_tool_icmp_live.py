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


# -- issue 18: a tunnel running before the start, true sizes, connected raw sockets, ping ids

TUNNEL = r'''
import os, socket, struct, sys
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
def echo(ident, seq, payload):
    c = csum(struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload)
    return struct.pack("!BBHHH", 8, 0, c, ident, seq) + payload
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)   # the tunnel, opened early
w = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
w.connect(("127.0.0.1", 0))
print("ready", flush=True)
sys.stdin.readline()
s.sendto(echo(0x5151, 1, b"sh -c 'id; uname -a' " + os.urandom(300)), ("127.0.0.1", 0))
f = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
f.settimeout(3)
f.sendto(echo(0x5252, 1, bytes(1400)), ("127.0.0.1", 0))                   # a 1400-byte ping
for _ in range(2):
    f.recvfrom(4096)
os.write(w.fileno(), echo(0x5353, 1, bytes(56)))                            # write() on a connected raw socket
w.send(echo(0x5454, 1, bytes(56)))                                          # send() without an address
'''


def _ns(kind):
    return int(os.readlink(f"/proc/self/ns/{kind}").split("[")[1].rstrip("]"))


def test_icmp_tunnel_before_the_start_sizes_and_connected_raw_sockets():
    import select

    pre = subprocess.Popen([sys.executable, "-c", TUNNEL], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    tool = None
    try:
        assert pre.stdout.readline().strip() == "ready"
        tool = subprocess.Popen([sys.executable, "-m", "undertow", "icmp", "--json", "--duration", "120"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            subprocess.run([sys.executable, "-c", READY], timeout=30)
            if select.select([tool.stdout], [], [], 0.5)[0]:
                break
        pre.stdin.write("go\n")
        pre.stdin.flush()
        assert pre.wait(timeout=60) == 0
        time.sleep(1.0)
    finally:
        out, err = "", ""
        if tool is not None:
            tool.send_signal(2)
            out, err = tool.communicate(timeout=120)
        if pre.poll() is None:
            pre.kill()
            pre.wait()
    evs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    mine = [e for e in evs if e.get("pid") == pre.pid]
    tun = [e for e in mine if e["direction"] == "out" and e["id"] == 0x5151]
    assert tun and tun[0]["comm"].startswith("python") and tun[0]["socket"] == "raw", (out, err)
    assert tun[0]["size"] == 321 and "contains shell commands" in tun[0]["indicators"]
    big = [e for e in mine if e["id"] == 0x5252]
    assert {e["direction"] for e in big} == {"out", "in"} and all(e["size"] == 1400 for e in big), big
    wr = [e for e in mine if e["direction"] == "out" and e["id"] == 0x5353]
    assert wr and wr[0]["peer"] == "127.0.0.1" and wr[0]["size"] == 56
    sd = [e for e in mine if e["direction"] == "out" and e["id"] == 0x5454]
    assert sd and sd[0]["peer"] == "127.0.0.1"
    assert all(e["netns"] == _ns("net") and e["pidns"] == _ns("pid") for e in mine)


PING_IDS = r'''
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
s.settimeout(5)
for seq in (21, 22):
    s.sendto(struct.pack("!BBHHH", 8, 0, 0, 0, seq) + bytes(56), ("127.0.0.1", 0))
    s.recvfrom(2048)
'''


def test_icmp_ping_socket_ids_match_between_request_and_reply():
    """The kernel writes a ping socket's own id into the request (the process wrote 0): the
    request and the reply must show the same id, and the namespace they ran in."""
    import select
    import shutil

    ip = shutil.which("ip")
    if ip is None:
        pytest.skip("needs iproute2's ip to make a namespace")
    ns = f"ut_icmpid{os.getpid() % 100000}"
    tool = None
    try:
        made = subprocess.run([ip, "netns", "add", ns], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
        subprocess.run([ip, "-n", ns, "link", "set", "lo", "up"], check=True, capture_output=True)
        subprocess.run([ip, "netns", "exec", ns, sys.executable, "-c",
                        "open('/proc/sys/net/ipv4/ping_group_range', 'w').write('0 0')"], check=True)
        ns_ino = os.stat(f"/run/netns/{ns}").st_ino
        tool = subprocess.Popen([sys.executable, "-m", "undertow", "icmp", "--json", "--duration", "120"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            subprocess.run([sys.executable, "-c", READY], timeout=30)
            if select.select([tool.stdout], [], [], 0.5)[0]:
                break
        subprocess.run([ip, "netns", "exec", ns, sys.executable, "-c", PING_IDS], timeout=30, check=True)
        time.sleep(1.0)
    finally:
        out, err = "", ""
        if tool is not None:
            tool.send_signal(2)
            out, err = tool.communicate(timeout=120)
        subprocess.run([ip, "netns", "del", ns], capture_output=True)
    evs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    pings = [e for e in evs if e.get("socket") == "ping" and e.get("seq") in (21, 22)]
    req = [e for e in pings if e["direction"] == "out"]
    rep = [e for e in pings if e["direction"] == "in"]
    assert len(req) == 2 and len(rep) == 2, (out, err)
    assert req[0]["id"] != 0 and {e["id"] for e in pings} == {req[0]["id"]}
    assert all(e["netns"] == ns_ino for e in pings)


TUNNEL6 = r'''
import socket, struct, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)   # opened before the tool
print("ready", flush=True)
sys.stdin.readline()
# echo request (128): the kernel fills the ICMPv6 checksum of a raw ICMPv6 socket
s.sendto(struct.pack("!BBHHH", 128, 0, 0, 0x6161, 3) + b"GET /beacon HTTP/1.1\r\nHost: c2.example.test\r\n" * 8,
         ("::1", 0))
'''


def test_icmpv6_raw_socket_before_the_start():
    import select

    pre = subprocess.Popen([sys.executable, "-c", TUNNEL6], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    tool = None
    try:
        if pre.stdout.readline().strip() != "ready":
            pytest.skip("cannot open an ICMPv6 raw socket here (no IPv6?)")
        tool = subprocess.Popen([sys.executable, "-m", "undertow", "icmp", "--json", "--duration", "120"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            subprocess.run([sys.executable, "-c", READY], timeout=30)
            if select.select([tool.stdout], [], [], 0.5)[0]:
                break
        pre.stdin.write("go\n")
        pre.stdin.flush()
        assert pre.wait(timeout=60) == 0
        time.sleep(1.0)
    finally:
        out, err = "", ""
        if tool is not None:
            tool.send_signal(2)
            out, err = tool.communicate(timeout=120)
        if pre.poll() is None:
            pre.kill()
            pre.wait()
    evs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    six = [e for e in evs if e.get("pid") == pre.pid and e["direction"] == "out"]
    assert six and six[0]["family"] == "ipv6" and six[0]["id"] == 0x6161 and six[0]["peer"] == "::1", (out, err)
    assert six[0]["type_name"] == "echo-request" and six[0]["size"] == 45 * 8
    assert "HTTP-like text" in six[0]["indicators"] and "contains a host name" in six[0]["indicators"]
