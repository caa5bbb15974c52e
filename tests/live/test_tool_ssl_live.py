"""`undertow ssl`: the plaintext of known requests and responses over TLS on 127.0.0.1.

A Python `ssl` server (OpenSSL) with a throwaway self-signed certificate made in a temp
dir answers every request with a fixed response. Clients: Python's `ssl` module (OpenSSL's
SSL_write_ex/SSL_read_ex), curl (SSL_write/SSL_read), gnutls-cli (gnutls_record_send/recv,
Debian's gnutls-bin). One client is started and connected before undertow, the others after;
one loads a copy of libssl from a temp dir (a library file undertow finds at exec/mmap).
Each test waits until the tool shows a record of its own before the measured request.
"""

import base64
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2), uprobes)")

#: Under the lab's emulation (~15x slower user space, ~9 s per Python child) only the test whose
#: hooks depend on the kernel's structures runs (the peer read through BTF: task->files->fdt,
#: socket->sk->__sk_common); library discovery and the uprobes themselves are the host's.
LAB = os.environ.get("UNDERTOW_LAB") == "1"
host_only = pytest.mark.skipif(LAB, reason="host only: library discovery does not change with the kernel")

RESPONSE = b"HTTP/1.0 200 OK\r\nContent-Length: 20\r\n\r\nundertow-ssl-reply!\n"

SERVER = r"""
import socket, ssl, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0)); ls.listen(64)
print(ls.getsockname()[1], flush=True)
RESPONSE = %r
def serve(c):
    try:
        s = ctx.wrap_socket(c, server_side=True)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                return
            data += chunk
        s.sendall(RESPONSE)
        s.close()
    except (OSError, ssl.SSLError):
        pass
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
""" % (RESPONSE,)

# connects, then sends each line read from stdin as a request (\r\n\r\n appended) and
# prints the response's length; a line "loop N" sends N requests 0.3 s apart on new connections
CLIENT = r"""
import socket, ssl, sys, time
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
port = int(sys.argv[1])
def ask(s, req):
    s.sendall(req)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    print(len(data), flush=True)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
print("connected", s.getsockname()[1], flush=True)
for line in sys.stdin:
    line = line.strip()
    if line.startswith("loop "):
        for i in range(int(line.split()[1])):
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port))) as t:
                ask(t, b"GET /loop/%d HTTP/1.0\r\n\r\n" % i)
            time.sleep(0.3)
        continue
    ask(s, line.encode() + b"\r\n\r\n")
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command (a throwaway certificate)")
    d = tmp_path_factory.mktemp("ssl")
    key, cert = str(d / "key.pem"), str(d / "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=60)
    srv = subprocess.Popen([sys.executable, "-c", SERVER, cert, key], stdout=subprocess.PIPE, text=True)
    try:
        port = int(srv.stdout.readline())
        yield srv.pid, port, d
    finally:
        srv.kill()
        srv.wait(timeout=30)


def _tool(*extra):
    env = dict(os.environ)
    return subprocess.Popen([sys.executable, "-m", "undertow", "ssl", "--json", "--max-bytes", "512",
                             "--duration", "900", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


class Records:
    """The tool's JSON records, read as they come."""

    def __init__(self, tool):
        self.tool = tool
        self.all = []
        self._buf = ""

    def read(self, timeout):
        if select.select([self.tool.stdout], [], [], timeout)[0]:
            chunk = os.read(self.tool.stdout.fileno(), 1 << 20).decode()
            self._buf += chunk
            *lines, self._buf = self._buf.split("\n")
            for line in lines:
                if line.startswith("{") and '"data_base64"' in line:
                    self.all.append(json.loads(line))
            return bool(chunk)
        return False

    def wait(self, pred, timeout=60.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            hit = [r for r in self.all if pred(r)]
            if hit:
                return hit
            if not self.read(0.3) and self.tool.poll() is not None:
                break
        return [r for r in self.all if pred(r)]


def _holder(soname):
    """A process that maps the library ``soname`` (ctypes) until killed, or None when it cannot
    be loaded: started before undertow, it makes the library's file one undertow finds at its
    start (on a host where nothing else maps it, a client started later would otherwise be
    the first to map it: that is test_new_library_file's case)."""
    p = subprocess.Popen([sys.executable, "-c", "import ctypes, sys\n"
                          "try:\n    ctypes.CDLL(sys.argv[1])\nexcept OSError:\n    print('no', flush=True)\n"
                          "else:\n    print('ok', flush=True)\nsys.stdin.read()", soname],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if p.stdout.readline().strip() != "ok":
        p.kill()
        p.wait(timeout=30)
        return None
    return p


def _data(r):
    return base64.b64decode(r["data_base64"])


def _stop(tool):
    t0 = time.monotonic()
    tool.send_signal(signal.SIGINT)
    try:
        out, err = tool.communicate(timeout=60)
    finally:
        if tool.poll() is None:
            tool.kill()
    return time.monotonic() - t0, out, err


def _ready(recs, port, python_pids):
    """Python clients make TLS requests until the tool shows one (it is attached; a start
    takes 10-60 s in the lab)."""
    end = time.monotonic() + 240
    while time.monotonic() < end:
        c = subprocess.run([sys.executable, "-c", CLIENT, str(port)], input="GET /ready HTTP/1.0\n",
                           capture_output=True, text=True, timeout=60)
        assert c.returncode == 0, c.stderr
        if recs.wait(lambda r: _data(r).startswith(b"GET /ready"), timeout=1.0):
            return
    pytest.fail("undertow ssl showed no record of the readiness requests")


def test_clients_before_and_after(server):
    spid, port, d = server
    # a client connected (handshake done) before undertow starts
    before = subprocess.Popen([sys.executable, "-c", CLIENT, str(port)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    gnutls_holder = _holder("libgnutls.so.30") if shutil.which("gnutls-cli") else None
    tool = None
    try:
        line = before.stdout.readline().split()
        assert line[0] == "connected"
        tool = _tool()
        recs = Records(tool)
        _ready(recs, port, [])
        before.stdin.write("GET /before HTTP/1.0\n")
        before.stdin.flush()
        assert int(before.stdout.readline()) == len(RESPONSE)
        curl_req = None
        if shutil.which("curl"):
            c = subprocess.run(["curl", "-sk", "--http1.1", "-H", "X-Test: ut-curl", f"https://127.0.0.1:{port}/curl"],
                               capture_output=True, timeout=60)
            assert c.stdout == RESPONSE[RESPONSE.index(b"\r\n\r\n") + 4:], c
            curl_req = True
        gnutls = None
        if gnutls_holder is not None:
            g = subprocess.Popen(["gnutls-cli", "--insecure", "--port", str(port), "127.0.0.1"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                g.stdin.write(b"GET /gnutls HTTP/1.0\r\n\r\n")
                g.stdin.flush()  # stdin stays open until the reply came (EOF ends the session)
                gout, end = b"", time.monotonic() + 60
                while b"undertow-ssl-reply!" not in gout and time.monotonic() < end:
                    if select.select([g.stdout], [], [], 1.0)[0]:
                        chunk = os.read(g.stdout.fileno(), 65536)
                        if not chunk:
                            break
                        gout += chunk
                g.stdin.close()
                g.wait(timeout=60)
            finally:
                if g.poll() is None:
                    g.kill()
                    g.wait(timeout=30)
            assert b"undertow-ssl-reply!" in gout, gout
            gnutls = g.pid
        got = recs.wait(lambda r: r["pid"] == before.pid and r["direction"] == "read")
        want = [r for r in recs.all if r["pid"] == before.pid]
        w = [r for r in want if r["direction"] == "write"]
        assert w and _data(w[0]) == b"GET /before HTTP/1.0\r\n\r\n", want
        assert w[0]["function"] == "SSL_write_ex" and w[0]["library_kind"] == "openssl"
        assert w[0]["length"] == len(b"GET /before HTTP/1.0\r\n\r\n") and not w[0]["truncated"]
        assert w[0]["peer"] == f"127.0.0.1:{port}" and w[0]["peer_port"] == port and w[0]["fd"] >= 0, w[0]
        assert b"".join(_data(r) for r in got) == RESPONSE, got
        # the server's side of a request made after the start (its thread was already waiting in
        # SSL_read_ex for the "before" client when undertow attached: that call is not seen, as
        # a uretprobe needs the entry): the client's port as the peer
        srv = recs.wait(lambda r: r["pid"] == spid and _data(r) == b"GET /ready HTTP/1.0\r\n\r\n")
        assert srv and srv[0]["direction"] == "read" and srv[0]["peer_addr"] == "127.0.0.1" and srv[0]["tid"] != spid
        sw = recs.wait(lambda r: r["pid"] == spid and r["direction"] == "write" and _data(r) == RESPONSE)
        assert sw and sw[0]["data"] == RESPONSE.decode().replace("\r", "\\r").replace("\n", "\\n")
        if curl_req:
            cw = recs.wait(lambda r: r["comm"] == "curl" and r["direction"] == "write")
            assert cw and cw[0]["function"] == "SSL_write" and cw[0]["peer"] == f"127.0.0.1:{port}", cw
            assert _data(cw[0]).startswith(b"GET /curl HTTP/1.1\r\n") and b"\r\nX-Test: ut-curl\r\n" in _data(cw[0])
            cr = recs.wait(lambda r: r["comm"] == "curl" and r["direction"] == "read")
            assert b"".join(_data(r) for r in cr) == RESPONSE and cr[0]["function"] == "SSL_read"
        if gnutls:
            gw = recs.wait(lambda r: r["pid"] == gnutls and r["direction"] == "write")
            assert gw and gw[0]["function"] == "gnutls_record_send" and gw[0]["library_kind"] == "gnutls"
            assert _data(gw[0]) == b"GET /gnutls HTTP/1.0\r\n\r\n" and gw[0]["peer"] == f"127.0.0.1:{port}"
            gr = recs.wait(lambda r: r["pid"] == gnutls and r["direction"] == "read")
            assert b"".join(_data(r) for r in gr) == RESPONSE
        took, out, err = _stop(tool)
        tool = None
        assert took < 1.5, (took, err)
        assert "Traceback" not in err, err
    finally:
        for p in (before, gnutls_holder, tool):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(timeout=30)
    if gnutls_holder is None:
        pytest.skip("gnutls-cli or libgnutls.so.30 missing (Debian gnutls-bin): the GnuTLS part was not run")


@host_only
def test_new_library_file(server, tmp_path):
    """A copy of libssl (a file no process mapped when undertow started), loaded by a client
    started later: found when the client maps it, shown with the copy's path."""
    import ssl as _ssl  # noqa: F401 - maps libssl here

    _spid, port, _d = server
    src = _libssl_of_python()
    if src is None:
        pytest.skip("this Python's ssl module does not map libssl")
    libdir = tmp_path / "lib"
    libdir.mkdir()
    copy = libdir / os.path.basename(src)
    shutil.copyfile(src, copy)
    tool = _tool("-v")
    client = None
    try:
        recs = Records(tool)
        _ready(recs, port, [])
        env = dict(os.environ, LD_LIBRARY_PATH=str(libdir))
        client = subprocess.Popen([sys.executable, "-c", CLIENT, str(port)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env)
        assert client.stdout.readline().startswith("connected")
        client.stdin.write("loop 40\n")
        client.stdin.flush()
        hit = recs.wait(lambda r: r["pid"] == client.pid and r["direction"] == "write", timeout=30)
        assert hit, recs.all[-5:]
        assert hit[0]["library"] == str(copy) and hit[0]["library_kind"] == "openssl"
        assert _data(hit[0]).startswith(b"GET /loop/")
        took, out, err = _stop(tool)
        tool = None
        assert "attached to openssl " + str(copy) in err, err
    finally:
        if client is not None:
            client.kill()
            client.wait(timeout=30)
        if tool is not None:
            tool.kill()
            tool.wait(timeout=30)


def _static_openssl():
    """(include dir, libssl.a, libcrypto.a) or None (Debian's libssl-dev has them)."""
    if not shutil.which("cc"):
        return None
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"):
        ssl_a, crypto_a = os.path.join(d, "libssl.a"), os.path.join(d, "libcrypto.a")
        if os.path.exists(ssl_a) and os.path.exists(crypto_a) and os.path.exists("/usr/include/openssl/ssl.h"):
            return ssl_a, crypto_a
    return None


@host_only
def test_static_openssl(server, tmp_path):
    """An executable with OpenSSL linked in (its .symtab has SSL_write), started after undertow."""
    _spid, port, _d = server
    libs = _static_openssl()
    if libs is None:
        pytest.skip("needs cc and OpenSSL's static libraries (Debian libssl-dev)")
    exe = str(tmp_path / "static_tls_client")
    src = os.path.join(os.path.dirname(__file__), "ssl_static_client.c")
    subprocess.run(["cc", "-O1", "-o", exe, src, libs[0], libs[1], "-lpthread", "-ldl"], check=True,
                   capture_output=True, timeout=120)
    tool = _tool("-v")
    client = None
    try:
        recs = Records(tool)
        _ready(recs, port, [])
        client = subprocess.Popen([exe, str(port), "60"], stdout=subprocess.PIPE)
        hit = recs.wait(lambda r: r["pid"] == client.pid and r["direction"] == "write", timeout=30)
        assert hit, recs.all[-5:]
        assert hit[0]["library"] == exe and hit[0]["static"] is True and hit[0]["function"] == "SSL_write"
        assert _data(hit[0]).startswith(b"GET /static/") and hit[0]["peer"] == f"127.0.0.1:{port}"
        rd = recs.wait(lambda r: r["pid"] == client.pid and r["direction"] == "read")
        assert rd and rd[0]["function"] == "SSL_read" and _data(rd[0]) == RESPONSE
        _took, _out, err = _stop(tool)
        tool = None
        assert "Traceback" not in err, err
    finally:
        if client is not None:
            client.kill()
            client.wait(timeout=30)
        if tool is not None:
            tool.kill()
            tool.wait(timeout=30)


def _talk(cmd, request, want, timeout=60):
    """Run a TLS client command: the request on its stdin, kept open until ``want`` is in
    its output (EOF on stdin ends these clients' sessions); returns (pid, output)."""
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        p.stdin.write(request)
        p.stdin.flush()
        got, end = b"", time.monotonic() + timeout
        while want not in got and time.monotonic() < end:
            if select.select([p.stdout], [], [], 1.0)[0]:
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    break
                got += chunk
        p.stdin.close()
        try:
            p.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass  # tstclnt may wait for the server's close_notify: it is ended below
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=30)
    return p.pid, got


@host_only
def test_nss_tstclnt(server, tmp_path):
    """NSS (Debian libnss3-tools' tstclnt): PR_Send/PR_Recv on the SSL layer's descriptor;
    NSPR's I/O on plain files and sockets (its certificate database) is not shown."""
    _spid, port, _d = server
    if not (shutil.which("tstclnt") and shutil.which("certutil")):
        pytest.skip("needs tstclnt and certutil (Debian libnss3-tools)")
    db = tmp_path / "nssdb"
    db.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True, capture_output=True,
                   timeout=60)
    # a process that maps libnspr4 before undertow starts: the file is probed from the start
    holder = _holder("libnspr4.so")
    if holder is None:
        pytest.skip("libnspr4.so cannot be loaded")
    tool = None
    try:
        tool = _tool()
        recs = Records(tool)
        _ready(recs, port, [])
        pid, got = _talk(["tstclnt", "-d", f"sql:{db}", "-h", "127.0.0.1", "-p", str(port), "-o"],
                         b"GET /nss HTTP/1.0\r\n\r\n", b"undertow-ssl-reply!")
        assert b"undertow-ssl-reply!" in got, got
        w = recs.wait(lambda r: r["pid"] == pid and r["direction"] == "write")
        assert w and w[0]["library_kind"] == "nss" and w[0]["function"] in ("PR_Send", "PR_Write"), w
        assert _data(w[0]) == b"GET /nss HTTP/1.0\r\n\r\n" and w[0]["peer"] == f"127.0.0.1:{port}"
        rd = recs.wait(lambda r: r["pid"] == pid and r["direction"] == "read")
        assert b"".join(_data(r) for r in rd) == RESPONSE, rd
        # only TLS: no record of the NSS database files tstclnt read and wrote through NSPR
        assert all(r["peer"] == f"127.0.0.1:{port}" for r in recs.all if r["pid"] == pid)
        _stop(tool)
        tool = None
    finally:
        holder.kill()
        holder.wait(timeout=30)
        if tool is not None:
            tool.kill()
            tool.wait(timeout=30)


def _libssl_of_python():
    with open("/proc/self/maps") as f:
        for line in f:
            if "libssl.so" in line:
                return line.split(None, 5)[5].strip()
    return None


@host_only
def test_deleted_library_and_other_mount_namespace(server, tmp_path):
    """Two clients started before undertow: one uses a copy of libssl that was then deleted
    (maps show "(deleted)"), one runs in its own mount namespace where another copy is
    bind-mounted over the system's libssl path. Both are probed through map_files (the
    file each really maps), not through the path their maps show."""
    import ssl as _ssl  # noqa: F401 - maps libssl here

    _spid, port, _d = server
    src = _libssl_of_python()
    if src is None:
        pytest.skip("this Python's ssl module does not map libssl")
    gone_dir = tmp_path / "gone"
    gone_dir.mkdir()
    shutil.copyfile(src, gone_dir / os.path.basename(src))
    env = dict(os.environ, LD_LIBRARY_PATH=str(gone_dir))
    deleted = subprocess.Popen([sys.executable, "-c", CLIENT, str(port)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env)
    inns = None
    nsdir = tmp_path / "ns"
    nsdir.mkdir()
    copy = nsdir / "libssl-copy.so"
    shutil.copyfile(src, copy)
    tool = None
    try:
        assert deleted.stdout.readline().startswith("connected")
        os.unlink(gone_dir / os.path.basename(src))
        if shutil.which("unshare"):
            script = (f"mount --bind {copy} {src} && exec {sys.executable} -c \"$0\" {port}")
            inns = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, CLIENT],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            first = inns.stdout.readline()
            if not first.startswith("connected"):
                inns.kill()
                inns.wait(timeout=30)
                inns = None
        if inns is not None:
            # the namespace's client maps the copy under the system's path
            with open(f"/proc/{inns.pid}/maps") as f:
                ino = [int(line.split()[4]) for line in f if line.rstrip().endswith(src)]
            assert ino and set(ino) == {os.stat(copy).st_ino}, ino
        tool = _tool("-v")
        recs = Records(tool)
        _ready(recs, port, [])
        deleted.stdin.write("GET /deleted HTTP/1.0\n")
        deleted.stdin.flush()
        assert int(deleted.stdout.readline()) == len(RESPONSE)
        w = recs.wait(lambda r: r["pid"] == deleted.pid and r["direction"] == "write")
        assert w and _data(w[0]) == b"GET /deleted HTTP/1.0\r\n\r\n", recs.all[-5:]
        assert w[0]["library"] == str(gone_dir / os.path.basename(src)) + " (deleted)", w[0]
        if inns is not None:
            inns.stdin.write("GET /mntns HTTP/1.0\n")
            inns.stdin.flush()
            assert int(inns.stdout.readline()) == len(RESPONSE)
            m = recs.wait(lambda r: r["pid"] == inns.pid and r["direction"] == "write")
            # the path as the process sees it (its namespace), the file being the copy
            assert m and _data(m[0]) == b"GET /mntns HTTP/1.0\r\n\r\n" and m[0]["library"] == src, recs.all[-5:]
        _took, _out, err = _stop(tool)
        tool = None
        if inns is not None:  # the copy was found as a file of its own, through that process
            assert f"openssl {src} (pid {inns.pid})" in err, err
    finally:
        for p in (deleted, inns, tool):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(timeout=30)
    if inns is None:
        pytest.skip("the mount-namespace part did not run (no unshare, or it could not bind-mount)")


@host_only
def test_a_file_that_does_not_attach_is_left_out():
    """A "library" whose probes cannot attach (a file without the function it claims, as a
    crafted file could be) is left out with a warning; the others are attached."""
    import ssl as _ssl  # noqa: F401 - maps libssl in this process

    from undertow.tools.ssl_libs import LibraryScanner, TlsLibrary
    from undertow.tools.ssl_run import SslSessions

    sc = LibraryScanner(static=False)
    good = sc.scan_all([os.getpid()])
    if not good:
        pytest.skip("this Python maps no TLS library")
    fd = os.open("/bin/true", os.O_RDONLY)
    bad = TlsLibrary("openssl", ["SSL_write"], "/fake/libssl.so.3", 1, 0, 1, fd)
    warns, notes = [], []
    s = SslSessions(sc, pid=None, settings={"bufsize": 64}, watch=True, warn=warns.append, note=notes.append)
    try:
        s.start(good + [bad])
        assert s.main is not None and len(s.extra) == len(good), (warns, notes)
        assert len(warns) == 1 and "/fake/libssl.so.3" in warns[0] and "SSL_write" in warns[0], warns
    finally:
        s.close()
        bad.close()
