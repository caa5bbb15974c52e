"""Fleet outputs (issue 22) against real servers on loopback: ``nats-server -js`` and
``clickhouse-server`` (Debian bookworm's 18.16), both started here in temporary directories
and stopped by PID (tests/live/fleet_servers.py).

The events come from a real tool run: ``undertow dns`` watching a child process (its own
``comm``, so other programs' queries are filtered out) that sends DNS queries to 127.0.0.1:53
when told. Cases: events reach ClickHouse through NATS and ``undertow collect`` with their
provenance; NATS stopped during the run and restarted (spooled, resent, no duplicates); a
full stream (``discard: new`` -> 503) counted as lost; the direct ClickHouse sink; ClickHouse
refusing a batch (reported, not acknowledged, inserted by the next collector); nkey
authentication (the Ed25519 signature accepted by the real server).
"""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet_servers as fs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "src")
sys.path.insert(0, SRC)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2) for undertow dns)"),
    pytest.mark.skipif(fs.need(fs.NATS_BIN) is not None, reason=fs.need(fs.NATS_BIN) or ""),
]

ENV = dict(os.environ, PYTHONPATH=SRC)

SENDER = r'''
import socket, struct, sys
open("/proc/self/comm", "w").write(sys.argv[1])
def query(name):
    q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    for part in name.split("."):
        q += bytes([len(part)]) + part.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for line in sys.stdin:
    name, n = line.split()
    for i in range(int(n)):
        s.sendto(query(name), ("127.0.0.1", 53))
    print("sent", flush=True)
'''


class Run:
    """``undertow dns`` of one child's queries, with ``--output -`` and the given outputs."""

    def __init__(self, *outputs, extra=()):
        self.comm = "utfl" + uuid.uuid4().hex[:8]
        self.run_id = "test-" + uuid.uuid4().hex[:8]
        self.sender = subprocess.Popen([sys.executable, "-c", SENDER, self.comm], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, env=ENV)
        cmd = [sys.executable, "-m", "undertow", "dns", "--comm", self.comm, "--run-id", self.run_id,
               "--output", "-", *[a for o in outputs for a in ("--output", o)], *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.err = ""

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def send(self, name, n=1):
        self.sender.stdin.write(f"{name} {n}\n")
        self.sender.stdin.flush()
        assert self.sender.stdout.readline().startswith("sent")

    def ready(self, timeout=20):
        """Send a query every 0.1 s until the tool shows one (it is attached)."""
        end = time.monotonic() + timeout
        while not self.lines:
            assert self.proc.poll() is None, self.proc.stderr.read()
            assert time.monotonic() < end, "undertow dns showed nothing"
            self.send("ut-ready.example.test")
            time.sleep(0.1)

    def wait_for(self, name, n, timeout=10):
        end = time.monotonic() + timeout
        while sum(1 for d in self.lines if d.get("qname", "").startswith(name)) < n:
            assert time.monotonic() < end, f"{name}: not all {n} shown"
            time.sleep(0.05)

    def stop(self):
        """SIGINT (a responder's Ctrl-C) and the tool's report from standard error."""
        self.proc.send_signal(2)
        try:
            _, self.err = self.proc.communicate(timeout=15)
        finally:
            self.close()
        self.reader.join(5)
        return self.err

    def finish(self, timeout=30):
        """Wait for the end of --duration."""
        try:
            _, self.err = self.proc.communicate(timeout=timeout)
        finally:
            self.close()
        self.reader.join(5)
        return self.err

    def close(self):
        for p in (self.proc, self.sender):
            if p.poll() is None:
                p.kill()
                p.wait(5)
        if self.sender.stdin:
            self.sender.stdin.close()


def report(err, url_part):
    """``(sent, lost, text)`` from the tool's report line of the output whose URL holds ``url_part``."""
    for line in err.splitlines():
        if ": output " in line and url_part in line:
            m = re.search(r": (\d+) events sent, (\d+) lost", line)
            return int(m.group(1)), int(m.group(2)), line
    raise AssertionError(f"no report for {url_part} in:\n{err}")


def stream_messages(port, name):
    """Messages in stream ``name`` (0 while it does not exist yet)."""
    from undertow.fleet.jetstream import JSError

    try:
        return js_api(port, "STREAM.INFO." + name)["state"]["messages"]
    except JSError:
        return 0


def js_api(port, what, body=None):
    from undertow.fleet.jetstream import JetStream
    from undertow.fleet.nats import Connection

    js = JetStream(Connection("127.0.0.1", port).connect())
    try:
        return js.api(what, body or {})
    finally:
        js.conn.close()


def collect(src, ch_url, *extra, timeout=30):
    return subprocess.run([sys.executable, "-m", "undertow", "collect", "--from", src, "--to", ch_url,
                           *extra], capture_output=True, text=True, env=ENV, timeout=timeout)


@pytest.fixture(scope="module")
def clickhouse():
    why = fs.need(fs.CLICKHOUSE_BIN)
    if why:
        pytest.skip(why)
    c = fs.ClickHouse()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def nats():
    n = fs.Nats()
    try:
        yield n
    finally:
        n.stop()


def test_events_reach_clickhouse_through_nats_with_their_provenance(nats, clickhouse, tmp_path):
    subject = "undertow.dns"
    nurl = f"{nats.url}/{subject}"
    table = "t" + uuid.uuid4().hex[:8]
    curl = f"clickhouse+http://127.0.0.1:{clickhouse.http_port}/ir.{table}"
    r = Run(nurl, extra=["--create"])
    try:
        r.ready()
        r.send("pool.minexmr.example", 5)
        r.wait_for("pool.minexmr.example", 5)
    finally:
        err = r.stop()
    sent, lost, line = report(err, nurl)
    assert lost == 0, err
    assert sent == len(r.lines), err
    c = collect(nurl, curl, "--create", "--once")
    assert c.returncode == 0, c.stderr
    assert f"{sent} rows inserted" in c.stderr
    rows = [json.loads(x) for x in clickhouse.query(
        "SELECT hostname, machine_id, boot_id, run_id, tool, event_seq, wall_ns, "
        f"toUnixTimestamp(event_time) AS t, comm, "
        f"qname, pid FROM ir.{table} WHERE qname LIKE 'pool.minexmr.example%' ORDER BY event_seq FORMAT JSONEachRow"
    ).splitlines()]
    assert len(rows) == 5
    mid = open("/etc/machine-id").read().strip()
    bid = open("/proc/sys/kernel/random/boot_id").read().strip()
    for row in rows:
        assert row["hostname"] == socket.gethostname()
        assert row["machine_id"] == mid and row["boot_id"] == bid and row["run_id"] == r.run_id
        assert row["tool"] == "dns" and row["comm"] == r.comm
        assert int(row["pid"]) == r.sender.pid
        assert abs(int(row["wall_ns"]) / 1e9 - time.time()) < 120 and int(row["t"]) == int(row["wall_ns"]) // 10 ** 9
    # the standard output sink carried the same provenance (the NDJSON a sweep fetches back)
    assert {d["run_id"] for d in r.lines} == {r.run_id}
    assert [d["event_seq"] for d in r.lines] == list(range(1, len(r.lines) + 1))
    # ... which collect loads as it is, twice without a duplicate (FINAL), plain --json refused
    nd = tmp_path / "host.ndjson"
    nd.write_text("".join(json.dumps(d) + "\n" for d in r.lines) + '{"qname": "no provenance"}\n')
    t2 = "f" + uuid.uuid4().hex[:8]
    for _ in range(2):
        c = collect(str(nd), f"clickhouse+http://127.0.0.1:{clickhouse.http_port}/ir.{t2}", "--create")
        assert c.returncode == 1 and f"{len(r.lines)} rows inserted from 1 file" in c.stderr
        assert "1 lines without provenance skipped" in c.stderr
    assert clickhouse.query(f"SELECT count() FROM ir.{t2} FINAL FORMAT TSV").strip() == str(len(r.lines))


def test_nats_down_mid_run_spools_and_resends_without_duplicates(nats, clickhouse):
    nurl = f"{nats.url}/undertow.spool"
    r = Run(nurl + "?linger=5", extra=["--create"])
    try:
        r.ready()
        r.send("ut-before.example", 50)
        r.wait_for("ut-before", 50)
        time.sleep(0.5)  # acknowledged (batches leave within 0.2 s)
        nats.pause()
        r.send("ut-during.example", 50)  # the server is down: these wait in the spool
        r.wait_for("ut-during", 50)
        time.sleep(0.5)
        nats.start()
        r.send("ut-after.example", 50)
        r.wait_for("ut-after", 50)
        end = time.monotonic() + 10
        while stream_messages(nats.port, "UNDERTOW_SPOOL") < len(r.lines):
            assert time.monotonic() < end, "the spooled events were not resent"
            time.sleep(0.2)
    finally:
        err = r.stop()
    sent, lost, line = report(err, nurl)
    assert lost == 0, err
    assert sent == len(r.lines), err
    assert stream_messages(nats.port, "UNDERTOW_SPOOL") == len(r.lines)
    table = "s" + uuid.uuid4().hex[:8]
    c = collect(nurl, f"clickhouse+http://127.0.0.1:{clickhouse.http_port}/ir.{table}", "--create", "--once")
    assert c.returncode == 0, c.stderr
    n, uniq, during = clickhouse.query(
        f"SELECT count(), uniqExact(event_seq), countIf(qname LIKE 'ut-during%') FROM ir.{table} FORMAT TSV").split()
    assert int(n) == int(uniq) == len(r.lines) and int(during) == 50


def test_a_full_stream_is_counted_as_lost(nats):
    # a stream of at most 10 messages that refuses more (503 "maximum messages exceeded"); a spool of 16
    nurl = f"{nats.url}/undertow.full"
    r = Run(nurl + "?max_msgs=10&discard=new&spool=16&linger=0.5", extra=["--create"])
    try:
        r.ready()
        r.send("ut-full.example", 12)  # fills the stream: the last ones are refused and spooled
        r.wait_for("ut-full", 12)
        end = time.monotonic() + 5
        while stream_messages(nats.port, "UNDERTOW_FULL") < 10:
            assert time.monotonic() < end
            time.sleep(0.1)
        r.send("ut-full.example", 30)  # more than the spool holds
        r.wait_for("ut-full", 42)
        time.sleep(0.3)
    finally:
        err = r.stop()
    sent, lost, line = report(err, nurl)
    assert sent == 10 and sent + lost == len(r.lines), err
    assert "spool_full" in line and "maximum messages exceeded" in line, line
    assert stream_messages(nats.port, "UNDERTOW_FULL") == 10


def test_clickhouse_sink_and_a_refused_batch(nats, clickhouse):
    table = "d" + uuid.uuid4().hex[:8]
    direct = f"clickhouse+http://127.0.0.1:{clickhouse.http_port}/ir.{table}"
    # the reader user (readonly profile) may describe the table but not insert into it
    refused = f"clickhouse+http://reader@127.0.0.1:{clickhouse.http_port}/ir.{table}"
    nurl = f"{nats.url}/undertow.refused"
    r = Run(direct, nurl, extra=["--create"])
    try:
        r.ready()
        r.send("ut-direct.example", 20)
        r.wait_for("ut-direct", 20)
        time.sleep(0.5)
    finally:
        err = r.stop()
    sent, lost, _ = report(err, direct)
    assert lost == 0 and sent == len(r.lines), err
    assert clickhouse.query(f"SELECT count() FROM ir.{table} WHERE qname LIKE 'ut-direct%' FORMAT TSV").strip() == "20"
    # the same events through NATS: a collector whose inserts ClickHouse refuses reports it and
    # acknowledges nothing, so the next collector still gets them all
    c = collect(nurl, refused, "--once")
    assert c.returncode == 1, c.stderr
    assert "ClickHouse refused a batch" in c.stderr and "readonly" in c.stderr.lower(), c.stderr
    table2 = "e" + uuid.uuid4().hex[:8]
    c = collect(nurl, f"clickhouse+http://127.0.0.1:{clickhouse.http_port}/ir.{table2}", "--create", "--once")
    assert c.returncode == 0, c.stderr
    assert clickhouse.query(f"SELECT count() FROM ir.{table2} FORMAT TSV").strip() == str(len(r.lines))


def test_nkey_authentication(tmp_path):
    from undertow.fleet import ed25519
    from undertow.fleet.nats import Auth, Connection, NatsError

    seed = ed25519.encode_seed(os.urandom(32))
    pub = ed25519.public_key(seed)
    n = fs.Nats(extra_conf=f"authorization {{ users = [ {{ nkey: {pub} }} ] }}\n")
    try:
        with pytest.raises(NatsError, match="(?i)author"):
            Connection("127.0.0.1", n.port).connect()
        c = Connection("127.0.0.1", n.port, Auth(nkey_seed=seed)).connect()
        c.close()
        # the same through a sink URL's nkey= file
        f = tmp_path / "user.nk"
        f.write_text(seed + "\n")
        from undertow.fleet import urls
        from undertow.fleet.nats import auth_from_url

        u = urls.parse(f"{n.url}/x?nkey={f}")
        Connection("127.0.0.1", n.port, auth_from_url(u)).connect().close()
    finally:
        n.stop()


def test_user_password_and_tls(tmp_path):
    """A server that asks for TLS (its own CA, made here with openssl) and a user/password:
    the sink's URL options reach it; without the CA or the password it is refused."""
    import shutil as _sh

    from undertow.fleet import urls
    from undertow.fleet.nats import Connection, NatsError, auth_from_url

    if not _sh.which("openssl"):
        pytest.skip("openssl is not installed (to make the test's certificates)")
    d = str(tmp_path)

    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=undertow test CA",
         "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", f"{d}/srv.key",
         "-out", f"{d}/srv.csr")
    with open(f"{d}/ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", f"{d}/srv.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key", "-CAcreateserial",
         "-days", "1", "-extfile", f"{d}/ext", "-out", f"{d}/srv.pem")
    n = fs.Nats(extra_conf=f'tls {{ cert_file: "{d}/srv.pem", key_file: "{d}/srv.key" }}\n'
                           'authorization { user: collector, password: "s3cret pass" }\n')
    try:
        base = f"tls://collector:s3cret%20pass@127.0.0.1:{n.port}/x"
        Connection("127.0.0.1", n.port, auth_from_url(urls.parse(f"{base}?ca={d}/ca.pem"))).connect().close()
        with open(f"{d}/pw", "w") as f:
            f.write("s3cret pass\n")
        u = urls.parse(f"tls://collector@127.0.0.1:{n.port}/x?ca={d}/ca.pem&password_file={d}/pw")
        Connection("127.0.0.1", n.port, auth_from_url(u)).connect().close()
        with pytest.raises(NatsError, match="TLS"):  # the system's CAs do not know this one
            Connection("127.0.0.1", n.port, auth_from_url(urls.parse(base))).connect()
        bad = urls.parse(f"tls://collector:wrong@127.0.0.1:{n.port}/x?ca={d}/ca.pem")
        with pytest.raises(NatsError, match="(?i)author"):
            Connection("127.0.0.1", n.port, auth_from_url(bad)).connect()
    finally:
        n.stop()


def test_collect_once_fails_when_it_cannot_drain(nats):
    closed = fs.free_port()
    c = collect(f"nats://127.0.0.1:{closed}/a.b", f"clickhouse+http://127.0.0.1:{closed}/x.y", "--once")
    assert c.returncode == 1 and "cannot connect to nats://" in c.stderr and "Traceback" not in c.stderr
    from undertow.fleet.jetstream import JetStream
    from undertow.fleet.nats import Connection

    js = JetStream(Connection("127.0.0.1", nats.port).connect())
    js.create_stream("ONCE", ["once.x"])
    js.conn.publish("once.x", b'{"x": 1}')
    js.conn.flush()
    js.conn.close()
    c = collect(f"{nats.url}/once.x", f"clickhouse+http://127.0.0.1:{closed}/x.y", "--once")
    assert c.returncode == 1 and "cannot reach ClickHouse" in c.stderr and "0 rows inserted" in c.stderr
    # the message was not acknowledged: the consumer's ack floor is still before it
    assert js_api(nats.port, "CONSUMER.INFO.ONCE.undertow-collect")["ack_floor"]["stream_seq"] == 0
    c = collect(f"{nats.url}/nosuch.subject", f"clickhouse+http://127.0.0.1:{closed}/x.y", "--once")
    assert c.returncode == 1 and "no JetStream stream takes subject nosuch.subject" in c.stderr


def test_run_and_trace_take_output_too():
    """The same mechanism for the general commands: their JSON records, with provenance."""
    r = subprocess.run([sys.executable, "-m", "undertow", "run", "-e", 'BEGIN { printf("hi\\n"); exit(); }',
                        "--output", "-", "--run-id", "r-run"], capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert {"type": "printf", "data": "hi\n"}.items() <= lines[-1].items()
    assert {(d["tool"], d["run_id"]) for d in lines} == {("run", "r-run")}
    r = subprocess.run([sys.executable, "-m", "undertow", "run", "-e", "BEGIN { exit(); }", "-o", os.devnull,
                        "--output", "-"], capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 2 and "cannot be combined" in r.stderr
    p = subprocess.Popen([sys.executable, "-m", "undertow", "trace", "e sched/sched_process_exec", "--count", "1",
                          "--output", "-", "--duration", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=ENV)
    try:
        while p.poll() is None:  # execs until the tracer has seen one
            subprocess.run(["/bin/true"])
            time.sleep(0.1)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    assert p.returncode == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert lines and lines[0]["probe"] == "sched:sched_process_exec" and lines[0]["tool"] == "trace"
