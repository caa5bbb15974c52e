"""Unit tests for the responder tools' hook-set choice (undertow.tools.hooksets) and its
section in `undertow doctor`: a fake kernel (features, kallsyms, BTF, tracefs) stands for this
host (no kprobes, no fentry) and for the lab's kernels (both); nothing probes the running one."""

from __future__ import annotations

import json
from types import SimpleNamespace

from undertow.commands import doctor
from undertow.kernel.features import Feature
from undertow.tools import hooksets
from undertow.tools.filewatch_prog import VFS_FUNCS

from test_doctor import this_machine

ALL_FUNCS = {"udp_sendmsg", "udpv6_sendmsg", "tcp_sendmsg", "raw_sendmsg", "ping_v4_sendmsg", "page_offset_base", "vmemmap_base", "__dev_direct_xmit", "tcp_conn_request",
             "tcp_check_req", "tcp_v4_connect", "tcp_v6_connect", "sk_error_report"}


class FakeBTF:
    """BTF as 6.12's: the VFS functions, enum iter_type, iov_iter with __iov, struct page."""

    def __init__(self, funcs):
        self.funcs = set(funcs)

    def find(self, name, kind, hints=True):
        if kind == "func" and name in self.funcs:
            return SimpleNamespace(name=name)
        if kind == "struct" and name in ("page", "pt_regs"):
            return SimpleNamespace(name=name, size=64 if name == "page" else 168)
        raise LookupError(name)

    def enum_constant(self, name):
        v = {"ITER_UBUF": 0, "ITER_IOVEC": 1, "ITER_BVEC": 2, "ITER_KVEC": 3}.get(name)
        return None if v is None else (v, None)

    def members(self, t):
        return [SimpleNamespace(name=n) for n in ("iter_type", "iov_offset", "__iov", "kvec", "bvec", "ubuf",
                                                  "count", "nr_segs")]


class FakeTracefs:
    def __init__(self, rx_sk=True, events=("module:module_load", "syscalls:sys_enter_finit_module")):
        self.rx_sk, self.have = rx_sk, set(events)

    def event_format(self, group, event):
        fields = [SimpleNamespace(name="skbaddr")] + ([SimpleNamespace(name="rx_sk")] if self.rx_sk else [])
        return SimpleNamespace(fields=fields)

    def events(self, pattern="*"):
        return [tuple(pattern.split(":"))] if pattern in self.have else []


class FakeKernel:
    def __init__(self, kprobes=False, fentry=False, syms=ALL_FUNCS, rx_sk=True):
        feats = this_machine()
        if kprobes:
            feats.features["bpf_kprobe"] = Feature("bpf_kprobe", True, "works")
        if fentry:
            feats.features["bpf_fentry"] = Feature("bpf_fentry", True, "works")
        self._features = feats
        self.syms, self.rx_sk = set(syms), rx_sk

    def features(self):
        return self._features

    def kallsyms(self):
        return self.syms

    def btf(self):
        return FakeBTF(VFS_FUNCS)

    def tracefs(self):
        return FakeTracefs(self.rx_sk)


def _by_tool(kernel):
    return {c.tool: c for c in hooksets.all_choices(kernel)}


def test_this_host_uses_tracepoints_and_says_why():
    got = _by_tool(FakeKernel())
    assert list(got) == list(hooksets.TOOLS)
    for tool in ("dns", "icmp", "arp", "inbound", "connect"):
        assert got[tool].hooks == "tracepoints", tool
        assert "no BPF kprobes" in got[tool].why and "CONFIG_KPROBES=n" in got[tool].why, tool
    assert "io_uring" in got["dns"].why  # what stays blind is said
    assert got["filewatch"].hooks == "syscalls" and "no fentry" in got["filewatch"].why
    assert got["exec"].hooks == "bpf"
    assert got["exit"].hooks == "tracepoints"
    assert got["modules"].hooks == "tracepoints" and "module:module_load" in got["modules"].detail


def test_lab_kernel_uses_kernel_functions():
    got = _by_tool(FakeKernel(kprobes=True, fentry=True))
    for tool in ("dns", "icmp", "arp", "inbound", "connect"):
        assert got[tool].hooks == "kprobes", (tool, got[tool].why)
    assert "udp_sendmsg" in got["dns"].detail
    f = got["dns"].extra["facts"]
    assert f.iov == "__iov" and f.iters["ITER_BVEC"] == 2 and f.funcs == ["udp_sendmsg", "udpv6_sendmsg", "tcp_sendmsg"]
    assert got["filewatch"].hooks == "vfs" and "fentry work" in got["filewatch"].why
    # the tools' own selectors answer the same (one piece of code decides)
    forced = hooksets.filewatch_choice(FakeKernel(kprobes=True, fentry=True), force="syscalls")
    assert forced.hooks == "syscalls" and forced.why == "--hooks syscalls"


def test_missing_function_names_it():
    c = hooksets.choose("connect", FakeKernel(kprobes=True, syms=ALL_FUNCS - {"sk_error_report"}))
    assert c.hooks == "tracepoints" and "lacks sk_error_report" in c.why


def test_inbound_rx_sk_passed_to_the_tool():
    c = hooksets.choose("inbound", FakeKernel(rx_sk=False))
    assert c.extra["rx_sk"] is False and "no rx_sk" in c.why
    assert hooksets.choose("inbound", FakeKernel()).extra["rx_sk"] is True


def test_a_failing_check_does_not_hide_the_others(monkeypatch):
    def boom(kernel):
        raise RuntimeError("broken")

    monkeypatch.setitem(hooksets._CHOOSERS, "icmp", boom)
    got = _by_tool(FakeKernel())
    assert got["icmp"].hooks == "unknown" and "broken" in got["icmp"].why
    assert got["dns"].hooks == "tracepoints"


def test_doctor_lists_every_tool_in_text_and_json():
    tools = hooksets.all_choices(FakeKernel())
    text = doctor.render_text(this_machine(), tools=tools)
    assert max(len(l) for l in text.splitlines()) <= 100
    sect = text[text.index("responder tools"):]
    for tool in hooksets.TOOLS:
        assert any(l.startswith(f"  {tool} ") for l in sect.splitlines()), tool
    row = [l for l in sect.splitlines() if l.startswith("  connect ")][0]
    assert row.split()[1] == "tracepoints" and "no BPF kprobes" in row
    doc = json.loads(doctor.render_json(this_machine(), tools=tools))
    assert set(doc["tools"]) == set(hooksets.TOOLS)
    assert doc["tools"]["filewatch"]["hooks"] == "syscalls"
    assert {"hooks", "detail", "why"} == set(doc["tools"]["dns"])
    # a -v line is the same text
    assert hooksets.choose("connect", FakeKernel()).text().startswith("tracepoints: sock:inet_sock_set_state")


def test_dns_kprobe_program_parses_and_names_the_syscall():
    import os

    from undertow.lang.bt import parse_program
    from undertow.tools import dns_kprobes
    from undertow.tools.dns import DnsQuery

    f = hooksets.choose("dns", FakeKernel(kprobes=True)).extra["facts"]
    f.funcs.append("udp_sendpage")
    text = dns_kprobes.program(f)
    probes = parse_program(text).probes
    assert len(probes) == 2 + 3 + 1  # connect/close, the three sendmsg, udp_sendpage
    assert "msg_iter.__iov" in text and "kaddr(\"vmemmap_base\")" in text
    q = DnsQuery()
    q.syscall, q.batch = "udp_sendmsg", (5 << 16) | 44
    dns_kprobes.fix_call(q)
    if os.uname().machine == "x86_64":
        assert q.syscall == "sendto" and q.batch == 5
    q.syscall, q.batch = "tcp_sendmsg", 0xFFFF
    assert dns_kprobes.fix_call(q).syscall == "io_uring"


def test_dns_kprobe_record_with_a_raw_peer_address():
    from undertow.tools.dns import parse_record

    class Rec:
        pid = 5
    msg = bytes.fromhex("123401000001000000000000") + b"\x01a\x04test\x00\x00\x01\x00\x01"
    r = Rec()
    r.values = ["udp_sendmsg", (2 << 24) | (2 << 16) | 53, (44 << 32) | len(msg), 0, bytes([127, 0, 0, 9]), msg]
    q = parse_record(r)
    assert q.resolver == "127.0.0.9" and q.message.questions[0].name == "a.test." and q.transport == "udp"
    r.values[4] = bytes(15) + b"\x01"
    assert parse_record(r).resolver == "::1"


def test_icmp_kprobe_program_parses():
    from undertow.lang.bt import parse_program
    from undertow.tools import icmp_kprobes

    f = hooksets.choose("icmp", FakeKernel(kprobes=True)).extra["facts"]
    assert f.funcs == ["raw_sendmsg", "ping_v4_sendmsg"]  # the v6 ones only where kallsyms has them
    text = icmp_kprobes.program(f)
    assert "kprobe:raw_sendmsg" in text and "ping_v6_sendmsg" not in text
    assert "sys_enter_sendto" not in text and "sys_exit_recvfrom" in text  # receives stay on tracepoints
    assert len(parse_program(text).probes) == 3 + 4 + 1 + 2
