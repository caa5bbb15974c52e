"""Property tests: no input makes the parser or resolver raise anything but its own errors."""

from __future__ import annotations

import os
import sys

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from undertow.errors import ParseError, ResolveError, TypeCheckError, UndertowError  # noqa: E402
from undertow.lang.probeline import parse_line  # noqa: E402
from undertow.lang.resolve import resolve  # noqa: E402
from undertow.lang import ir  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lang_fakes import TYPES, FakeKernel  # noqa: E402

SEEDS = [
    "p _do_fork comm=%0->comm  uesrs=S%0->mm->mm_users f:common_pid==1&&(comm==python||users<4)",
    "p __netif_receive_skb_core proto=@(struct iphdr *)l3%0->protocol data=X@(struct iphdr *)l3%0->sdata[1] "
    "f:proto==1&&ip_src==127.0.0.1",
    "p _do_fork comm=%0->comm  node=%0->pids[1].node.next",
    "r filp_open pos=$retval->f_pos f:pos>0",
    "p tcp_connect sk->__sk_common.skc_daddr ip_d=(struct sock *)%0->__sk_common.skc_daddr",
    'e sched/sched_switch f:prev_comm=="a b" || !(next_pid < 5)',
    "e syscalls/sys_enter_open* f:comm~\"ba*\"",
    "p _do_fork+0x15 r=%r12 $stack b16_x=%0->pid",
]
ALPHABET = "pPreR fx:%$@()[]->.=!&|<>~*+-/\"' 0123456789_ablS3X" + "\t\x00\u00e9\x1b"
ALLOWED = (ParseError, ResolveError, TypeCheckError)
KERNEL = FakeKernel(kprobes=True)


def check(line: str) -> None:
    try:
        probe = parse_line(line)
    except ParseError as e:
        assert e.span is not None and e.render()
        return
    assert isinstance(probe, ir.Probe)
    try:
        resolve(ir.Program([probe]), KERNEL, arch="x86_64", types=TYPES)
    except ALLOWED as e:
        assert e.render()
    except UndertowError as e:  # e.g. the fixture tracefs refusing a path: still ours, never a traceback
        assert e.render()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=ALPHABET, max_size=60))
def test_random_text(line):
    check(line)


@st.composite
def mutated(draw):
    s = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(s)))
        op = draw(st.sampled_from(["del", "ins", "dup", "cut"]))
        if op == "del" and s:
            s = s[:i] + s[i + 1:]
        elif op == "ins":
            s = s[:i] + draw(st.sampled_from(list(ALPHABET))) + s[i:]
        elif op == "dup":
            j = draw(st.integers(i, len(s)))
            s = s[:i] + s[i:j] * 2 + s[j:]
        else:
            s = s[:i]
    return s


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_examples(line):
    check(line)


def test_seeds_are_valid():
    for line in SEEDS:
        parse_line(line)
