"""dns, icmp and arp (issue 18): record parsing for the cases the tools used to miss, and the
socket tables read at start (tools/sockets.py) on a made-up /proc. No kernel needed."""

import os
import socket
import struct

from undertow.tools import arp, dns, icmp, sockets
from undertow.tools.decode.dns import decode_message

NETNS, PIDNS = 4026531840, 4026531836


def _s64(v):
    """As %d gives a 64-bit value: signed."""
    return struct.unpack("<q", struct.pack("<Q", v))[0]


class Rec:
    def __init__(self, *values, ts=1, pid=10, tid=10, comm="proc"):
        self.values, self.ts, self.pid, self.tid, self.comm = list(values), ts, pid, tid, comm


def _q(name, qtype=1, qid=7):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for part in name.split("."):
        q += bytes([len(part)]) + part.encode()
    return q + b"\x00" + struct.pack(">HH", qtype, 1)


def _sa4(ip, port):
    return struct.pack("<HH", 2, socket.htons(port)) + socket.inet_aton(ip) + bytes(20)


def _dns(call, payload, stype=2, addr=None, port=53, batch=0, pre=0, pid=10):
    """A record of dns.PROGRAM: call, m1 (fd, prefix apart, socket type, family, port), m2 (batch,
    length), ns (netns, pidns), address, payload (fixed size: the length says how much counts)."""
    addr = _sa4("127.0.0.53", port) if addr is None else addr
    m1 = (3 << 32) | (pre << 28) | (stype << 24) | (2 << 16) | port
    return Rec(call, m1, (batch << 32) | len(payload), _s64((NETNS << 32) | PIDNS), addr, payload + bytes(7), pid=pid)


# -- dns


def test_dns_tcp_writev_prefix_in_its_own_iovec():
    m = _q("writev.example.test")
    d = dns.parse_record(_dns("writev", m, stype=1, pre=1)).to_dict()
    assert (d["qname"], d["transport"], d["id"], d["size"]) == ("writev.example.test.", "tcp", 7, len(m) + 2)


def test_dns_tcp_prefix_written_alone_is_still_tcp():
    m = _q("split.example.test")
    d = dns.parse_record(_dns("write", m, stype=1)).to_dict()
    assert (d["qname"], d["transport"]) == ("split.example.test.", "tcp")
    # the same bytes on a datagram socket are UDP
    assert dns.parse_record(_dns("sendto", m, stype=2)).to_dict()["transport"] == "udp"


def test_dns_long_name_keeps_the_real_id_and_says_so():
    name = ".".join(["a" * 60] * 5) + ".example.test"
    d = dns.parse_record(_dns("sendto", _q(name, 16, qid=0x4455))).to_dict()
    assert d["id"] == 0x4455 and d["qname"] == name + "." and d["qtype"] == "TXT"
    assert d["transport"] == "udp" and "longer than 255" in d["error"]
    # cut by the capture: what was read, and the reason
    cut = _q(".".join(["b" * 60] * 7), qid=0x4456)[:300]
    m = decode_message(cut)
    assert m.id == 0x4456 and m.questions and "cut short by the capture" in m.error and m.truncated


def test_dns_socket_connected_before_the_start_takes_its_resolver_from_the_seed():
    rec = _dns("sendto", _q("pre.example.test"), addr=bytes(28), pid=42)
    d = dns.parse_record(rec, {(42, 3): (2, "192.0.2.53")}).to_dict()
    assert d["resolver"] == "192.0.2.53" and d["qname"] == "pre.example.test."


def test_dns_sendmmsg_batch_and_namespaces():
    d = dns.parse_record(_dns("sendmmsg", _q("m3.example.test"), batch=5)).to_dict()
    assert d["batch"] == 5 and d["netns"] == NETNS and d["pidns"] == PIDNS


def test_dns_write_on_a_reused_fd_is_not_dns():
    assert dns.parse_record(_dns("write", b"GET / HTTP/1.1\r\nHost: x\r\n", stype=1)) is None


# -- icmp


def _icmp(direction, payload, length=None, stype=3, ident=0, addr=None, daddr4=0, fam=2, proto=1):
    key = (fam << 16) | (stype << 8) | proto
    return Rec(direction, 3, key, len(payload) if length is None else length, ident, NETNS, PIDNS, daddr4,
               addr if addr is not None else bytes(28), bytes(16), payload)


def _echo(ident, seq, payload, typ=8):
    return struct.pack("!BBHHH", typ, 0, 0, ident, seq) + payload


def test_icmp_true_size_beyond_the_capture():
    captured = _echo(0x5252, 1, bytes(1400))[:512]
    d = icmp.parse_record(_icmp("out", captured, length=1408))
    assert d["size"] == 1400 and d["captured"] == 504
    assert any("1400" in i for i in icmp.parse_record(_icmp("out", _echo(1, 1, os.urandom(504)),
                                                            length=1408))["indicators"])
    # a raw IPv4 socket receives the IP header first
    ip = bytes([0x45]) + bytes(19)
    d = icmp.parse_record(_icmp("in", (ip + _echo(0x5252, 1, bytes(1400), typ=0))[:512], length=1428))
    assert d["size"] == 1400


def test_icmp_ping_socket_id_is_the_kernels():
    d = icmp.parse_record(_icmp("out", _echo(0, 9, bytes(56)), stype=2, ident=54514))
    assert d["id"] == 54514 and d["socket"] == "ping"


def test_icmp_connected_socket_peer_from_the_socket():
    ip4 = struct.unpack("<I", socket.inet_aton("127.0.0.9"))[0]
    d = icmp.parse_record(_icmp("out", _echo(1, 1, bytes(56)), daddr4=ip4))
    assert d["peer"] == "127.0.0.9" and d["netns"] == NETNS


def test_icmp_kernel_error_carries_the_namespace():
    d = icmp.parse_record(Rec("kernel", 3, 3, 40000, 9, 9, NETNS, socket.inet_aton("127.0.0.1"),
                              socket.inet_aton("127.0.0.1")))
    assert d["direction"] == "kernel" and d["netns"] == NETNS and d["pid"] is None and d["pidns"] is None


# -- arp


def _frame(op, smac, sip, tip):
    m = bytes.fromhex(smac.replace(":", ""))
    return (b"\xff" * 6 + m + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + m +
            socket.inet_aton(sip) + bytes(6) + socket.inet_aton(tip))


def test_arp_origin_from_the_frames_socket(tmp_path):
    p = arp.Parser({777: (4242, 5)}, proc=str(tmp_path))
    # queued while a marked sender runs, but no socket: the kernel's reply
    k = p(Rec("out", 0, 0, NETNS, 0, _frame(2, "02:00:00:00:00:02", "10.0.0.2", "10.0.0.1"), "veth0", pid=99))
    assert k["origin"] == "kernel" and k["pid"] is None and k["netns"] == NETNS
    me = p(Rec("out", 1, 778, NETNS, PIDNS, _frame(1, "02:00:00:00:00:01", "10.0.0.1", "10.0.0.2"), "veth0",
               pid=99, comm="arping"))
    assert (me["origin"], me["pid"], me["comm"], me["pidns"]) == ("process", 99, "arping", PIDNS)
    # a socket made before the start, sent through a path not followed: its holder
    pre = p(Rec("out", 0, 777, NETNS, 0, _frame(2, "02:de:ad:be:ef:02", "10.0.0.2", "10.0.0.2"), "veth0"))
    assert pre["origin"] == "process" and pre["pid"] == 4242 and pre["socket_inode"] == 777
    assert pre["mac_changed_from"] == "02:00:00:00:00:02"


def test_arp_mac_table_is_per_namespace():
    p = arp.Parser()
    p(Rec("out", 0, 0, 1, 0, _frame(2, "02:00:00:00:00:02", "10.0.0.2", "10.0.0.1"), "a"))
    other = p(Rec("out", 0, 0, 2, 0, _frame(2, "02:00:00:00:00:03", "10.0.0.2", "10.0.0.1"), "b"))
    assert other["mac_changed_from"] is None


def test_arp_line_is_never_cut():
    from undertow.commands.arp import _line

    d = {"pid": 4242, "comm": "a-very-long-program-name", "origin": "process", "direction": "out",
         "interface": "veth-with-long-name", "op": "reply", "sender_ip": "10.199.7.2",
         "sender_mac": "02:de:ad:be:ef:02", "target_ip": "10.199.7.2", "gratuitous": True,
         "mac_changed_from": "9a:aa:bb:cc:dd:11", "netns": 5, "pidns": None}
    line = _line(d, {"netns": 4, "pidns": None})
    assert "MAC CHANGED from 9a:aa:bb:cc:dd:11" in line and "a-very-long-program-name" in line
    assert "veth-with-long-name" in line and line.endswith("netns:5")


# -- socket tables


def _fake_proc(tmp_path):
    proc = tmp_path / "proc"
    (proc / "100" / "fd").mkdir(parents=True)
    (proc / "100" / "ns").mkdir()
    (proc / "100" / "net").mkdir()
    os.symlink("socket:[5001]", proc / "100" / "fd" / "3")
    os.symlink("socket:[5002]", proc / "100" / "fd" / "4")
    os.symlink("/etc/passwd", proc / "100" / "fd" / "5")
    os.symlink("net:[4026532999]", proc / "100" / "ns" / "net")
    hdr = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (proc / "100" / "net" / "raw").write_text(
        hdr + "   1: 00000000:0001 0100007F:0000 07 00000000:00000000 00:00000000 00000000     0        0 5001 2\n")
    (proc / "100" / "net" / "udp").write_text(
        hdr + " 10: 0100007F:D431 3500007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 5003 2\n")
    (proc / "100" / "net" / "packet").write_text(
        "sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n"
        "ffff000000000000 3      3    0003   2     1 0      0      5002\n")
    return proc


def test_proc_net_tables(tmp_path):
    proc = _fake_proc(tmp_path)
    got = {s.inode: s for s in sockets.proc_net(100, ["raw", "udp", "packet"], str(proc))}
    assert got[5001].protocol == 1 and got[5001].type == socket.SOCK_RAW and got[5001].dst == "127.0.0.1"
    assert got[5003].dport == 53 and got[5003].dst == "127.0.0.53" and got[5003].type == socket.SOCK_DGRAM
    assert got[5002].family == 17 and got[5002].protocol == 3


def test_socket_fds_and_owners(tmp_path):
    proc = _fake_proc(tmp_path)
    owners, netns = sockets.socket_fds(str(proc))
    assert owners == {5001: [(100, 3)], 5002: [(100, 4)]} and netns == {100: 4026532999}
    found = {(s.inode, pid, fd) for s, pid, fd in sockets.find_sockets([], ["raw", "packet"], proc=str(proc))}
    assert found == {(5001, 100, 3), (5002, 100, 4)}


def test_dns_repeated_bodies_keep_their_own_ids():
    a = dns.parse_record(_dns("sendto", _q("same.example.test", qid=1))).to_dict()
    b = dns.parse_record(_dns("sendto", _q("same.example.test", qid=2))).to_dict()
    assert (a["id"], b["id"]) == (1, 2) and a["qname"] == b["qname"] == "same.example.test."
    short = [dns.parse_record(_dns("sendto", bytes([i, 9, 9]))).to_dict() for i in (1, 2)]
    assert [s["id"] for s in short] == [0x109, 0x209] and short[0]["error"]


def test_programs_parse():
    from undertow.lang.bt import parse_program

    for text in (dns.PROGRAM + dns.ANSWERS, icmp.PROGRAM, arp.program(False), arp.program(True)):
        assert parse_program(text).probes
    assert "kprobe:__dev_direct_xmit" in arp.program(True) and "kprobe:" not in arp.program(False)
    assert "PIDNS" not in arp.program(True) + icmp.PROGRAM + dns.PROGRAM + dns.ANSWERS
