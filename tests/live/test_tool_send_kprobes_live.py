"""`undertow dns` and `undertow icmp` on their kprobe hook sets (issue 18): where BPF kprobes
work (the lab's Debian 6.1 and 6.12) dns hooks udp_sendmsg/udpv6_sendmsg/tcp_sendmsg (and the
sendpage functions before 6.5), icmp raw_sendmsg/ping_v4_sendmsg (+ v6), so messages sent
without a send syscall show: an io_uring IORING_OP_SEND and a sendfile(2) from a file into a
connected UDP socket (dns), an io_uring send of an echo request on a raw socket (icmp), each
from a child whose pid and comm are asserted. This host's kernel has no kprobes: skipped here with the reason. Traffic: loopback
only (127.0.0.1:53, where a test listener is bound when it can be, else ICMP answers)."""

import json
import os
import select
import socket
import struct
import subprocess
import sys
import time

import pytest

from undertow.kernel import syscalls as sc

HAS_KPROBES = sc.pmu_type("kprobe") is not None
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))"),
    pytest.mark.skipif(not HAS_KPROBES, reason="this kernel has no kprobes (CONFIG_KPROBES=n); runs in the lab"),
    pytest.mark.skipif(os.uname().machine != "x86_64", reason="the io_uring child uses x86-64 syscall numbers"),
]

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r'''
import ctypes, os, socket, struct, sys, tempfile
sys.path.insert(0, sys.argv[1])
from fw_techniques import _Uring, _name
def query(name, qid):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for part in name.split("."):
        q += bytes([len(part)]) + part.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)
_name("ut_dns_uring")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", 53))
q = ctypes.create_string_buffer(query("ut-uring.example.test", 0x5151))
ring = _Uring()
res = ring.submit(26, s.fileno(), ctypes.addressof(q), len(q.raw) - 1, 0)  # IORING_OP_SEND
ring.close()
assert res == len(q.raw) - 1, res
_name("ut_dns_sendfile")
f = tempfile.TemporaryFile()
f.write(query("ut-sendfile.example.test", 0x5252))
f.flush()
t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t.connect(("127.0.0.1", 53))
n = os.sendfile(t.fileno(), f.fileno(), 0, 42)
assert n == 42, n
print(os.getpid(), flush=True)
'''


def test_io_uring_and_sendfile_queries_are_seen():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", 53))  # a listener: the sends are not answered by ICMP errors
    except OSError:
        pass
    tool = subprocess.Popen([sys.executable, "-m", "undertow", "--verbose", "dns", "--json", "--duration", "240"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and tool.poll() is None:  # ready once a query of ours shows
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ready\x04test\x00\x00\x01\x00\x01",
                     ("127.0.0.1", 53))
            s.close()
            if select.select([tool.stdout], [], [], 0.5)[0]:
                lines.append(tool.stdout.readline())
                break
        assert lines, tool.stderr.read() if tool.poll() is not None else "not ready"
        child = subprocess.run([sys.executable, "-c", CHILD, HERE], capture_output=True, text=True, timeout=120)
        assert child.returncode == 0, child.stderr
        pid = int(child.stdout.split()[0])
        time.sleep(2)
    finally:
        tool.send_signal(2)
        out, err = tool.communicate(timeout=120)
        u.close()
    assert "undertow dns: hooks: kprobes:" in err, err
    evs = [json.loads(x) for x in lines + out.splitlines() if x.startswith("{")]
    ur = [e for e in evs if e.get("qname") == "ut-uring.example.test."]
    sf = [e for e in evs if e.get("qname") == "ut-sendfile.example.test."]
    assert ur and sf, (evs, err)
    assert ur[0]["pid"] == pid and ur[0]["id"] == 0x5151 and ur[0]["resolver"] == "127.0.0.1", ur
    # inline issue runs in the submitter (io_uring_enter); a punt to a worker thread is named io_uring
    assert ur[0]["syscall"] in ("io_uring_enter", "io_uring") and ur[0]["transport"] == "udp", ur
    assert ur[0]["comm"] == "ut_dns_uring" or ur[0]["comm"].startswith("iou-"), ur
    assert sf[0]["pid"] == pid and sf[0]["comm"] == "ut_dns_sendfile" and sf[0]["id"] == 0x5252, sf
    assert sf[0]["syscall"] == "sendfile" and sf[0]["resolver"] == "127.0.0.1" and sf[0]["resolver_port"] == 53, sf


ICMP_CHILD = r'''
import ctypes, os, socket, struct, sys
sys.path.insert(0, sys.argv[1])
from fw_techniques import _Uring, _name
_name("ut_icmp_uring")
payload = b"ut-uring-echo-payload"
body = struct.pack(">BBHHH", 8, 0, 0, 0x4242, 7) + payload
c = sum(struct.unpack(">%dH" % ((len(body) + 1) // 2), body + b"\0" * (len(body) % 2)))
c = (c >> 16) + (c & 0xFFFF); c += c >> 16
msg = ctypes.create_string_buffer(body[:2] + struct.pack(">H", ~c & 0xFFFF) + body[4:])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.connect(("127.0.0.1", 0))
ring = _Uring()
res = ring.submit(26, s.fileno(), ctypes.addressof(msg), len(body), 0)  # IORING_OP_SEND
ring.close()
assert res == len(body), res
print(os.getpid(), flush=True)
'''


def test_io_uring_echo_request_is_seen():
    tool = subprocess.Popen([sys.executable, "-m", "undertow", "--verbose", "icmp", "--json", "--duration", "240"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and tool.poll() is None:  # ready once an echo of ours shows
            r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            r.sendto(b"\x08\x00\xf7\xfe\x00\x01\x00\x00", ("127.0.0.1", 0))
            r.close()
            if select.select([tool.stdout], [], [], 0.5)[0]:
                lines.append(tool.stdout.readline())
                break
        assert lines, tool.stderr.read() if tool.poll() is not None else "not ready"
        child = subprocess.run([sys.executable, "-c", ICMP_CHILD, HERE], capture_output=True, text=True,
                               timeout=120)
        assert child.returncode == 0, child.stderr
        pid = int(child.stdout.split()[0])
        time.sleep(2)
    finally:
        tool.send_signal(2)
        out, err = tool.communicate(timeout=120)
    assert "undertow icmp: hooks: kprobes:" in err, err
    evs = [json.loads(x) for x in lines + out.splitlines() if x.startswith("{")]
    mine = [e for e in evs if e.get("pid") == pid and e.get("direction") == "out"]
    assert mine, (evs, err)
    e = mine[0]
    assert e["id"] == 0x4242 and e["seq"] == 7 and e["type_name"] == "echo-request" and e["socket"] == "raw", e
    assert e["peer"] == "127.0.0.1" and (e["comm"] == "ut_icmp_uring" or e["comm"].startswith("iou-")), e
