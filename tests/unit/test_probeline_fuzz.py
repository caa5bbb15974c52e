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
ALPHABET = "pPreR fx:%$@()[]->.=!&|<>~*+-/\"' 0123456789_ablS3X" + "\t\x00\u00e9\x1b" + "\u00b2\u0663\u2028\udcff"  # other scripts' digits, a line separator, a raw byte
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


# --------------------------------------------------------------------------- issue 14 shapes
# depth, width, non-UTF-8 text, offsets, and special files where an ELF file is expected

import signal  # noqa: E402

from undertow.backends.ftrace.compile import compile_program  # noqa: E402
from undertow.kernel.arch import get_arch  # noqa: E402


def check_all(line: str) -> None:
    """parse -> resolve -> ftrace compile: UndertowError subclasses only, within the limits."""
    try:
        probe = parse_line(line)
    except ParseError as e:
        assert e.span is not None and e.render()
        return
    for e in probe.exprs():
        assert ir.too_deep(e) is None
    prog = ir.Program([probe])
    try:
        resolve(prog, KERNEL, arch="x86_64", types=TYPES)
        compile_program(prog, get_arch("x86_64"), group="undertow_1")
    except UndertowError as e:
        assert e.render()


@st.composite
def shaped_line(draw):
    n = draw(st.sampled_from([1, 2, 10, 62, 63, 64, 65, 200, 1000]))
    kind = draw(st.sampled_from(["deep", "wide", "postfix", "offset"]))
    if kind == "deep":
        o, c = draw(st.sampled_from([("(", ")"), ("-", ""), ("!", ""), ("(struct list_head *)", ""), ("*", ""),
                                     ("@(struct iphdr *)", ""), ("str(", ")")]))
        return "p _do_fork x=" + o * n + "%0" + c * n
    if kind == "wide":
        op = draw(st.sampled_from(["&&", "||", "+", "|", "=="]))
        return "e sched/sched_switch f:" + op.join(f"prev_pid=={i}" for i in range(n))
    if kind == "postfix":
        return "p _do_fork x=(struct list_head *)%0" + draw(st.sampled_from(["->next", ".next", "[1]"])) * n
    digits = draw(st.text(alphabet="0123456789abcdefxX", min_size=1, max_size=6))
    return draw(st.sampled_from(["p _do_fork+", "P /bin/sh:main+", "e a/b f:prev_pid=="])) + digits


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(shaped_line())
def test_depth_width_offsets(line):
    check_all(line)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(SEEDS), st.binary(min_size=1, max_size=6), st.integers(0, 200))
def test_non_utf8_bytes_in_lines(seed, raw, pos):
    bad = raw.decode("utf-8", "surrogateescape")
    pos = min(pos, len(seed))
    check_all(seed[:pos] + bad + seed[pos:])
    check_all('e sched/sched_switch f:prev_comm=="' + bad + '"||next_comm==' + bad)


@pytest.fixture(scope="module")
def special_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("special")
    fifo = str(d / "fifo")
    os.mkfifo(fifo)
    link = str(d / "link-to-fifo")
    os.symlink(fifo, link)
    return [fifo, link, "/dev/null", "/dev/zero", str(d)]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_special_files_as_uprobe_objects(special_files, data):
    """A FIFO (or a link to one), a device or a directory named as a uprobe's object is a
    ResolveError at once: opening a FIFO used to block forever."""
    path = data.draw(st.sampled_from(special_files))
    line = data.draw(st.sampled_from(["P", "R"])) + f" {path}:" + data.draw(st.sampled_from(["main", "main+4", "x"]))

    def boom(*_a):  # noqa: ANN001
        raise AssertionError(f"blocked on {path}")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(10)
    try:
        with pytest.raises(ResolveError) as ei:
            resolve(ir.Program([parse_line(line)]), KERNEL, arch="x86_64", types=TYPES)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert "not a regular file" in ei.value.message or "is a directory" in ei.value.message
