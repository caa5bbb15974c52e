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


# -- issue 18: state before the start, TCP framing, batches, long names

PRE = r'''
import socket, struct, sys
def query(name, qtype=1, qid=0x1234):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for part in name.split("."):
        q += bytes([len(part)]) + part.encode()
    return q + b"\x00" + struct.pack(">HH", qtype, 1)
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.connect(("127.0.0.1", 53))
t = socket.create_connection(("127.0.0.1", 53))
print("ready", flush=True)
sys.stdin.readline()                       # the tool runs now: send on the old sockets
c.send(query("ut-pre-udp.example.test"))
m = query("ut-pre-tcp.example.test")
t.send(struct.pack(">H", len(m)) + m)
c.settimeout(5)
c.recv(512)
'''

MORE = r'''
import ctypes, os, socket, struct, time
def query(name, qtype=1, qid=0x1234):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for part in name.split("."):
        q += bytes([len(part)]) + part.encode()
    return q + b"\x00" + struct.pack(">HH", qtype, 1)
A = ("127.0.0.1", 53)
t = socket.create_connection(A)            # dig +tcp: prefix and message in one writev
m = query("ut-writev.example.test")
os.writev(t.fileno(), [struct.pack(">H", len(m)), m])
t.close()
t = socket.create_connection(A)            # the prefix in a write of its own
m = query("ut-split.example.test")
t.send(struct.pack(">H", len(m)))
time.sleep(0.05)
t.send(m)
t.close()
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(iovec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
libc = ctypes.CDLL(None, use_errno=True)
def mmsg(fd, names, addr=False):
    bufs = [ctypes.create_string_buffer(query(n)) for n in names]
    iovs = (iovec * len(names))(*[iovec(ctypes.cast(b, ctypes.c_void_p), len(b.raw) - 1) for b in bufs])
    msgs = (mmsghdr * len(names))()
    sa = ctypes.create_string_buffer(struct.pack("<HH4s8x", 2, socket.htons(53), socket.inet_aton("127.0.0.1")))
    for i in range(len(names)):
        msgs[i].hdr.iov = ctypes.pointer(iovs[i])
        msgs[i].hdr.iovlen = 1
        if addr:
            msgs[i].hdr.name = ctypes.cast(sa, ctypes.c_void_p)
            msgs[i].hdr.namelen = 16
    assert libc.sendmmsg(fd, msgs, len(names), 0) == len(names), ctypes.get_errno()
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.connect(A)
mmsg(c.fileno(), ["ut-mm%d.example.test" % i for i in range(1, 6)])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
mmsg(u.fileno(), ["ut-mmaddr%d.example.test" % i for i in range(1, 4)], addr=True)
u.sendto(query(".".join(["a" * 60] * 5) + ".example.test", 16, qid=0x4455), A)
'''


class Responder:
    """A DNS responder on 127.0.0.1:53, UDP and TCP, written with ``socket``: every query is
    answered A 10.1.2.3 (TCP frames read with their length prefix)."""

    def __init__(self):
        import threading

        self.socks = _listen()[:2]  # UDP 53, TCP 53
        for s in self.socks:
            s.settimeout(0.2)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._udp, self._tcp)]
        for th in self.threads:
            th.start()

    @staticmethod
    def answer(q):
        return (q[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + q[12:] +
                b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + socket.inet_aton("10.1.2.3"))

    def _udp(self):
        u = self.socks[0]
        while not self.stop.is_set():
            try:
                data, peer = u.recvfrom(4096)
                if len(data) >= 12:
                    u.sendto(self.answer(data), peer)
            except OSError:
                continue

    def _tcp(self):
        conns = []
        while not self.stop.is_set():
            try:
                c, _ = self.socks[1].accept()
                c.settimeout(0.2)
                conns.append(c)
            except OSError:
                pass
            for c in list(conns):
                try:
                    data = c.recv(4096)
                except OSError:
                    continue
                if not data:
                    conns.remove(c)
                    c.close()
                elif len(data) > 14:
                    r = self.answer(data[2:])
                    c.sendall(len(r).to_bytes(2, "big") + r)
        for c in conns:
            c.close()

    def close(self):
        self.stop.set()
        for th in self.threads:
            th.join()
        for s in self.socks:
            s.close()


def _wait_ready(tool, deadline=90):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ready\x04test\x00\x00\x01\x00\x01",
                 ("127.0.0.1", 53))
        s.close()
        if tool.poll() is not None or select_readable(tool, 0.3):
            return
    pytest.fail("the tool never reported the probe query")


def select_readable(p, timeout):
    import select

    return bool(select.select([p.stdout], [], [], timeout)[0])


@pytest.fixture(scope="module")
def issue18_events():
    """One `undertow dns --json` run over every client of issue 18 (sockets connected before
    the start included); the events, and the pid of the process that connected early."""
    srv = Responder()
    pre = tool = None
    try:
        pre = subprocess.Popen([sys.executable, "-c", PRE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert pre.stdout.readline().strip() == "ready"
        tool = subprocess.Popen([sys.executable, "-m", "undertow", "dns", "--json", "--duration", "120"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_ready(tool)
        pre.stdin.write("go\n")
        pre.stdin.flush()
        assert pre.wait(timeout=30) == 0
        child = subprocess.run([sys.executable, "-c", MORE], capture_output=True, text=True, timeout=60)
        assert child.returncode == 0, child.stderr
        time.sleep(1.0)
    finally:
        out, err = "", ""
        if tool is not None:
            tool.send_signal(2)
            out, err = tool.communicate(timeout=120)
        if pre is not None and pre.poll() is None:
            pre.kill()
            pre.wait()
        srv.close()
    evs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return evs, pre.pid, err


def _by_name(evs, name):
    return [e for e in evs if e.get("qname") == name]


def test_dns_sockets_connected_before_the_start(issue18_events):
    evs, pre_pid, err = issue18_events
    udp = _by_name(evs, "ut-pre-udp.example.test.")
    assert udp and udp[0]["pid"] == pre_pid and udp[0]["resolver"] == "127.0.0.1", (evs, err)
    assert udp[0]["transport"] == "udp" and udp[0]["syscall"] == "sendto"
    tcp = _by_name(evs, "ut-pre-tcp.example.test.")
    assert tcp and tcp[0]["pid"] == pre_pid and tcp[0]["transport"] == "tcp" and tcp[0]["resolver"] == "127.0.0.1"


def test_dns_tcp_writev_and_prefix_written_alone(issue18_events):
    evs, _, err = issue18_events
    wv = _by_name(evs, "ut-writev.example.test.")
    assert wv and wv[0]["syscall"] == "writev" and wv[0]["transport"] == "tcp", (evs, err)
    sp = _by_name(evs, "ut-split.example.test.")
    assert sp and sp[0]["transport"] == "tcp" and sp[0]["resolver_port"] == 53


def test_dns_every_message_of_a_sendmmsg_batch(issue18_events):
    evs, _, err = issue18_events
    for i in range(1, 6):
        m = _by_name(evs, f"ut-mm{i}.example.test.")
        assert m and m[0]["syscall"] == "sendmmsg" and m[0]["batch"] == 5, (i, evs, err)
    for i in range(1, 4):
        m = _by_name(evs, f"ut-mmaddr{i}.example.test.")
        assert m and m[0]["resolver"] == "127.0.0.1" and m[0]["syscall"] == "sendmmsg", (i, evs, err)


def test_dns_name_longer_than_255_bytes(issue18_events):
    evs, _, err = issue18_events
    long = [e for e in evs if e.get("id") == 0x4455]
    assert long, (evs, err)
    assert long[0]["qname"].startswith("a" * 60 + ".") and long[0]["qtype"] == "TXT"
    assert "longer than 255" in long[0]["error"] and long[0]["transport"] == "udp"


def test_dns_events_carry_namespaces(issue18_events):
    evs, _, _ = issue18_events
    mine = [e for e in evs if e.get("qname")]
    net = int(os.readlink("/proc/self/ns/net").split("[")[1].rstrip("]"))
    pidns = int(os.readlink("/proc/self/ns/pid").split("[")[1].rstrip("]"))
    bad = [(e["qname"], e["syscall"], e["netns"], e["pidns"]) for e in mine if (e["netns"], e["pidns"]) != (net, pidns)]
    assert mine and not bad, (bad, net, pidns)
