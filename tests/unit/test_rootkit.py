"""undertow rootkit's parsing and judging, without root (issue 20): the views' decoders,
the rules that decide what a table must list, the exit status, and the safe readers."""

import os
import socket
import struct

from undertow.tools.rootkit import bpfobjs, hooks, modules, processes, userspace, views
from undertow.tools.rootkit.report import Context, Report
from undertow.tools.rootkit.sockets import Held

ENABLED = """\
__x64_sys_kill (1) R I  \ttramp: 0xffffffffc0358000 (fh_ftrace_thunk+0x0/0x40 [rk]) ->fh_ftrace_thunk+0x0/0x40 [rk]
do_sys_openat2 (1) R I \ttramp: 0xffffffffa0003000 (kprobe_ftrace_handler+0x0/0x190) ->kprobe_ftrace_handler+0x0/0x190
bpf_fentry_test1 (1) R   D \ttramp: ftrace_regs_caller+0x0/0x65 direct-->bpf_trampoline_6442461608+0x0/0x1000
__x64_sys_getdents64 (1) R I ->0xffffffffc0400010
"""


def test_enabled_functions_are_parsed_with_their_callbacks():
    got = hooks.parse_enabled_functions(ENABLED)
    assert [g["function"] for g in got] == ["__x64_sys_kill", "do_sys_openat2", "bpf_fentry_test1",
                                            "__x64_sys_getdents64"]
    assert got[0]["callback"].endswith("[rk]")
    assert "kprobe_ftrace_handler" in got[1]["callback"]
    assert "bpf_trampoline" in got[2]["callback"]
    assert got[3]["callback"] == "0xffffffffc0400010"
    assert got[0]["flags"] == "RI" and got[2]["flags"] == "RD"
    assert got[0]["count"] == "1"


def test_kprobe_targets_come_from_definitions():
    defs = {"kprobe_events": "p:g/e do_sys_openat2+4 a=%di\nr:g/r vfs_read\n", "dynamic_events": ""}
    assert hooks._kprobe_targets(defs) == {"do_sys_openat2", "vfs_read"}


def test_helper_calls_are_found_in_translated_code():
    ins = [(0xB7, 1, 0, 0), (0x85, 0, 0, 1234), (0x85, 1 << 4, 0, 7), (0x95, 0, 0, 0)]
    code = b"".join(struct.pack("<BBhi", *i) for i in ins)
    assert bpfobjs.helper_calls(code) == [1234]  # src_reg 1: a BPF-to-BPF call, not a helper


def test_taint_letters_and_meanings():
    assert modules.taint_letters((1 << 12) | (1 << 13)) == "OE"
    assert modules.TAINTS[12][2] and modules.TAINTS[13][2] and not modules.TAINTS[9][2]


def _held(**kw):
    v = dict(pid=1, fd=3, inode=9, family=socket.AF_INET, type=socket.SOCK_STREAM, protocol=6, state=10, port=80,
             filter=0, netns=1)
    v.update(kw)
    return Held([v[k] for k in ("pid", "fd", "inode", "family", "type", "protocol", "state", "port", "filter",
                                "netns")])


def test_which_sockets_a_table_must_list():
    assert _held().listed()  # listening TCP
    assert not _held(state=7).listed()  # TCP_CLOSE: in no hash table
    assert _held(type=socket.SOCK_DGRAM, protocol=17, state=7, port=53).listed()  # bound UDP
    assert not _held(type=socket.SOCK_DGRAM, protocol=17, port=0).listed()  # unbound UDP
    assert _held(type=socket.SOCK_RAW, protocol=1, port=0).listed()
    assert _held(family=17, type=socket.SOCK_RAW, protocol=768).listed()  # packet
    assert not _held(family=1).listed()  # unix


def test_exit_status():
    r = Report()
    assert r.exit_status() == 0
    r.not_checked("hooks", "kprobe_events", "none here", absent=True)
    assert r.exit_status() == 0
    r.not_checked("hooks", "enabled_functions", "EPERM")
    assert r.exit_status() == 2
    r.note("userspace", "sealed memfd", "runc")
    assert r.exit_status() == 2
    r.add("bpf", "high", "x", {"a": "b", "c": "d"}, "look")
    assert r.exit_status() == 1
    assert r.findings[0].as_json()["evidence"] == {"a": "b", "c": "d"}


def test_getdents_lists_what_readdir_lists(tmp_path):
    for n in ("a", "b", "1234"):
        (tmp_path / n).write_text("")
    assert sorted(views.getdents(str(tmp_path))) == sorted(os.listdir(tmp_path))


def test_preload_file_reports_a_link_without_following_it(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    assert userspace.preload_file(str(root)) is None
    (root / "etc" / "ld.so.preload").write_text("/lib/evil.so\n")
    assert userspace.preload_file(str(root)) == ("file", b"/lib/evil.so\n")
    (root / "etc" / "ld.so.preload").unlink()
    (root / "etc" / "ld.so.preload").symlink_to("/root/secret")
    kind, content = userspace.preload_file(str(root))
    assert kind == "symlink -> /root/secret" and content == b""
    # /etc itself a link: not followed
    (root / "etc" / "ld.so.preload").unlink()
    (root / "etc").rmdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "ld.so.preload").write_text("x")
    (root / "etc").symlink_to(tmp_path / "elsewhere")
    assert userspace.preload_file(str(root)) is None


def test_mounts_over_proc_pid_are_found(tmp_path):
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mountinfo").write_text(
        f"22 1 0:5 / {tmp_path} rw - proc proc rw\n"
        f"99 22 8:1 /tmp/empty {tmp_path}/4242 rw - ext4 /dev/vda rw\n"
        f"98 22 8:1 /x {tmp_path}/sys/fs rw - ext4 /dev/vda rw\n")
    got = processes._proc_mounts(str(tmp_path))
    assert [m for m, _ in got] == [f"{tmp_path}/4242"]
    assert "ext4 /dev/vda" in got[0][1]


def test_read_small_reads_a_file_in_pieces(tmp_path):
    p = tmp_path / "big"
    p.write_bytes(b"x" * 200000)
    assert len(views.read_small(str(p), 1 << 20)) == 200000
    assert len(views.read_small(str(p), 1000)) == 1000


def test_context_defaults():
    c = Context(quick=True, proc="/nonexistent")
    assert c.quick and c.report.exit_status() == 0


def _kcore(path, vaddr, data):
    """A minimal ELF64 core: one PT_LOAD segment holding ``data`` at ``vaddr``."""
    ehdr = bytearray(64)
    ehdr[:5] = b"\x7fELF\x02"
    struct.pack_into("<Q", ehdr, 32, 64)  # e_phoff
    struct.pack_into("<HH", ehdr, 54, 56, 1)  # e_phentsize, e_phnum
    phdr = struct.pack("<IIQQQQQQ", 1, 4, 64 + 56, vaddr, 0, len(data), len(data), 4096)
    path.write_bytes(bytes(ehdr) + phdr + data)


def test_kcore_reads_a_segment(tmp_path):
    from undertow.tools.rootkit.kernelmem import Kcore

    _kcore(tmp_path / "kcore", 0xffffffff82000000, b"abcdefgh" * 4)
    kc = Kcore(str(tmp_path / "kcore"))
    try:
        assert kc.read(0xffffffff82000008, 8) == b"abcdefgh"
        assert kc.read(0xffffffff82000000 + 30, 8) is None  # past the segment
    finally:
        kc.close()


def test_a_patched_syscall_table_entry_is_reported(tmp_path, monkeypatch):
    from undertow.kernel.kallsyms import parse_kallsyms
    from undertow.tools.rootkit import kernelmem

    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "h", "6.12", "#1", "x86_64")))
    ks = parse_kallsyms(
        "ffffffff81000000 T _stext\n"
        "ffffffff81000100 T __x64_sys_read\n"
        "ffffffff81000200 T __x64_sys_write\n"
        "ffffffff81000300 T __x64_sys_open\n"
        "ffffffff81001000 T _etext\n"
        "ffffffff82000000 D sys_call_table\n"
        "ffffffff82000018 D after_table\n"
        "ffffffffc0001000 t evil_open\t[evil]\n")
    table = struct.pack("<QQQ", 0xffffffff81000100, 0xffffffff81000200, 0xffffffffc0001000)
    (tmp_path / "proc").mkdir()
    _kcore(tmp_path / "proc" / "kcore", 0xffffffff82000000, table)
    ctx = Context(proc=str(tmp_path / "proc"))
    kernelmem.check_syscall_table(ctx, ks)
    got = ctx.report.findings
    assert [f.key for f in got] == ["sys_call_table:2"], got
    assert "evil_open" in got[0].evidence["kallsyms"] and "outside" in got[0].evidence["kallsyms"]


TOUCHED = """\
__x64_sys_kill (0)            M  ->arch_ftrace_ops_list_func+0x0/0x1d0
vfs_fsync_range (0)              
do_nanosleep (0)             ->ftrace_stub+0x0/0x20
__x64_sys_getdents64 (1) R I  M \ttramp: 0xffffffffc0358000 (fh_ftrace_thunk+0x0/0x40 [rk]) ->fh_ftrace_thunk+0x0/0x40 [rk]
tcp4_seq_show (0)              
"""


def test_touched_functions_are_judged():
    ents = hooks.parse_enabled_functions(TOUCHED)
    assert [e["flags"] for e in ents][:2] == ["M", ""]
    # enabled_functions readable and listing getdents64: judged there; do_nanosleep explained by a kprobe
    got, note = hooks.judge_touched(ents, {"__x64_sys_getdents64"}, {"do_nanosleep"}, 50000)
    assert note is None
    assert [(s, e["function"]) for s, e, _ in got] == [("medium", "__x64_sys_kill"), ("low", "vfs_fsync_range"),
                                                      ("medium", "tcp4_seq_show")]
    assert "IPMODIFY" in got[0][2] and "rootkits hook" in got[2][2]
    # enabled_functions unreadable: a line with a callback is judged by the enabled rules
    got, _ = hooks.judge_touched(ents, None, set(), 50000)
    assert ("current", "__x64_sys_getdents64") in [(s, e["function"]) for s, e, _ in got]


def test_touched_functions_after_a_function_tracer_keep_only_redirecting_hooks():
    ents = hooks.parse_enabled_functions("".join(f"fn{i} (0)              \n" for i in range(3000))
                                         + "__x64_sys_kill (0)            M \n")
    got, note = hooks.judge_touched(ents, set(), set(), 4000)
    assert note and "3001 of 4000" in note
    assert [(s, e["function"]) for s, e, _ in got] == [("medium", "__x64_sys_kill")]


class _Tfs:
    """A tracefs with fixed files (None: the read is refused)."""

    def __init__(self, files):
        self.files = files

    def has(self, name):
        return name in self.files

    def read(self, name):
        from undertow.errors import TracefsError

        if self.files.get(name) is None:
            raise TracefsError(f"cannot read {name} in tracefs: Operation not permitted")
        return self.files[name]

    def instances(self):
        return []


def test_touched_functions_refused_or_absent_says_why(tmp_path):
    for files, word in (({"touched_functions": None}, "Operation not permitted"), ({}, "6.4")):
        ctx = Context(proc=str(tmp_path))
        hooks._touched(ctx, _Tfs(files), set(), None, None)
        assert not ctx.report.findings
        assert [s.what for s in ctx.report.skipped] == ["ftrace touched_functions"]
        assert word in ctx.report.skipped[0].why
    ctx = Context(proc=str(tmp_path))
    # vfs_read: where undertow's own feature probes attach (kernel/featprobes/bpf.py)
    hooks._touched(ctx, _Tfs({"touched_functions": TOUCHED + "vfs_read (0)         M  ->ftrace_stub+0x0/0x20\n",
                              "set_ftrace_filter": "vfs_fsync_range\n",
                              "dyn_ftrace_total_info": "50000 pages:200 groups: 20\n"}), set(), set(), None)
    assert [f.key for f in ctx.report.findings] == ["touched:__x64_sys_kill", "touched:do_nanosleep",
                                                   "__x64_sys_getdents64", "touched:tcp4_seq_show"]
    assert ctx.report.findings[2].severity == "high"  # a callback in module rk, which /proc/modules does not list


SEQ_KALLSYMS = (
    "ffffffff81000000 T _stext\n"
    "ffffffff81000100 T tcp_seq_start\n"
    "ffffffff81000200 T tcp_seq_stop\n"
    "ffffffff81000300 T tcp_seq_next\n"
    "ffffffff81000400 T tcp4_seq_show\n"
    "ffffffff81001000 T _etext\n"
    "ffffffff82000000 d tcp4_seq_ops\n"
    "ffffffff82000020 d udp_seq_ops\n"
    "ffffffffc0001000 t evil_show\t[evil]\n")


def test_a_patched_proc_net_seq_ops_pointer_is_reported(tmp_path):
    from undertow.kernel.kallsyms import parse_kallsyms
    from undertow.tools.rootkit import kernelmem

    ks = parse_kallsyms(SEQ_KALLSYMS)
    good = struct.pack("<QQQQ", 0xffffffff81000100, 0xffffffff81000200, 0xffffffff81000300, 0xffffffff81000400)
    (tmp_path / "proc").mkdir()
    _kcore(tmp_path / "proc" / "kcore", 0xffffffff82000000, good + good)
    ctx = Context(proc=str(tmp_path / "proc"))
    kernelmem.check_seq_ops(ctx, ks)
    assert not ctx.report.findings and not ctx.report.skipped
    assert ctx.report.notes and "tcp6_seq_ops" in ctx.report.notes[0].why  # the names kallsyms lacks
    # show swapped for a module's function, next pointing into the middle of a function
    bad = struct.pack("<QQQQ", 0xffffffff81000100, 0xffffffff81000200, 0xffffffff81000308, 0xffffffffc0001000)
    _kcore(tmp_path / "proc" / "kcore", 0xffffffff82000000, good + bad)
    ctx = Context(proc=str(tmp_path / "proc"))
    kernelmem.check_seq_ops(ctx, ks)
    got = ctx.report.findings
    assert [f.key for f in got] == ["seq_ops:udp_seq_ops.next", "seq_ops:udp_seq_ops.show"], got
    assert "evil_show" in got[1].evidence["kallsyms"] and "outside" in got[1].evidence["kallsyms"]
    assert got[1].severity == "high" and "/proc/net/udp" in got[1].title


def test_seq_ops_without_data_symbols_is_not_checked(tmp_path):
    from undertow.kernel.kallsyms import parse_kallsyms
    from undertow.tools.rootkit import kernelmem

    ctx = Context(proc=str(tmp_path))
    kernelmem.check_seq_ops(ctx, parse_kallsyms("ffffffff81000000 T _stext\nffffffff81001000 T _etext\n"))
    assert "CONFIG_KALLSYMS_ALL" in ctx.report.skipped[0].why


def test_usr_merge_twins_and_md5sums():
    from undertow.tools.rootkit import packages

    assert packages.merged_twins("/usr/bin/ls") == ["/usr/bin/ls", "/bin/ls"]
    assert packages.merged_twins("/sbin/init") == ["/sbin/init", "/usr/sbin/init"]
    assert packages.merged_twins("/usr/local/bin/x") == ["/usr/local/bin/x"]
    assert packages.parse_md5sums("0123456789abcdef0123456789ABCDEF  usr/sbin/sshd\nbad line\n") == {
        "/usr/sbin/sshd": "0123456789abcdef0123456789abcdef"}


def _fake_listener(proc, root, pid, exe_path, content):
    """/proc/PID of a process whose exe (a real file ``content``) is ``exe_path`` in ``root``."""
    real = root / exe_path.lstrip("/")
    real.parent.mkdir(parents=True, exist_ok=True)
    real.write_bytes(content)
    d = proc / str(pid)
    (d / "ns").mkdir(parents=True)
    (d / "ns" / "mnt").symlink_to("mnt:[4026531841]")
    (d / "root").symlink_to(root)
    (d / "exe").symlink_to(real)
    (d / "comm").write_text("sshd\n")


def test_listening_binaries_are_compared_with_their_package(tmp_path, monkeypatch):
    import hashlib

    from undertow.tools.rootkit import packages

    proc, root = tmp_path / "proc", tmp_path / "root"
    info = root / "var" / "lib" / "dpkg" / "info"
    info.mkdir(parents=True)
    good, evil = b"\x7fELF sshd", b"\x7fELF sshd with a backdoor"
    (info / "openssh-server.list").write_text("/.\n/usr\n/usr/sbin\n/usr/sbin/sshd\n")
    (info / "openssh-server.md5sums").write_text(f"{hashlib.md5(good).hexdigest()}  usr/sbin/sshd\n")
    (info / "coreutils.list").write_text("/bin\n/bin/true\n")  # listed before the /usr merge
    (info / "coreutils.md5sums").write_text(f"{hashlib.md5(b'true').hexdigest()}  bin/true\n")
    # exe names the path the process sees; the file the kernel opens is what is hashed
    monkeypatch.setattr(packages, "exe_of", lambda p, pid: {10: "/usr/sbin/sshd", 11: "/usr/bin/true",
                                                            12: "/opt/x/agent"}[pid])
    _fake_listener(proc, root, 10, "/usr/sbin/sshd.real", evil)
    _fake_listener(proc, root, 11, "/usr/bin/true", b"true")
    _fake_listener(proc, root, 12, "/opt/x/agent", b"agent")
    ctx = Context(proc=str(proc))
    ctx.cache["held"] = [_held(pid=10, port=22), _held(pid=11, port=99), _held(pid=12, port=7, type=socket.SOCK_DGRAM,
                                                                             protocol=17, state=7),
                         _held(pid=13, state=1)]  # an established connection: not a listener
    packages.check_listeners(ctx)
    got = ctx.report.findings
    assert [(f.key, f.severity) for f in got] == [("exe:10", "high")], got
    assert "openssh-server" in got[0].title and "tcp port 22" in got[0].evidence["listening"]
    assert hashlib.md5(evil).hexdigest() in got[0].evidence["/proc/PID/exe (md5)"]
    assert [n.title for n in ctx.report.notes] == ["pid 12 (sshd) listens and runs /opt/x/agent, which no package "
                                                   "lists"]


def test_listening_binaries_without_dpkg_are_not_checked(tmp_path, monkeypatch):
    from undertow.tools.rootkit import packages

    proc, root = tmp_path / "proc", tmp_path / "root"
    _fake_listener(proc, root, 10, "/usr/sbin/sshd", b"x")
    monkeypatch.setattr(packages, "exe_of", lambda p, pid: "/usr/sbin/sshd")
    ctx = Context(proc=str(proc))
    ctx.cache["held"] = [_held(pid=10, port=22)]
    packages.check_listeners(ctx)
    assert not ctx.report.findings and "no dpkg database" in ctx.report.skipped[0].why


def test_exe_path_is_read_from_the_process_root(tmp_path):
    from undertow.tools.rootkit import packages

    proc, root = tmp_path / "proc", tmp_path / "root"
    _fake_listener(proc, root, 10, "/usr/bin/x", b"x")
    # readlink from outside the process's namespace: a prefix the process's root lacks
    assert packages.path_in_root(str(proc), 10, "/mnt/root/usr/bin/x") == "/usr/bin/x"
    # a file of the same name elsewhere is another file: the tail that names the exe wins
    _fake_listener(proc, root, 11, "/home/u/usr/bin/x", b"other")
    assert packages.path_in_root(str(proc), 11, "/home/u/usr/bin/x") == "/home/u/usr/bin/x"
    assert packages.path_in_root(str(proc), 11, "/gone/y") == "/gone/y"
