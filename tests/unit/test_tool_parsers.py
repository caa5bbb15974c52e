"""The BPF tools' record parsers and program generators, on made-up records (no kernel)."""

import socket
import struct

from undertow.tools import connect, dns, exits, filewatch, icmp, inbound, modules
from undertow.lang.bt import parse_program


class Rec:
    def __init__(self, *values, ts=1, pid=10, tid=10, comm="proc"):
        self.values, self.ts, self.pid, self.tid, self.comm = list(values), ts, pid, tid, comm


def _q(name, qtype=1):
    q = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0)
    for part in name.split("."):
        q += bytes([len(part)]) + part.encode()
    return q + b"\x00" + struct.pack(">HH", qtype, 1)


def _sa4(ip, port):
    return struct.pack("<HH", 2, socket.htons(port)) + socket.inet_aton(ip) + bytes(20)


def test_every_tool_program_parses():
    for text in (dns.PROGRAM + dns.ANSWERS, icmp.PROGRAM, inbound.PROGRAM, connect.PROGRAM, exits.PROGRAM):
        assert parse_program(text).probes


def _dns(call, fam, port, addr, payload, stype=2):
    """A record of dns.PROGRAM: call, m1 (fd, prefix apart, socket type, family, port), m2 (batch,
    length), ns (netns, pidns), address, payload."""
    m1 = (3 << 32) | (stype << 24) | (fam << 16) | port
    return Rec(call, m1, len(payload), (4026531840 << 32) | 4026531836, addr, payload)


def test_dns_query_answer_dot_and_garbage():
    q = dns.parse_record(_dns("sendto", 2, 53, _sa4("10.0.0.53", 53), _q("a.example.test", 28)))
    d = q.to_dict()
    assert (d["qname"], d["qtype"], d["resolver"], d["transport"], d["kind"]) == \
        ("a.example.test.", "AAAA", "10.0.0.53", "udp", "query")
    assert d["netns"] == 4026531840 and d["pidns"] == 4026531836
    dot = dns.parse_record(_dns("sendto", 2, 853, _sa4("1.1.1.1", 853), b"\x16\x03\x01" + bytes(20)))
    assert dot.transport == "dot" and dot.message is None
    assert dns.parse_record(_dns("write", 2, 53, _sa4("10.0.0.53", 53), b"not dns at all, really")) is None
    resp = bytearray(_q("b.example.test"))
    resp[2:4] = b"\x81\x80"
    resp[6:8] = b"\x00\x01"
    resp += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + socket.inet_aton("10.1.2.3")
    a = dns.parse_record(_dns("answer", 2, 53, _sa4("10.0.0.53", 53), bytes(resp))).to_dict()
    assert a["kind"] == "answer" and a["rcode"] == "NOERROR" and a["answers"][0]["data"] == "10.1.2.3"


def test_inbound_outcomes_from_drop_records():
    reasons = {2: "NOT_SPECIFIED", 3: "NO_SOCKET", 50: "TCP_LISTEN_OVERFLOW", 9: "QUEUE_PURGE"}
    ports = struct.unpack("<I", struct.pack("!HH", 40000, 22))[0]
    ip4 = struct.unpack("<I", socket.inet_aton("127.0.0.1"))[0]
    syn = inbound.parse_record(Rec("drop", 3, 6, ports, 0x02, ip4, ip4, b"", b"", 4), reasons)
    assert (syn["outcome"], syn["sport"], syn["dport"], syn["reason"]) == ("refused", 40000, 22, "NO_SOCKET")
    udp = inbound.parse_record(Rec("drop", 3, 17, ports, 0, ip4, ip4, b"", b"", 4), reasons)
    assert udp["outcome"] == "udp-closed"
    assert inbound.parse_record(Rec("drop", 9, 6, ports, 0x10, ip4, ip4, b"", b"", 4), reasons) is None
    ovf = inbound.parse_record(Rec("drop", 50, 6, ports, 0x02, ip4, ip4, b"", b"", 4), reasons)
    assert ovf["outcome"] == "dropped" and ovf["reason"] == "TCP_LISTEN_OVERFLOW"


def test_connect_outcomes_from_sk_err():
    ip4 = struct.unpack("<I", socket.inet_aton("127.0.0.1"))[0]
    ok = connect.parse_record(Rec(42, 1500000, "curl", 1, 0, 2, 5555, 443, ip4, ip4, bytes(16), bytes(16)))
    assert ok["outcome"] == "established" and ok["latency_ms"] == 1.5 and ok["pid"] == 42
    ref = connect.parse_record(Rec(42, 10, "curl", 7, 111, 2, 5555, 9, ip4, ip4, bytes(16), bytes(16)))
    assert ref["outcome"] == "refused" and ref["error"] == "ECONNREFUSED"
    to = connect.parse_record(Rec(42, 10, "curl", 7, 110, 2, 5555, 9, ip4, ip4, bytes(16), bytes(16)))
    assert to["outcome"] == "timed-out"


def test_exit_status_and_signal():
    st = exits.parse_record(Rec(7 << 8, 0, 2_000_000_000, 1, 0, 11, 12, 0, b""))
    assert st["status"] == 7 and st["signal"] is None and st["lifetime_s"] == 2.0
    assert st["netns"] == 11 and st["pidns"] == 12 and st["argv"] is None  # no mm: /proc may tell
    sig = exits.parse_record(Rec(0, 9, 1, 1, 0, 11, 12, 8, b"sleep\x009\x00"))
    assert sig["signal"] == "SIGKILL" and sig["status"] is None and sig["argv"] == ["sleep", "9"]
    core = exits.parse_record(Rec(0x80 | 11, 0, 1, 1, 0, 11, 12, 5000, b"a" * 4096))
    assert core["signal"] == "SIGSEGV" and core["core"] is True and core["argv_truncated"] is True


def _icmp(direction, payload, addr, stype=3, length=None, ident=0):
    """A record of icmp.PROGRAM: direction fd key length id netns pidns daddr4 address daddr6 payload."""
    key = (2 << 16) | (stype << 8) | 1
    return Rec(direction, 3, key, len(payload) if length is None else length, ident, 4026531840, 4026531836, 0,
               addr, bytes(16), payload)


def test_icmp_echo_and_tunnel_flag():
    def echo(seq, payload):
        return struct.pack("!BBHHH", 8, 0, 0, 0x4242, seq) + payload
    ok = icmp.parse_record(_icmp("out", echo(1, bytes(range(8, 64))), _sa4("10.0.0.1", 0)))
    assert ok["type_name"] == "echo-request" and ok["indicators"] == [] and ok["peer"] == "10.0.0.1"
    assert ok["netns"] == 4026531840 and ok["pidns"] == 4026531836
    tun = icmp.parse_record(_icmp("out", echo(2, b"GET /c2 HTTP/1.1\r\n" * 12), _sa4("10.0.0.1", 0)))
    assert tun["indicators"]


def test_modules_pairs_attempt_and_result():
    p = modules.Pairing()
    assert p.feed(Rec("try", 176, 0, 0, "rootkit", tid=5)) is None
    d = p.feed(Rec("ret", 176, -38, 0, "", tid=5))
    assert d["event"] == "delete_module" and d["module"] == "rootkit" and d["error"] == "ENOSYS"


def test_filewatch_program_matches_kernel_identity(tmp_path):
    f = tmp_path / "w"
    f.write_text("x")
    w = filewatch.Watch(str(f))
    w.kino, w.kdev = 12345, 67
    w.dirs[-1].ino, w.dirs[-1].dev = 777, 68
    text = filewatch.program([w], True, have=lambda ev: ev != "syscalls:sys_enter_rename")
    # the inode is seeded into @ino at start; the name is matched by its directory's identity
    assert "$pi_ == 777 && $pd_ == 68" in text and "sys_enter_renameat2" in text
    assert "sys_enter_rename " not in text and "sys_enter_rename\n" not in text
    assert parse_program(text).probes
    vfs = filewatch.program([w], False, hooks="vfs")
    assert "kfunc:notify_change" in vfs and "kfunc:vfs_rename" in vfs and "raw_syscalls:sys_exit" in vfs
    assert parse_program(vfs).probes


def _fw(values, ws, **kw):
    return filewatch.parse_record(Rec(*values, **kw), ws)


def test_filewatch_records():
    w = filewatch.Watch.known("/srv/www/index.php", 5, 8)
    ws = [w]
    ns = (4026531833, 4026531836)
    # rename onto the path from the same directory, both names relative to the cwd (/srv/www: j=3)
    d = _fw(("rename", 1, 0, 1, 1, 0, 3, "x.tmp", "index.php") + ns, ws)
    assert (d["op"], d["path"], d["from"], d["to"], d["netns"], d["pidns"]) == \
        ("rename", w.path, "/srv/www/x.tmp", w.path) + ns
    assert d["flags"] == 1 and d["inode"] is None   # RENAME_NOREPLACE
    # rename away by absolute path: the other side as given
    d = _fw(("rename", 0, 1, 0, 0, 0, 0, w.path, "/tmp/gone") + ns, ws)
    assert (d["from"], d["to"]) == (w.path, "/tmp/gone")
    # different dirfds: a relative other side cannot be placed, so it is kept as given
    d = _fw(("rename", 0, 0, 0, 1, 0, 3, "a/b", "index.php") + ns, ws)
    assert (d["from"], d["to"]) == ("a/b", w.path)
    d = _fw(("fchownat", -1, 1, 0, 0xFFFFFFFF, 33, 2, "www/index.php", "") + ns, ws)
    assert (d["uid"], d["gid"], d["arg"], d["fd"]) == (None, 33, w.path, None)
    d = _fw(("fallocate", 4, 1, 5, 4096, 0, 3, "", "") + ns, ws)
    assert d["punch_hole"] and (d["length"], d["offset"], d["mode"], d["inode"]) == (4096, 0, 3, 5)
    d = _fw(("setattr", -1, 1, 5, 1 | 8 | 32, 0o100600, 0, "", "") + ns, ws)
    assert d["changes"] == ["mode", "size", "mtime"] and d["mode"] == "0o600" and d["length"] == 0
    d = _fw(("open-trunc", 3, 1, 9, 0o1001, 0, 0, "", "") + ns, ws)
    assert d["write"] and d["inode"] == 9
    d = _fw(("vfs-rename", 1, 0, 9, 1, 0, 0, "x.tmp", "index.php") + ns, ws)
    assert (d["from"], d["to"], d["path"], d["fd"]) == ("/srv/www/x.tmp", w.path, w.path, None)
    d = _fw(("vfs-rename", 0, 1, 5, 0, 0, 0, "index.php", "elsewhere") + ns, ws)
    assert (d["from"], d["to"]) == ("index.php", "elsewhere")
    d = _fw(("io_uring-write", 7, 1, 5, 0, 23, 0, "", "") + ns, ws)
    assert d["opcode"] == 23 and d["fd"] == 7


def test_filewatch_text_line_cuts_no_field():
    from undertow.commands.filewatch import _line

    path = "/srv/" + "d" * 120 + "/index.php"
    d = {"pid": 1, "comm": "a-very-long-comm", "op": "rename", "path": path, "from": path, "to": path + ".bak"}
    line = _line(d)
    assert path in line and "to=" + path + ".bak" in line and "a-very-long-comm" in line


def test_exit_argv_from_exit_group_where_the_exit_has_no_mm():
    p = exits.Parser()
    assert p(Rec("argv", 8, b"sleep\x009\x00", pid=33)) is None
    d = p(Rec(0, 0, 1, 1, 0, 11, 12, 0, b"", pid=33))  # exit_mm() ran before the tracepoint
    assert d["argv"] == ["sleep", "9"] and not p.argv
    own = p(Rec(0, 0, 1, 1, 0, 11, 12, 3, b"ls\x00", pid=34))  # the mm was still there
    assert own["argv"] == ["ls"]
    assert p(Rec(0, 9, 1, 1, 0, 11, 12, 0, b"", pid=35))["argv"] is None  # killed: no exit_group


def test_filewatch_copy_count_is_an_upper_bound_in_text():
    from undertow.commands.filewatch import _line

    assert _line({"pid": 1, "comm": "cp", "op": "copy_file_range", "path": "/x", "bytes": 2 ** 63 - 1}).endswith(
        f" bytes<={2 ** 63 - 1}")
    assert _line({"pid": 1, "comm": "sh", "op": "write", "path": "/x", "bytes": 5}).endswith(" bytes=5")
