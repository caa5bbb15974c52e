"""JSON templates (output/jsonl.Template) and the tools' event parsers that use them: every
copy writes the same line the general path writes for the same event (issue 18)."""

import json
import socket
import struct

from undertow.output.jsonl import Template, Templated, dumps, encoded, merged_line, templated
from undertow.tools import connect, dns, icmp

from test_tool_parsers import Rec, _dns, _icmp, _q, _sa4


def _plain(d):
    return dumps(dict(d))


def test_template_writes_what_dumps_writes():
    base = {"ts": 1, "name": "50% \u00e9 \"q\"\n", "n": None, "list": [1, {"a": "b"}], "f": 0.5, "b": True,
            "raw": b"\x00\xff", "last": "x"}
    d = templated(base, ("ts", "f", "name", "b", "n"))
    assert isinstance(d, Templated) and dumps(d) == _plain(base)
    for ts, f, name, b, n in [(2 ** 70, 1e-7, "\udcff bad byte", False, 3), (-5, float("inf"), "", None, "s"),
                              (0, float("nan"), "%s %d", 1, [1, 2]), (7, 12.125, "plain", True, None)]:
        c = d.copy()
        assert c.__class__ is Templated and c.template is d.template
        c["ts"], c["f"], c["name"], c["b"], c["n"] = ts, f, name, b, n
        assert dumps(c) == _plain(c)
        json.loads(dumps(c).replace("NaN", "0").replace("Infinity", "0"))
    assert dict(d) == base  # copies leave the first as it was


def test_no_template_when_a_value_holds_its_marks():
    hostile = {"ts": 1, "qname": "\x00undertow-slot-0\x00"}
    assert templated(hostile, ("ts",)).__class__ is dict
    try:
        Template({"a": 1}, ("b",))
    except ValueError:
        pass
    else:
        raise AssertionError("a missing varying key makes no template")


def test_merged_line_of_a_copy_is_the_general_one():
    info = encoded({"pid": 10, "ppid": 1, "argv": ["a", "50%"], "netns": 5, "pidns": 6})
    d = templated({"ts": 1, "pid": 10, "comm": "x", "netns": 4, "pidns": None}, ("ts",))
    memo = {}
    for ts in (2, 3):
        c = d.copy()
        c["ts"] = ts
        assert merged_line(c, info, memo) == merged_line(dict(c), info) == merged_line(dict(c), info, {})
        assert json.loads(merged_line(c, info, memo))["pidns"] == 6  # /proc fills in what the event has as None


def _general_dns(rec, seeds=None):
    q = dns.parse_record(rec, seeds)
    if q is None:
        return None
    q.ts, q.pid, q.tid, q.comm = rec.ts, rec.pid, rec.tid, rec.comm
    return q.to_dict()


def test_dns_parser_repeats_are_copies_with_their_own_id():
    parse = dns.event_parser({})
    recs = []
    for i, (msg_id, tid, pid) in enumerate([(7, 10, 10), (8, 11, 10), (9, 10, 10), (7, 12, 99)]):
        q = bytearray(_q("a.example.test", 28))
        q[0:2] = struct.pack(">H", msg_id)
        rec = _dns("sendto", 2, 53, _sa4("10.0.0.53", 53), bytes(q))
        rec.ts, rec.tid, rec.pid = 100 + i, tid, pid
        recs.append(rec)
    recs.append(_dns("write", 2, 53, _sa4("10.0.0.53", 53), b"not dns at all, really"))
    recs.append(_dns("write", 2, 53, _sa4("10.0.0.53", 53), b"not dns at all, really"))
    recs.append(_dns("sendto", 2, 853, _sa4("1.1.1.1", 853), b"\x16\x03\x01" + bytes(20)))
    tcp = _q("b.example.test")
    recs.append(_dns("write", 2, 53, _sa4("10.0.0.53", 53), struct.pack(">H", len(tcp)) + tcp, stype=1))
    got = [parse(r) for r in recs]
    want = [_general_dns(r) for r in recs]
    assert [g is None for g in got] == [w is None for w in want] == [False] * 4 + [True, True, False, False]
    for g, w in zip(got, want):
        if w is not None:
            assert g == w and dumps(g) == dumps(w)
    assert got[1].__class__ is Templated and got[1]["id"] == 8 and got[1]["tid"] == 11


def test_dns_parser_seeded_resolver_is_the_pids():
    seeds = {(10, 3): (2, "10.9.9.9"), (11, 3): (2, "10.8.8.8")}
    parse = dns.event_parser(seeds)
    a, b = _dns("sendto", 2, 53, bytes(28), _q("c.test")), _dns("sendto", 2, 53, bytes(28), _q("c.test"))
    b.pid = 11
    assert parse(a)["resolver"] == "10.9.9.9" and parse(b)["resolver"] == "10.8.8.8"
    assert dumps(parse(b)) == dumps(_general_dns(b, seeds))


def test_icmp_parser_repeats_are_copies_with_their_own_id_and_seq():
    parse = icmp.event_parser()

    def echo(ident, seq, payload=b"undertow-bench"):
        h = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
        return h[:2] + struct.pack("!H", (seq * 7919) & 0xFFFF) + h[4:]  # checksums differ

    recs = [_icmp("out", echo(0x4242, s), _sa4("10.0.0.1", 0)) for s in range(4)]
    recs += [_icmp("out", echo(0x4343, 9), _sa4("10.0.0.1", 0))]
    recs += [_icmp("out", echo(1, s), _sa4("10.0.0.1", 0), stype=2, ident=777) for s in range(3)]  # ping socket
    recs += [_icmp("out", echo(0x4242, 5, b"GET /c2 HTTP/1.1\r\n" * 3), _sa4("10.0.0.1", 0))]
    unreach = struct.pack("!BBHI", 3, 1, 0, 0) + bytes(28)
    recs += [_icmp("in", unreach, _sa4("10.0.0.1", 0), stype=2), _icmp("in", unreach, _sa4("10.0.0.1", 0), stype=2)]
    recs += [_icmp("in", b"\x45" + bytes(19) + echo(1, 1), _sa4("10.0.0.1", 0))]  # raw v4: IP header first
    for i, r in enumerate(recs):
        r.ts, r.tid = 50 + i, 10 + i % 2
        got, want = parse(r), icmp.parse_record(r)
        assert got == want and dumps(got) == dumps(want)
    assert [parse(r)["id"] for r in recs[5:8]] == [777] * 3
    assert [parse(r)["seq"] for r in recs[:4]] == [0, 1, 2, 3]


def test_connect_parser_repeats_are_copies_with_their_own_port_and_latency():
    parse = connect.event_parser()
    ip4 = struct.unpack("<I", socket.inet_aton("127.0.0.1"))[0]
    recs = [Rec(42, ns, "curl", 1, 0, 2, sport, 443, ip4, ip4, bytes(16), bytes(16), 5, 6)
            for ns, sport in ((1500000, 5555), (21, 5556), (123456789, 0))]
    recs.append(Rec(42, 10, "curl", 7, 111, 2, 5557, 443, ip4, ip4, bytes(16), bytes(16), 5, 6))
    recs.append(Rec(42, 10, "curl", 7, 111, 2, 5558, 443, ip4, ip4, bytes(16), bytes(16)))
    for i, r in enumerate(recs):
        r.ts = 1000 + i
        got, want = parse(r), connect.parse_record(r)
        assert got == want and dumps(got) == dumps(want)
    assert parse(recs[2])["sport"] is None and parse(recs[1])["latency_ms"] == 0.0
