"""The ftrace and BPF backends agree, field by field, on the same activity (issue 17).

Every probe-line feature (casts, member chains, arrays, the S/X/ip_/b16_/B16_ prefixes,
strings, $retval, $comm, registers, filters of every operator, skb header views) is traced
by both backends at once, attached before one workload process does its work (files, a
refused TCP connect and ICMP echoes to 127.0.0.1, a libc call); the events of that process
are then compared as a user sees them (text of every field). A difference fails the test.
A line one backend cannot express must be refused with a clear error (FtraceUnsupported),
never run with other values; it is then checked on the backend that can.

Tracepoint and uprobe lines run on this host; kprobe lines (``p``/``r``) where the kernel
has kprobes (the lab's 6.1 and 6.12: tests/lab/run runs this file in its live tier).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

import undertow
from undertow.errors import UndertowError
from undertow.events import Event
from undertow.kernel import Kernel
from undertow.output.text import render_fields

PORT = 9  # discard: nothing listens on loopback here, so the connect is refused

WORKLOAD = textwrap.dedent(r"""
    import os, socket, struct, sys, time
    print("ready", flush=True)  # started: the tracers attach now (opens of the start-up are not traced)
    sys.stdin.readline()  # both tracers are attached
    path = sys.argv[1]
    for _ in range(2):
        with open(path, "w") as f:
            f.write("undertow backends agree\n")
        os.getpid()
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", %(port)d))
    except OSError:
        pass
    s.close()
    def csum(b):
        s = sum(struct.unpack("!%%dH" %% (len(b) // 2), b))
        s = (s >> 16) + (s & 0xffff)
        return ~(s + (s >> 16)) & 0xffff
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    for seq in (1, 2):
        h = struct.pack("!BBHHH", 8, 0, 0, 0x4242, seq) + b"undertow"
        r.sendto(h[:2] + struct.pack("!H", csum(h)) + h[4:], ("127.0.0.1", 0))
        time.sleep(0.05)
    socket.getaddrinfo("127.0.0.1", "9", flags=socket.AI_NUMERICHOST)
    time.sleep(0.3)
""") % {"port": PORT}

# (id, lines): the lines of one case run together on each backend
TRACEPOINT_CASES = [
    ("syscall-fields", ["e syscalls/sys_enter_openat dfd flags mode", "e syscalls/sys_exit_openat ret"]),
    ("syscall-filter-ops", ["e syscalls/sys_enter_write fd count f:count>=5&&count<1000&&fd!=1&&!(fd<=0)",
                            "e syscalls/sys_exit_write r=ret f:r>0||r==-1"]),
    # a computed field on a tracepoint: ftrace shows the event's own fields only
    ("comm-field", ['e syscalls/sys_enter_getpid c=$comm f:comm=="{comm}"']),
    ("comm-filter", ['e syscalls/sys_enter_getpid f:comm=="{comm}"&&common_pid>1']),
    ("sock-prefixes", ["e sock/inet_sock_set_state b16_sp=sport dport family protocol oldstate newstate "
                       f"f:dport=={PORT}"]),
    ("sock-arrays", ["e sock/inet_sock_set_state daddr saddr"]),
]
UPROBE_CASES = [
    ("uprobe-registers", ["P libc:getaddrinfo a=%di b=%si flags=+0x0(%dx)"]),
    ("uretprobe-retval", ["R libc:getaddrinfo r=$retval S=S$retval"]),
]
KPROBE_CASES = [
    ("skb-views", ["p __netif_receive_skb_core proto=@(struct iphdr *)l3%0->protocol "
                   "ip_src=@(struct iphdr *)l3%0->saddr ip_dst=@(struct iphdr *)l3%0->daddr "
                   "ttl=@(struct iphdr *)%0->ttl f:proto==1&&ip_src==127.0.0.1"]),
    ("skb-payload", ["p __netif_receive_skb_core proto=@(struct iphdr *)l3%0->protocol "
                     "data=X@(struct iphdr *)l3%0->sdata[1] f:proto==1"]),
    ("member-chains", ["p tcp_connect ip_d=sk->__sk_common.skc_daddr dport=sk->__sk_common.skc_dport "
                       "b16_dp=sk->__sk_common.skc_dport B16_x=sk->__sk_common.skc_dport "
                       "fam=((struct sock *)%0)->__sk_common.skc_family f:ip_d==127.0.0.1"]),
    ("casts-and-signs", ["p tcp_connect S=S%0->sk_protocol U=U%0->sk_protocol X=X%0->sk_protocol "
                         "st=sk->__sk_common.skc_state"]),
    ("kretprobe", ["r tcp_connect r=$retval", "r do_sys_openat2 fd=$retval f:fd>=0"]),
    ("kernel-strings", ["p do_sys_openat2 filename c=$comm f:filename~\"*undertow-agree*\""]),
]

#: cases one backend refuses (with a clear error), and which: a tracepoint's computed field
#: ($comm) and a payload after the IPv4 header (its length, IHL, is read from the packet) run
#: on BPF only; a glob match (~) on ftrace only (the kernel's event filter matches globs)
ONE_BACKEND = {"comm-field": "ftrace", "skb-payload": "ftrace", "kernel-strings": "bpf"}


def _kernel():
    try:
        k = Kernel()
        k.tracefs()
        return k
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"tracefs unusable: {e}")


def shown(rec: Event):
    """What a user sees of an event, minus time and CPU: (probe, tid, comm, fields as text).
    The probe's name too: both backends name a line's events alike (kprobe:f, uprobe:libc:f)."""
    return (rec.probe, rec.tid, rec.comm, render_fields(rec.fields, rec.formats))


def run_both(lines, tmp_path):
    """Both backends attached to ``lines`` for one run of the workload:
    ({backend: sorted shown events of the workload}, {backend: refusal})."""
    target = str(tmp_path / "undertow-agree.txt")
    proc = subprocess.Popen([sys.executable, "-c", WORKLOAD, target], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    tracers, refused, started = {}, {}, {}
    try:
        assert proc.stdout.readline() == "ready\n"
        with open(f"/proc/{proc.pid}/comm") as f:
            comm = f.read().strip()  # python3 here, python3.11 in the lab
        lines = [line.replace("{comm}", comm) for line in lines]
        for backend in ("ftrace", "bpf"):
            try:
                tracers[backend] = undertow.trace(*lines, backend=backend, pid=proc.pid, drain=True)
            except UndertowError as e:
                refused[backend] = e
        for b, t in tracers.items():
            t.start()
            started[b] = time.monotonic()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.wait(timeout=120) == 0
        events = {}
        for b, t in tracers.items():
            # the events wait in the kernel's buffers: read for one second more
            t.duration = time.monotonic() - started[b] + 1.0
            events[b] = sorted(shown(r) for batch in t.batches() for r in batch
                               if isinstance(r, Event) and r.pid == proc.pid)
            # drain=True: everything made before the stop is shown, nothing lost or left
            assert not any(t.stats.lost.values()) and not t.stats.not_drained, (b, t.stats.lost)
        return events, refused
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for t in tracers.values():
            t.close()


def agree(lines, tmp_path, refuses=None):
    """Both backends show the same events; only ``refuses`` (a backend) may refuse the lines,
    with an error that says why."""
    events, refused = run_both(lines, tmp_path)
    assert set(refused) <= ({refuses} if refuses else set()), {b: e.message for b, e in refused.items()}
    for b, e in refused.items():
        assert e.__class__.__name__ in ("FtraceUnsupported", "NoBackendError") and e.message, e
    assert events, "no backend could run these lines"
    for b, evs in events.items():
        assert evs, f"{b}: no event of the workload for {lines}"
    if len(events) == 2 and events["ftrace"] != events["bpf"]:
        f, b = Counter(events["ftrace"]), Counter(events["bpf"])
        pytest.fail(f"the backends disagree on {lines}:\n  only ftrace: {sorted((f - b).elements())}\n"
                    f"  only bpf: {sorted((b - f).elements())}\n  both: {len(list((f & b).elements()))} events")
    return events


@pytest.mark.parametrize("case,lines", TRACEPOINT_CASES, ids=[c for c, _ in TRACEPOINT_CASES])
def test_tracepoint_lines_agree(case, lines, tmp_path):
    _kernel()
    agree(lines, tmp_path, refuses=ONE_BACKEND.get(case))


@pytest.mark.parametrize("case,lines", UPROBE_CASES, ids=[c for c, _ in UPROBE_CASES])
def test_uprobe_lines_agree(case, lines, tmp_path):
    k = _kernel()
    if not k.tracefs().has("uprobe_events"):
        pytest.skip("no uprobe_events in this kernel")
    agree(lines, tmp_path)


@pytest.mark.parametrize("case,lines", KPROBE_CASES, ids=[c for c, _ in KPROBE_CASES])
def test_kprobe_lines_agree(case, lines, tmp_path):
    k = _kernel()
    if not k.tracefs().has("kprobe_events"):
        pytest.skip("this kernel has no kprobes (CONFIG_KPROBES=n); runs in the lab")
    agree(lines, tmp_path, refuses=ONE_BACKEND.get(case))
