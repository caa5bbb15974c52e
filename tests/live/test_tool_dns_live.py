"""`undertow dns`: queries sent to a tiny DNS listener the test runs on 127.0.0.1:53.

Every way a resolver sends a query is exercised by a child process: sendto() with an
address, connect()+send() (sendto without one), sendmsg() with and without an address,
sendmmsg() with two messages (glibc's A+AAAA), TCP with a length prefix, and a connect to
port 853 (DNS over TLS). Traffic stays on loopback; the listeners are closed after.
"""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2), port 53)")

CLIENT = r'''
import ctypes, socket, struct, sys
def query(name, qtype=1, qid=0x1234):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for part in name.split("."):
        q += bytes([len(part)]) + part.encode()
    return q + b"\x00" + struct.pack(">HH", qtype, 1)
A = ("127.0.0.1", 53)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(query("ut-sendto.example.test"), A)
s.sendmsg([query("ut-sendmsg-addr.example.test", 15)], [], 0, A)
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.connect(A)
c.send(query("ut-connected.example.test", 28))
c.sendmsg([query("ut-sendmsg.example.test", 16)])
# sendmmsg(2) with two messages, as glibc's resolver sends A and AAAA
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(iovec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
bufs = [ctypes.create_string_buffer(query(n, t)) for n, t in (("ut-mmsg.example.test", 1), ("ut-mmsg.example.test", 28))]
iovs = (iovec * 2)(*[iovec(ctypes.cast(b, ctypes.c_void_p), len(b.raw) - 1) for b in bufs])
msgs = (mmsghdr * 2)()
for i in range(2):
    msgs[i].hdr.iov = ctypes.pointer(iovs[i]); msgs[i].hdr.iovlen = 1
libc = ctypes.CDLL(None, use_errno=True)
n = libc.sendmmsg(c.fileno(), msgs, 2, 0)
assert n == 2, ctypes.get_errno()
t = socket.create_connection(("127.0.0.1", 53))
q = query("ut-tcp.example.test")
t.sendall(struct.pack(">H", len(q)) + q)
t.close()
d = socket.create_connection(("127.0.0.1", 853))
d.sendall(b"\x16\x03\x01\x00\x10" + b"client-hello-bits")
d.close()
'''


def _listen():
    socks = []
    try:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 53))
        socks.append(u)
        for port in (53, 853):
            t = socket.socket()
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind(("127.0.0.1", port))
            t.listen(8)
            socks.append(t)
    except OSError as e:
        for s in socks:
            s.close()
        pytest.skip(f"cannot listen on 127.0.0.1:53/853 here: {e}")
    return socks


def test_dns_queries_with_process_and_every_send_path():
    socks = _listen()
    try:
        tool = subprocess.Popen([sys.executable, "-m", "undertow", "dns", "--json", "--duration", "120",
                                 "--summary"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        deadline = time.monotonic() + 90
        # ready when its programs are attached: send a query until one is reported
        ready = False
        while time.monotonic() < deadline and not ready:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ready\x04test\x00\x00\x01\x00\x01",
                     ("127.0.0.1", 53))
            s.close()
            time.sleep(0.3)
            ready = tool.poll() is not None or _readable(tool)
        child = subprocess.run([sys.executable, "-c", CLIENT], capture_output=True, text=True, timeout=60)
        assert child.returncode == 0, child.stderr
        time.sleep(1.5)
        tool.send_signal(2)
        out, err = tool.communicate(timeout=120)
    finally:
        for s in socks:
            s.close()
    evs = [json.loads(l) for l in out.splitlines() if l.startswith("{") and '"summary"' not in l]
    assert any(e["qname"] == "ready.test." and e["pid"] == os.getpid() for e in evs), (out, err)
    mine = {(e["syscall"], e["qname"], e["qtype"]) for e in evs if e.get("comm", "").startswith("python")}
    assert ("sendto", "ut-sendto.example.test.", "A") in mine, (out, err)
    assert ("sendmsg", "ut-sendmsg-addr.example.test.", "MX") in mine
    assert ("sendto", "ut-connected.example.test.", "AAAA") in mine
    assert ("sendmsg", "ut-sendmsg.example.test.", "TXT") in mine
    assert ("sendmmsg", "ut-mmsg.example.test.", "A") in mine and ("sendmmsg", "ut-mmsg.example.test.", "AAAA") in mine
    tcp = [e for e in evs if e["qname"] == "ut-tcp.example.test."]
    assert tcp and tcp[0]["transport"] == "tcp" and tcp[0]["syscall"] in ("sendto", "write")
    dot = [e for e in evs if e["transport"] == "dot"]
    assert dot and dot[0]["resolver_port"] == 853
    one = next(e for e in evs if e["qname"] == "ut-sendto.example.test.")
    assert one["resolver"] == "127.0.0.1" and one["resolver_port"] == 53 and one["pid"] > 0
    assert "ppid" in one and "exe" in one
    assert any('"summary"' in l for l in out.splitlines())


def _readable(p):
    import select

    r, _, _ = select.select([p.stdout], [], [], 0)
    return bool(r)


ANSWER_CLIENT = r'''
import socket, struct
q = struct.pack(">HHHHHH", 0x4321, 0x0100, 1, 0, 0, 0) + b"\x09ut-answer\x07example\x04test\x00" + struct.pack(">HH", 1, 1)
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(10)
c.sendto(q, ("127.0.0.1", 53))
c.recvfrom(512)
'''


def test_dns_answers_read_by_the_process():
    import threading

    try:
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("127.0.0.1", 53))
    except OSError as e:
        pytest.skip(f"cannot listen on 127.0.0.1:53 here: {e}")
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve():  # answer every query with A 10.1.2.3
        while not stop.is_set():
            try:
                data, peer = srv.recvfrom(512)
            except OSError:
                continue
            srv.sendto(data[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + data[12:] +
                       b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + socket.inet_aton("10.1.2.3"), peer)
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        tool = subprocess.Popen([sys.executable, "-m", "undertow", "dns", "--answers", "--json", "--duration", "120"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            subprocess.run([sys.executable, "-c", ANSWER_CLIENT], timeout=30)
            if _readable(tool):
                break
        child = subprocess.run([sys.executable, "-c", ANSWER_CLIENT], timeout=30)
        assert child.returncode == 0
        time.sleep(1.0)
        tool.send_signal(2)
        out, err = tool.communicate(timeout=120)
    finally:
        stop.set()
        th.join()
        srv.close()
    evs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    ans = [e for e in evs if e.get("kind") == "answer" and e["qname"] == "ut-answer.example.test."]
    assert ans, (out, err)
    assert ans[0]["rcode"] == "NOERROR" and ans[0]["answers"][0]["data"] == "10.1.2.3"
    assert ans[0]["answers"][0]["type"] == "A" and ans[0]["resolver"] == "127.0.0.1"
    assert any(e.get("kind") == "query" and e["qname"] == "ut-answer.example.test." for e in evs)
