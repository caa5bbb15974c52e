"""inbound/connect (issue 18) on made-up records: overflow, knocks, namespaces, connects failed
inside connect(), the hook sets' programs, and text lines that keep every field."""

import socket
import struct

from undertow.lang.bt import parse_program
from undertow.tools import connect, inbound
from undertow.tools.common import ns_note


class Rec:
    def __init__(self, *values, ts=1, pid=10, tid=10, comm="proc"):
        self.values, self.ts, self.pid, self.tid, self.comm = list(values), ts, pid, tid, comm


IP4 = struct.unpack("<I", socket.inet_aton("127.0.0.1"))[0]
PORTS = struct.unpack("<I", struct.pack("!HH", 40000, 22))[0]


def test_both_hook_sets_parse():
    for hooks in ("tracepoints", "kprobes"):
        assert parse_program(inbound.program(hooks)).probes
        assert parse_program(connect.program(hooks)).probes
    # without rx_sk (Linux < 6.11) the program never names the field
    assert "rx_sk" not in inbound.program("tracepoints", rx_sk=False)
    assert "rx_sk" in inbound.program("tracepoints", rx_sk=True)
    # the kprobe set reports failures in tcp_v4_connect's return, not also at the syscall
    assert "kretprobe:tcp_v4_connect" in connect.program("kprobes")
    assert "(0 && args.ret < 0" in connect.program("kprobes") and "(1 && args.ret < 0" in connect.PROGRAM


def test_inbound_overflow_knock_and_netns():
    ovf = inbound.parse_record(Rec("overflow", 0, 6, PORTS, 0x02, IP4, IP4, b"", b"", 4, 4026532100, 0), {})
    assert (ovf["outcome"], ovf["reason"], ovf["syn"], ovf["dport"], ovf["netns"], ovf["pidns"]) == \
        ("dropped", "TCP_LISTEN_OVERFLOW", True, 22, 4026532100, None)
    rst = inbound.parse_record(Rec("knock", 1, 6, PORTS, 0x04, IP4, IP4, b"", b"", 4, 7, 0), {})
    assert (rst["outcome"], rst["reason"], rst["sport"], rst["dport"]) == ("knock", "RST_AFTER_SYNACK", 40000, 22)
    # a request socket's unanswered SYN-ACK: laid out like a handshake (sport is the local port)
    unans = inbound.parse_record(Rec("knock", 2, 2, 22, 40000, IP4, IP4, bytes(16), bytes(16), 0, 7, 0), {})
    assert (unans["outcome"], unans["reason"], unans["dport"], unans["sport"], unans["saddr"]) == \
        ("knock", "SYNACK_UNANSWERED", 22, 40000, "127.0.0.1")
    # records without the namespace fields (an older program) still parse
    old = inbound.parse_record(Rec("drop", 3, 6, PORTS, 0x02, IP4, IP4, b"", b"", 4), {3: "NO_SOCKET"})
    assert old["outcome"] == "refused" and old["netns"] is None


def test_listeners_by_namespace(tmp_path):
    proc = tmp_path
    for pid, ns, port in (("100", "4026531840", 0x1F90), ("200", "4026532999", 0x1F90)):
        (proc / pid / "ns").mkdir(parents=True)
        (proc / pid / "ns" / "net").symlink_to(f"net:[{ns}]")
        (proc / pid / "fd").mkdir()
        (proc / pid / "fd" / "3").symlink_to(f"socket:[{pid}77]")
        (proc / pid / "comm").write_text(f"srv{pid}\n")
        (proc / pid / "net").mkdir()
        (proc / pid / "net" / "tcp").write_text(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
            f"   0: 0100007F:{port:04X} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
            f"{pid}77 1 0000000000000000 100 0 0 10 0\n")
    (proc / "self" / "ns").mkdir(parents=True)
    (proc / "self" / "ns" / "net").symlink_to("net:[4026531840]")
    lst = inbound.Listeners(str(proc))
    assert lst.lookup("tcp", 8080) == (100, "srv100")
    assert lst.lookup("tcp", 8080, 4026532999) == (200, "srv200")
    assert sorted(lst.tcp_fds) == [(100, 3), (200, 3)]


def test_connect_failed_inside_connect_and_late_error():
    rec = Rec(42, 2000, "curl", connect.INSIDE, 22, 2, 0, 8080, 0, IP4, bytes(16), bytes(16), 4026532001,
              4026531836)
    d = connect.parse_record(rec)
    assert (d["outcome"], d["error"], d["stage"], d["sport"], d["netns"], d["pidns"]) == \
        ("failed", "EINVAL", "syscall", None, 4026532001, 4026531836)
    for err, outcome in ((113, "unreachable"), (13, "denied"), (101, "unreachable")):
        rec.values[4] = err
        assert connect.parse_record(rec)["outcome"] == outcome
    icmp = connect.parse_record(Rec(42, 10, "curl", 7, 113, 2, 5555, 80, IP4, IP4, bytes(16), bytes(16), 5, 6))
    assert (icmp["outcome"], icmp["error"], icmp["stage"]) == ("unreachable", "EHOSTUNREACH", "handshake")


def test_connect_text_line_keeps_every_field(monkeypatch):
    import time

    from undertow.commands.connect import _line

    monkeypatch.setattr(time, "strftime", lambda f: "12:00:00")
    d = {"pid": 7, "comm": "c" * 15, "daddr": "fe80:1111:2222:3333:4444:5555:6666:7777", "dport": 65535,
         "outcome": "unreachable", "latency_ms": 1.5, "error": "EHOSTUNREACH", "netns": 9, "pidns": 1}
    line = _line(d, {"netns": 1, "pidns": 1})
    assert "fe80:1111:2222:3333:4444:5555:6666:7777:65535" in line and line.endswith("EHOSTUNREACH netns:9")
    assert ns_note(d, {"netns": 9, "pidns": 1}) == ""
