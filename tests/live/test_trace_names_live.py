"""Kernel function names and quiet dead ends on the running kernel (issue 17, items 3
and 5). The name checks run here (kallsyms needs no kprobes); what needs kprobes (a
compiler-made copy actually probed, an offset the kernel refuses with EILSEQ, registers
in hex) skips here and runs in the kernel lab (tests/lab: Debian 6.1 and 6.12)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src")
HAS_KPROBES = os.path.exists("/sys/kernel/tracing/kprobe_events") or \
    os.path.exists("/sys/kernel/debug/tracing/kprobe_events")
needs_kprobes = pytest.mark.skipif(not HAS_KPROBES, reason="this kernel has no kprobe_events (CONFIG_KPROBES=n); "
                                                           "runs in the lab")


def undertow(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run([sys.executable, "-m", "undertow", *args], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)


def kallsyms() -> str:
    with open("/proc/kallsyms") as f:
        return f.read()


def test_a_function_this_kernel_does_not_have():
    if re.search(r" [tT] _do_fork$", kallsyms(), re.M):
        pytest.skip("this kernel still has _do_fork")
    r = undertow("trace", "-S", "p _do_fork comm=%0->comm")
    assert r.returncode == 1, r.stderr
    assert "error: no function _do_fork in this kernel" in r.stderr
    if re.search(r" [tT] kernel_clone$", kallsyms(), re.M):
        assert "hint: _do_fork became kernel_clone (Linux 5.10)" in r.stderr
    assert "Traceback" not in r.stderr


def _single_copy(base: str) -> str:
    copies = sorted(set(re.findall(rf" [tT] ({re.escape(base)}(?:\.(?:constprop|isra|part)\.\d+)+)$", kallsyms(),
                                   re.M)))
    if re.search(rf" [tT] {re.escape(base)}$", kallsyms(), re.M) or len(copies) != 1:
        pytest.skip(f"{base} is not a single compiler-made copy in this kernel ({copies or 'plain'})")
    return copies[0]


def test_show_names_the_copy():
    copy = _single_copy("__netif_receive_skb_core")
    r = undertow("trace", "-S", "p __netif_receive_skb_core")
    assert r.returncode == 0, r.stderr
    assert f"undertow trace: note: __netif_receive_skb_core is {copy} in this kernel" in r.stderr
    # (the COMM at the event is fetched too: __comm=$comm:string)
    assert re.search(rf"^kprobe_events \+= p:\S+ {re.escape(copy)}( __comm=\$comm:string)?$", r.stdout, re.M), \
        r.stdout


@needs_kprobes
def test_a_copy_is_probed():
    copy = _single_copy("__netif_receive_skb_core")
    # loopback packets until the tracer is done (its start takes 10-60 s under the lab's TCG)
    ping = subprocess.Popen([sys.executable, "-c", "import socket, time\n"
                             "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                             "for i in range(1200): s.sendto(b'x', ('127.0.0.1', 9)); time.sleep(0.1)"])
    try:
        r = undertow("trace", "--count", "1", "--duration", "100", "p __netif_receive_skb_core skb=%di")
    finally:
        ping.kill()
        ping.wait()
    assert r.returncode == 0, r.stderr
    assert f"note: __netif_receive_skb_core is {copy}" in r.stderr
    lines = [line for line in r.stdout.splitlines() if "skb=" in line]
    assert lines and re.search(r" skb=0x[0-9a-f]+$", lines[0]), r.stdout  # a register, in hex


@needs_kprobes
def test_an_offset_inside_an_instruction():
    # kernel_clone starts with a 4-byte endbr64 or a 5-byte ftrace nop: +1 is inside it
    r = undertow("trace", "--duration", "1", "p kernel_clone+1")
    assert r.returncode == 1, r.stderr
    assert ("error: the kernel refused a kprobe at kernel_clone+1: +1 is not the start of an instruction of "
            "kernel_clone") in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_sched_stat_wait_while_schedstats_are_off():
    try:
        with open("/proc/sys/kernel/sched_schedstats") as f:
            value = f.read().strip()
    except OSError:
        pytest.skip("no kernel.sched_schedstats (CONFIG_SCHEDSTATS=n)")
    if value != "0" or not os.path.isdir("/sys/kernel/tracing/events/sched/sched_stat_wait"):
        pytest.skip(f"kernel.sched_schedstats is {value}, or no sched_stat_wait tracepoint")
    r = undertow("trace", "--duration", "0.5", "e sched/sched_stat_wait")
    assert r.returncode == 0, r.stderr
    assert "warning: sched/sched_stat_wait fires only while scheduler statistics are collected, and " \
           "kernel.sched_schedstats is 0 here" in r.stderr
