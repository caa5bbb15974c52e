"""Fleet outputs (issue 22): URLs, provenance, the fan-out, the spool, the NATS protocol parser,
Ed25519 (RFC 8032 vectors), ClickHouse rows. No server: the live tests use real ones."""

import io
import json
import time

import pytest

from undertow.fleet import clickhouse, ed25519, provenance, sinks, urls
from undertow.fleet.collect import stream_seq
from undertow.fleet.jetstream import default_stream
from undertow.fleet.nats import Connection, encode_headers


# -- URLs


def test_urls_parse_each_kind():
    u = urls.parse("nats://alice:s3cret@127.0.0.1:4222/undertow.events?stream=EV&ca=/etc/ca.pem")
    assert (u.kind, u.host, u.port, u.target, u.user, u.password) == \
        ("nats", "127.0.0.1", 4222, "undertow.events", "alice", "s3cret")
    assert u.params == {"stream": "EV", "ca": "/etc/ca.pem"} and not u.tls
    assert "s3cret" not in u.safe() and ":***@" in u.safe()
    assert urls.parse("tls://[::1]:4443/a.b").tls
    c = urls.parse("clickhouse+http://127.0.0.1:8123/ir.events?batch=500")
    assert (c.kind, c.target, c.number("batch", 1)) == ("clickhouse", ("ir", "events"), 500)
    assert urls.parse("clickhouse+https://h/db.t").port == 8443
    assert urls.parse("-").kind == urls.parse("stdout").kind == "stdout"


@pytest.mark.parametrize("text,where,what", [
    ("kafka://h:1/x", 0, "unknown output"),
    ("nats://h:1/a b", 11, "NATS subject"),
    ("nats://h:99999/x", 7, "HOST:PORT"),
    ("clickhouse+http://h:1/events", 22, "DATABASE.TABLE"),
    ("nats://h:1/x?strem=A", 13, "unknown option"),
])
def test_bad_urls_have_a_caret(text, where, what):
    with pytest.raises(urls.URLError) as ei:
        urls.parse(text)
    e = ei.value
    assert what in e.message and e.exit_code == 2
    assert e.span.start == where, (e.span, text[e.span.start:])
    assert "^" in e.render()


def test_url_option_hint_and_numbers():
    with pytest.raises(urls.URLError) as ei:
        urls.parse("nats://h:1/x?strem=A")
    assert "did you mean stream?" in ei.value.hints
    with pytest.raises(urls.URLError):
        urls.parse("nats://h:1/x?spool=-3").number("spool", 1, 1)
    with pytest.raises(urls.URLError):
        urls.parse("clickhouse+http://h:1/a.b", allowed=("nats",))


def test_output_option_is_a_usage_error(capsys):
    from undertow import cli

    with pytest.raises(SystemExit) as ei:
        cli.main(["dns", "--output", "nats://h:1/a b"])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "NATS subject" in err and "Traceback" not in err


def test_every_event_command_takes_output():
    from undertow import cli

    for name in ("dns", "icmp", "arp", "inbound", "connect", "filewatch", "exec", "exit", "modules", "trace",
                 "run"):
        p = cli.build_parser([name], lazy=True)
        sub = [a for a in p._actions if a.dest == "command"][0].choices[name]
        opts = {o for a in sub._actions for o in a.option_strings}
        assert {"--output", "--create", "--run-id", "--duration"} <= opts, name


# -- provenance


def test_provenance_stamps_every_key(monkeypatch):
    p = provenance.Provenance("dns", run_id="sweep-1")
    ev = {"ts": time.monotonic_ns(), "qname": "x"}
    assert p.stamp(ev) == 1
    assert set(provenance.KEYS) <= set(ev)
    assert ev["run_id"] == "sweep-1" and ev["tool"] == "dns" and ev["event_seq"] == 1
    assert abs(ev["wall_ns"] - time.time_ns()) < 5 * 10 ** 9
    ev2 = {"lost": 3}
    p.stamp(ev2)
    assert ev2["event_seq"] == 2 and abs(ev2["wall_ns"] - time.time_ns()) < 5 * 10 ** 9
    assert len(p.instance_id) == 16 and p.run_id == "sweep-1"
    assert p.msg_id(7) == f"{p.machine_id or p.hostname}.{p.boot_id or 'noboot'}.{p.instance_id}.7"
    assert provenance.msg_id(ev2) == p.msg_id(2)
    # two processes of one sweep on one machine and boot: different message ids
    assert provenance.Provenance("dns", "sweep-1").msg_id(1) != p.msg_id(1)


def test_machine_and_boot_ids_are_checked(tmp_path):
    f = tmp_path / "mid"
    f.write_text("0123456789abcdef0123456789abcdef\n")
    assert provenance.machine_id(str(f)) == "0123456789abcdef0123456789abcdef"
    f.write_text("evil\x1b[2J text\n")
    assert provenance.machine_id(str(f)) == ""
    link = tmp_path / "link"
    link.symlink_to(f)
    assert provenance.boot_id(str(link)) == ""  # O_NOFOLLOW
    assert provenance.machine_id(str(tmp_path / "none")) == ""


def test_run_id_option():
    import argparse

    from undertow.fleet.options import run_id

    assert run_id("sweep-2026-12-07T21:00") == "sweep-2026-12-07T21:00"
    for bad in ("", "a b", "x" * 65, "é"):
        with pytest.raises(argparse.ArgumentTypeError):
            run_id(bad)


# -- the fan-out and the spool


class Recorder(sinks.Sink):
    def __init__(self):
        super().__init__(urls.parse("-"))
        self.events = []

    def put(self, event):
        self.events.append(dict(event))


def test_fanout_parses_lines_written_in_pieces():
    rec = Recorder()
    fan = sinks.FanOut([rec], provenance.Provenance("trace", "r1"), io.StringIO())
    fan.write('{"ts": 5, "a": ')
    fan.write('1}\n{"lost": 2, "reason": "ringbuf_full"}\nplain text\n{broken\n')
    fan.write('{"tail": true}')
    fan.finish()
    ev = rec.events
    assert [e.get("a") for e in ev] == [1, None, None, None, None]
    assert ev[1]["lost"] == 2 and ev[2] == {**ev[2], "text": "plain text"} and ev[3]["text"] == "{broken"
    assert ev[4]["tail"] is True and [e["event_seq"] for e in ev] == [1, 2, 3, 4, 5]


def test_stdout_sink_writes_stamped_json():
    out = io.StringIO()
    s = sinks.StdoutSink(urls.parse("-"), out)
    fan = sinks.FanOut([s], provenance.Provenance("dns", "r2"), out)
    fan.write('{"qname": "x\\udc80"}\n')
    d = json.loads(out.getvalue())
    assert d["run_id"] == "r2" and d["qname"] == "x\\x80" and s.report.sent == 1


class FakeSink(sinks.SpoolSink):
    def __init__(self, text, fail_connect=False, refuse=0):
        super().__init__(urls.parse(text))
        self.fail_connect, self.refuse, self.got = fail_connect, refuse, []

    def connect(self):
        if self.fail_connect:
            raise OSError("connection refused")

    def send(self, batch):
        if self.refuse:
            return batch  # all refused: spooled again
        self.got.extend(batch)
        self.report.sent += len(batch)
        return []


def test_spool_sends_in_batches_and_drains_at_close():
    s = FakeSink("nats://h:1/x?batch=10").start()
    for i in range(35):
        s.put({"seq": i + 1})
    s.close(2.0)
    assert [e["seq"] for e in s.got] == list(range(1, 36)) and s.report.total_lost == 0


def test_spool_overflow_and_unsent_are_counted():
    s = FakeSink("nats://h:1/x?spool=5&batch=100", fail_connect=True).start()
    for i in range(12):
        s.put({"seq": i + 1})
    t = time.monotonic()
    s.close(0.3)
    assert time.monotonic() - t < 2
    assert s.report.lost == {"spool_full": 7, "unsent": 5}
    assert "connection refused" in list(s.report.errors)[0]
    line = s.report_line("undertow dns")
    assert "0 events sent, 12 lost (spool_full: 7, unsent: 5)" in line and "connection refused" in line


def test_refused_events_wait_in_the_spool():
    s = FakeSink("nats://h:1/x?spool=4&batch=2", refuse=1).start()
    for i in range(6):
        s.put({"seq": i + 1})
        time.sleep(0.01)
    s.close(0.2)
    assert s.report.sent == 0 and s.report.total_lost == 6


# -- NATS protocol


def _conn_with(data):
    c = Connection("127.0.0.1", 1)
    c.buf = data
    return c


def test_nats_parses_msg_and_hmsg():
    c = _conn_with(b"+OK\r\nMSG a.b 1 _INBOX.x 5\r\nhello\r\nHMSG c 2 22 24\r\nNATS/1.0 503\r\nK: v\r\n\r\nhi\r\n")
    m = c._parse()
    assert (m.subject, m.sid, m.reply, m.data, m.status) == ("a.b", "1", "_INBOX.x", b"hello", 0)
    m = c._parse()
    assert (m.subject, m.status, m.headers, m.data) == ("c", 503, {"K": "v"}, b"hi")
    assert c._parse() is None


def test_nats_waits_for_a_whole_message_and_answers_ping():
    c = _conn_with(b"MSG a 1 10\r\nhal")
    assert c._parse() is None and c.buf[c.pos:].startswith(b"MSG")
    sent = []
    c._send = sent.append
    c.buf, c.pos = b"PING\r\n", 0
    assert c._parse() is None and sent == [b"PONG\r\n"]


def test_nats_error_and_publish_framing():
    from undertow.fleet.nats import NatsError

    c = _conn_with(b"-ERR 'Authorization Violation'\r\n")
    with pytest.raises(NatsError) as ei:
        c._parse()
    assert ei.value.permanent
    c = Connection("h", 1)
    c.publish("s", b"abc", reply="r", headers={"Nats-Msg-Id": "m.1"})
    h = encode_headers({"Nats-Msg-Id": "m.1"})
    assert c.out[0] == f"HPUB s r {len(h)} {len(h) + 3}\r\n".encode() + h + b"abc\r\n"
    with pytest.raises(ValueError):
        encode_headers({"a": "b\r\nInjected: 1"})


def test_creds_file(tmp_path):
    from undertow.fleet.nats import load_creds

    f = tmp_path / "u.creds"
    f.write_text("-----BEGIN NATS USER JWT-----\neyJhbGc.x.y\n------END NATS USER JWT------\n\n"
                 "************************* IMPORTANT *************************\n"
                 "-----BEGIN USER NKEY SEED-----\nSUAAA\n------END USER NKEY SEED------\n")
    assert load_creds(str(f)) == ("eyJhbGc.x.y", "SUAAA")


def test_jetstream_names():
    assert default_stream("undertow.events") == "UNDERTOW_EVENTS"
    assert default_stream("undertow.>") == "UNDERTOW"
    assert stream_seq("$JS.ACK.S.C.1.42.7.1700000000000000000.0") == 42
    assert stream_seq("junk") == 0


# -- Ed25519 (RFC 8032 section 7.1 test vectors 1 and 2)


def test_ed25519_rfc8032_vectors():
    sk = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    assert ed25519.keypair(sk)[2].hex() == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    assert ed25519.sign(sk, b"").hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b"
        "d25bf5f0595bbe24655141438e7a100b")
    sk = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
    assert ed25519.sign(sk, b"\x72").hex() == (
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c"
        "387b2eaeb4302aeeb00d291612bb0c00")


def test_nkey_seed_round_trip():
    seed = bytes(range(32))
    text = ed25519.encode_seed(seed)
    assert text.startswith("SU") and ed25519.decode_seed(text)[1] == seed
    assert ed25519.public_key(text).startswith("U")
    with pytest.raises(ValueError):
        ed25519.decode_seed(text[:-1] + ("A" if text[-1] != "A" else "B"))
    assert ed25519.crc16(b"123456789") == 0x31C3  # CRC-16/XMODEM check value


# -- ClickHouse rows


def test_flatten_and_types():
    f = clickhouse.flatten({"a": {"b": 1, "c": {"d": "x"}}, "l": [1, 2], "weird-key!": True, "9x": None})
    assert f == {"a_b": 1, "a_c_d": "x", "l": "[1, 2]", "weird_key_": True, "_9x": None}
    assert [clickhouse.type_of(v) for v in (True, 3, 1.5, "s", None)] == \
        ["Nullable(UInt8)", "Nullable(Int64)", "Nullable(Float64)", "Nullable(String)", None]
    assert clickhouse.coerce("x", "Nullable(Int64)") is None
    assert clickhouse.coerce(7, "Nullable(String)") == "7"
    assert clickhouse.coerce(-1, "UInt64") is None and clickhouse.coerce(True, "Nullable(Int64)") == 1


def test_rows_add_columns_then_coerce():
    c = clickhouse.Client(urls.parse("clickhouse+http://u:p@h:1/db.t"))
    assert c.headers["Authorization"].startswith("Basic ")
    c.columns = dict(clickhouse.BASE_COLUMNS)
    added = {}

    def add_columns(new):
        added.update(new)
        c.columns.update(new)
    c.add_columns = add_columns
    ev = {"hostname": "h", "event_seq": 1, "wall_ns": 3 * 10 ** 9 + 5, "pid": 9, "fields": {"n": "x"}, "gone": None}
    rows = [json.loads(x) for x in c.rows([ev], create=True)]
    assert added == {"pid": "Nullable(Int64)", "fields_n": "Nullable(String)"}
    assert rows[0]["event_time"] == 3 and rows[0]["pid"] == 9 and json.loads(rows[0]["event_json"]) == ev
    assert "gone" not in rows[0]
    # without --create: keys the table lacks are left out
    rows = [json.loads(x) for x in c.rows([{"event_seq": 2, "other": 1, "pid": "nine"}], create=False)]
    assert "other" not in rows[0] and rows[0]["pid"] is None


class BlockingSink(FakeSink):
    def send(self, batch):
        time.sleep(3)  # a server that never answers
        return []


def test_close_ends_within_the_linger_and_counts_the_batch_in_flight():
    s = BlockingSink("nats://h:1/x?batch=4").start()
    for i in range(10):
        s.put({"seq": i + 1})
    time.sleep(0.4)  # the first batch is under way
    t = time.monotonic()
    s.close(0.3)
    assert time.monotonic() - t < 0.6
    assert s.report.lost == {"unsent": 6, "unconfirmed": 4}


# -- the file spool


def test_file_spool_keeps_what_was_not_sent_for_the_next_run(tmp_path):
    d = tmp_path / "spool"
    s = FakeSink(f"nats://h:1/x?spool=3&spool_dir={d}", fail_connect=True)
    s.start()
    for i in range(5):
        s.put({"seq": i + 1, "instance_id": "a"})  # 3 in memory, 2 to the file at once
    s.close(0.2)
    assert s.report.total_lost == 0 and s.report.to_file == 5
    assert "5 kept in" in s.report_line("undertow dns")
    (f,) = list(d.iterdir())
    assert oct(f.stat().st_mode & 0o777) == "0o600" and oct(d.stat().st_mode & 0o777) == "0o700"
    # the next run sends them first, and removes the file
    s2 = FakeSink(f"nats://h:1/x?spool_dir={d}").start()
    s2.close(2.0)
    assert sorted(e["seq"] for e in s2.got) == [1, 2, 3, 4, 5] and s2.report.resent_from_file == 5
    assert list(d.iterdir()) == []


def test_file_spool_refuses_a_directory_others_can_write(tmp_path):
    import os

    from undertow.errors import OptionError

    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, 0o777)
    with pytest.raises(OptionError, match="another user"):
        FakeSink(f"nats://h:1/x?spool_dir={d}")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(OptionError):
        FakeSink(f"nats://h:1/x?spool_dir={link}")


def test_file_spool_skips_planted_files(tmp_path):
    d = tmp_path / "sp"
    d.mkdir(mode=0o700)
    (tmp_path / "target").write_text('{"seq": 99}\n')
    (d / "0123456789abcdef.ndjson").symlink_to(tmp_path / "target")  # a link: not followed
    s = FakeSink(f"nats://h:1/x?spool_dir={d}").start()
    s.close(0.5)
    assert s.got == [] and (tmp_path / "target").exists()


def test_columns_stop_growing():
    c = clickhouse.Client(urls.parse("clickhouse+http://h:1/db.t"))
    c.columns = dict(clickhouse.BASE_COLUMNS)
    c.add_columns = lambda new: c.columns.update(new)
    ev = {f"k{i}": i for i in range(clickhouse.MAX_COLUMNS + 50)}
    rows = c.rows([ev], create=True)
    assert len(c.columns) == clickhouse.MAX_COLUMNS
    assert c.capped == len(ev) - (clickhouse.MAX_COLUMNS - len(clickhouse.BASE_COLUMNS))
    assert json.loads(json.loads(rows[0])["event_json"]) == ev
