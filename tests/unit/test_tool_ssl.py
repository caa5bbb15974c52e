"""`undertow ssl` without root: library names, /proc/PID/maps lines, the scanner on a fake
/proc, the program's text, records to events (peer, escaping, base64)."""

import base64
import os
import socket
import struct

import pytest

from undertow.tools import ssl as tls
from undertow.tools.ssl_libs import FUNCTIONS, LibraryScanner, TlsLibrary, library_kind, parse_maps_line


@pytest.mark.parametrize("path,kind", [
    ("/usr/lib/x86_64-linux-gnu/libssl.so.3", "openssl"),
    ("/usr/lib/libssl.so.1.1", "openssl"),
    ("/usr/lib64/libssl.so.1.0.2k", "openssl"),
    ("/opt/app/lib/libssl.so", "openssl"),
    ("/usr/lib/x86_64-linux-gnu/libssl.so.3 (deleted)", "openssl"),
    ("/usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3", "gnutls"),
    ("/usr/lib/x86_64-linux-gnu/libnspr4.so", "nss"),
    ("/usr/lib/x86_64-linux-gnu/libssl3.so", None),  # NSS's SSL library: PR_Read/PR_Write are in libnspr4
    ("/usr/lib/x86_64-linux-gnu/libcrypto.so.3", None),
    ("/tmp/libssl.so.3.evil\n", None),
    ("/usr/lib/x86_64-linux-gnu/libssl.so.3/x", None),
])
def test_library_kind(path, kind):
    assert library_kind(path) == kind


def test_parse_maps_line():
    line = "7f6eacc3b000-7f6eacc5a000 r-xp 00001000 fe:00 2179219                    /tmp/a b/libssl.so.3 (deleted)\n"
    assert parse_maps_line(line) == ("7f6eacc3b000-7f6eacc5a000", "r-xp", (0xFE << 20) | 0, 2179219,
                                     "/tmp/a b/libssl.so.3 (deleted)")
    assert parse_maps_line("7ffd1000-7ffd2000 rw-p 00000000 00:00 0                          [stack]") is None
    assert parse_maps_line("7ffd1000-7ffd2000 rw-p 00000000 00:00 0") is None
    assert parse_maps_line("zz-7ffd2000 r-xp 00000000 fe:00 5 /x/libssl.so.3") is None
    assert parse_maps_line("1-2 r-xp 00000000 fe:zz 5 /x/libssl.so.3") is None
    assert parse_maps_line("") is None


def _fake_proc(tmp_path, pid, lines, targets):
    """A /proc with one process: its maps and map_files links to ``targets``."""
    d = tmp_path / "proc" / str(pid)
    (d / "map_files").mkdir(parents=True)
    (d / "maps").write_text("".join(lines))
    for rng, target in targets.items():
        os.symlink(target, d / "map_files" / rng)
    return str(tmp_path / "proc")


def test_scanner_refuses_what_is_not_a_library(tmp_path):
    """A file named libssl.so.3 that is not ELF, a FIFO under that name, an unreadable mapping:
    no library, no exception, each said in the notes (or skipped quietly for the FIFO)."""
    text = tmp_path / "libssl.so.3"
    text.write_bytes(b"#!/bin/sh\necho not a library\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    lines = [f"1000-2000 r-xp 00000000 fe:00 {os.stat(text).st_ino} {text}\n",
             f"3000-4000 r-xp 00000000 fe:00 77 /lib/libgnutls.so.30\n",
             f"5000-6000 r-xp 00000000 fe:00 88 /lib/libnspr4.so\n",
             f"7000-8000 rw-p 00000000 fe:00 99 /lib/libssl.so.1.1\n"]  # not executable: not looked at
    proc = _fake_proc(tmp_path, 4242, lines, {"1000-2000": str(text), "3000-4000": str(fifo)})
    sc = LibraryScanner(proc=proc, static=False)
    assert sc.scan_all() == []
    assert any("defines none of" in n for n in sc.notes), sc.notes
    assert any("libnspr4" in n and "cannot open" in n for n in sc.notes), sc.notes
    assert LibraryScanner(proc=str(tmp_path / "none")).scan_all() == []


def _host_libssl():
    with open("/proc/self/maps") as f:
        for line in f:
            m = parse_maps_line(line)
            if m and library_kind(m[4]) == "openssl" and os.path.exists(m[4]):
                return m[4]
    import ssl  # noqa: F401 - maps libssl in this process
    with open("/proc/self/maps") as f:
        for line in f:
            m = parse_maps_line(line)
            if m and library_kind(m[4]) == "openssl" and os.path.exists(m[4]):
                return m[4]
    return None


def test_scanner_finds_a_library_once(tmp_path):
    """Two processes mapping the same file (one through a path that is now "(deleted)"): one
    library, held open, with the functions its symbol table defines."""
    real = _host_libssl()
    if real is None:
        pytest.skip("this Python does not map an OpenSSL libssl")
    st = os.stat(real)
    lines = [f"1000-2000 r-xp 00001000 fe:00 {st.st_ino} /usr/lib/libssl.so.3 (deleted)\n"]
    proc = _fake_proc(tmp_path, 10, lines, {"1000-2000": real})
    other = tmp_path / "proc" / "11" / "map_files"
    other.mkdir(parents=True)
    (tmp_path / "proc" / "11" / "maps").write_text(f"5000-6000 r-xp 00001000 fe:00 {st.st_ino} /x/libssl.so.3\n")
    os.symlink(real, other / "5000-6000")
    sc = LibraryScanner(proc=proc, static=False)
    try:
        libs = sc.scan_pid(10)
        assert len(libs) == 1 and sc.scan_all() == []
        lib = libs[0]
        assert lib.kind == "openssl" and lib.deleted and lib.path == "/usr/lib/libssl.so.3 (deleted)"
        assert {"SSL_read", "SSL_write"} <= set(lib.functions) and lib.functions[-1] == "SSL_free"
        assert (lib.dev, lib.ino) == (st.st_dev, st.st_ino)
        assert os.path.samefile(lib.probe_path, real)
        assert sc.scan_pid(10) == [] and sc.scan_pid(11) == []
    finally:
        sc.close()
    assert all(lib.fd == -1 for lib in libs)


def _lib(kind, funcs, index=0, fd=7, path="/usr/lib/libssl.so.3"):
    lib = TlsLibrary(kind, list(funcs), path, 1, 1, 2, fd)
    lib.index = index
    return lib


def test_program_parses_and_names_only_fds():
    from undertow.lang.bt.parser import parse_program

    libs = [_lib("openssl", FUNCTIONS["openssl"], 0, 7), _lib("gnutls", FUNCTIONS["gnutls"], 1, 8),
            _lib("nss", FUNCTIONS["nss"], 2, 9, "/usr/lib/libnspr4.so")]
    text = tls.build_program(libs, watch=True)
    prog = parse_program(text, origin="<undertow ssl>")
    kinds = [ap.kind for p in prog.probes for ap in p.attach]
    # 4 + 2 + 4 read/write functions (entry + return), 3 free functions, syscalls, exec + mmap
    assert kinds.count("uretprobe") == 10 and kinds.count("uprobe") == 13
    assert "/proc/self/fd/7:SSL_write_ex" in text and "/proc/self/fd/9:PR_Write" in text
    assert "libssl" not in text and "libnspr4" not in text  # the processes' paths never go into the text
    assert "sched_process_exec" in text and "sys_enter_mmap" in text
    assert "sys_enter_sendto" in text
    assert "== 4" in text  # NSS: layered descriptors only
    bare = tls.build_program([], watch=True)
    assert "uprobe" not in bare and "sys_enter_read" not in bare
    parse_program(bare)


class _Rec:
    def __init__(self, values, pid=10, tid=11, comm="curl"):
        self.values, self.pid, self.tid, self.comm, self.ts = values, pid, tid, comm, 123


def test_peer_of():
    v4 = struct.unpack("<I", socket.inet_aton("127.0.0.1"))[0]
    pm = 2 | (socket.htons(14433) << 16) | (50000 << 32)
    assert tls.peer_of(4, pm, v4, 0) == {"fd": 3, "family": "inet", "peer": "127.0.0.1:14433",
                                          "peer_addr": "127.0.0.1", "peer_port": 14433, "local_port": 50000}
    raw = socket.inet_pton(socket.AF_INET6, "fe80::1")
    a, b = struct.unpack("<QQ", raw)
    d = tls.peer_of(6, 10 | (socket.htons(443) << 16), a, b)
    assert d["peer"] == "[fe80::1]:443" and d["family"] == "inet6"
    raw = socket.inet_pton(socket.AF_INET6, "::ffff:10.1.2.3")
    a, b = struct.unpack("<QQ", raw)
    assert tls.peer_of(6, 10 | (socket.htons(443) << 16), a, b)["peer"] == "10.1.2.3:443"
    assert tls.peer_of(0, 0, 0, 0)["peer"] is None and tls.peer_of(0, 0, 0, 0)["fd"] is None
    assert tls.peer_of(2, 1, 0, 0)["peer"] == "unix"


def test_parse_record_escapes_and_encodes():
    libs = {0: _lib("openssl", FUNCTIONS["openssl"])}
    data = b"GET / HTTP/1.1\r\nX: \x1b[31m\xff\r\n\r\n"
    v4 = struct.unpack("<I", socket.inet_aton("127.0.0.1"))[0]
    rec = _Rec([0, 1, 500, 4, 2 | (socket.htons(443) << 16), v4, 0, data + b"\x00" * 8])
    d = tls.parse_record(rec, libs)
    assert d["function"] == "SSL_write" and d["direction"] == "write" and d["length"] == 500
    assert d["truncated"] and d["captured"] == len(data) + 8
    assert base64.b64decode(d["data_base64"]).startswith(data)
    assert "\x1b" not in d["data"] and "\\r\\n" in d["data"] and "\\x1b" in d["data"] and "\\xff" in d["data"]
    assert d["peer"] == "127.0.0.1:443" and d["library_kind"] == "openssl" and d["pid"] == 10 and d["tid"] == 11
    # the count caps what is shown: a short read's buffer past it is not the record's data
    d = tls.parse_record(_Rec([0, 2, 3, 0, 0, 0, 0, b"abcdef"]), libs)
    assert d["data"] == "abc" and not d["truncated"] and d["function"] == "SSL_read_ex" and d["peer"] is None
    assert tls.parse_record(_Rec([-1, 0]), libs) is None and tls.is_watch(_Rec([-1, 1]))
    assert tls.parse_record(_Rec([5, 1, 3, 0, 0, 0, 0, b"abc"]), libs) is None  # unknown library
    assert tls.parse_record(_Rec([0, 99, 3, 0, 0, 0, 0, b"abc"]), libs) is None  # unknown function


def test_max_bytes_option():
    import argparse

    from undertow.commands.ssl import _max_bytes

    assert _max_bytes("1") == 1 and _max_bytes("4096") == 4096
    for bad in ("0", "4097", "x", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            _max_bytes(bad)


def test_rescans_are_bounded(monkeypatch):
    """An exec storm: at most MAX_PENDING processes wait and MAX_SCANS_PER_S are scanned a
    second; the rest are counted (and said at exit), never queued without bound."""
    from undertow.tools import ssl_run

    class FakeScanner:
        def __init__(self):
            self.scanned = []

        def scan_pid(self, pid):
            self.scanned.append(pid)
            return []

    sc = FakeScanner()
    s = ssl_run.SslSessions(sc, pid=None, settings={}, watch=True, warn=lambda t: None)
    monkeypatch.setattr(ssl_run, "RESCAN_DELAY", 0.0)
    for pid in range(1, ssl_run.MAX_PENDING + 11):
        s.note_process(pid)
    s.note_process(1)  # already waiting: once
    assert s.skipped_scans == 10
    assert s.tick() == []
    # MAX_SCANS_PER_S, or up to twice that when the loop crossed a second's boundary
    assert ssl_run.MAX_SCANS_PER_S <= len(sc.scanned) <= 2 * ssl_run.MAX_SCANS_PER_S
    assert s.skipped_scans == 10 + ssl_run.MAX_PENDING - len(sc.scanned)


def test_text_line_escapes_what_processes_and_peers_chose():
    from undertow.commands.ssl import _line

    libs = {0: _lib("openssl", FUNCTIONS["openssl"], path="/x/\x1b]0;evil\x07/libssl.so.3")}
    d = tls.parse_record(_Rec([0, 0, 9, 0, 0, 0, 0, b"\x1b[2J\x9b\r\nok"], comm="\x1b[31mred"), libs)
    text = _line(d)
    assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text
    assert "\\x1b[31mred" in text and "<" in text and text.rstrip().endswith("\\r\\nok")
