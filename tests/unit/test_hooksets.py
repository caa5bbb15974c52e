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

ALL_FUNCS = {"udp_sendmsg", "udpv6_sendmsg", "tcp_sendmsg", "__dev_direct_xmit", "tcp_conn_request",
             "tcp_check_req", "tcp_v4_connect", "tcp_v6_connect", "sk_error_report"}


class FakeBTF:
    def __init__(self, funcs):
        self.funcs = set(funcs)

    def find(self, name, kind, hints=True):
        if kind == "func" and name in self.funcs:
            return SimpleNamespace(name=name)
        raise LookupError(name)


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
    for tool in ("dns", "arp", "inbound", "connect"):
        assert got[tool].hooks == "tracepoints", tool
        assert "no BPF kprobes" in got[tool].why and "CONFIG_KPROBES=n" in got[tool].why, tool
    assert "io_uring" in got["dns"].why  # what stays blind is said
    assert got["filewatch"].hooks == "syscalls" and "no fentry" in got["filewatch"].why
    assert got["exec"].hooks == "bpf"
    assert got["exit"].hooks == "tracepoints"
    assert got["modules"].hooks == "tracepoints" and "module:module_load" in got["modules"].detail


def test_lab_kernel_uses_kernel_functions():
    got = _by_tool(FakeKernel(kprobes=True, fentry=True))
    for tool in ("dns", "arp", "inbound", "connect"):
        assert got[tool].hooks == "kprobes", (tool, got[tool].why)
    assert "udp_sendmsg" in got["dns"].detail
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
    doc = json.loads(doctor.render_json(this_machine(), tools))
    assert set(doc["tools"]) == set(hooksets.TOOLS)
    assert doc["tools"]["filewatch"]["hooks"] == "syscalls"
    assert {"hooks", "detail", "why"} == set(doc["tools"]["dns"])
    # a -v line is the same text
    assert hooksets.choose("connect", FakeKernel()).text().startswith("tracepoints: sock:inet_sock_set_state")
