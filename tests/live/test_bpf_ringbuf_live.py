"""A hand-assembled tracepoint program writes to a BPF ring buffer; the mmap consumer reads it.

Ground truth: the test calls getppid() itself and expects a record carrying its own
pid_tgid; then a flood into a 4 KiB ring counts reserve failures in an ARRAY map.
"""

import os
import struct

import pytest

from undertow.backends.bpf import insn as I
from undertow.backends.bpf.asm import Asm, Reg, ret0_exit, zero_stack
from undertow.backends.bpf.ringbuf import RingBuffer, drain_all
from undertow.errors import BPFError
from undertow.kernel import Kernel
from undertow.kernel import syscalls as sc


def count_and_exit(a, lost):
    """lost[0] += 1, then return 0 (label "out" skips the count)."""
    zero_stack(a, -4, 4)
    a.ld_map_fd(I.R1, lost)
    a.mov64(I.R2, Reg(I.R10))
    a.add64(I.R2, -4)
    a.call(I.Helper.map_lookup_elem)
    a.jeq(I.R0, 0, "out")
    a.mov64(I.R1, 1)
    a.atomic_add(I.DW, I.R0, 0, I.R1)
    a.label("out")
    ret0_exit(a)
    return a.assemble()


def program(rb="rb", lost="lost", size=8):
    a = Asm()
    a.ld_map_fd(I.R1, rb)
    a.mov64(I.R2, size)
    a.mov64(I.R3, 0)
    a.call(I.Helper.ringbuf_reserve)
    a.jeq(I.R0, 0, "full")
    a.mov64(I.R6, Reg(I.R0))
    a.call(I.Helper.get_current_pid_tgid)
    a.stx(I.DW, I.R6, 0, I.R0)
    a.mov64(I.R1, Reg(I.R6))
    a.mov64(I.R2, I.BPF_RB_NO_WAKEUP)
    a.call(I.Helper.ringbuf_submit)
    ret0_exit(a)
    a.label("full")                      # count the loss: lost[0] += 1
    return count_and_exit(a, lost)


@pytest.fixture
def tp_id():
    try:
        return Kernel().tracefs().event_format("syscalls", "sys_enter_getppid").id
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"no syscalls:sys_enter_getppid tracepoint: {e}")


def attach(prog_fd, tp):
    # A BPF program hangs off the tracepoint itself (its trace_event_call), so one
    # perf event on one CPU runs it on every CPU; a second SET_BPF says EEXIST.
    pfd = sc.perf_event_open(sc.tracepoint_attr(tp), pid=-1, cpu=0)
    sc.perf_event_set_bpf(pfd, prog_fd)
    sc.perf_event_enable(pfd)
    return [pfd]


@pytest.mark.parametrize("ring_size,calls,window", [(1 << 16, 5, None), (4096, 2000, None), (1 << 16, 3500, 4096)])
def test_ringbuf_records_and_loss(tp_id, ring_size, calls, window):
    """The last case moves a one-page window over the data area ~14 times (and wraps)."""
    try:
        rb_fd = sc.map_create(sc.MapType.RINGBUF, 0, 0, ring_size)
    except BPFError as e:
        pytest.skip(f"no BPF ring buffer: {e}")
    lost_fd = sc.map_create(sc.MapType.ARRAY, 4, 8, 1)
    fds = []
    rb = None
    before = len(os.listdir("/proc/self/fd"))
    try:
        prog = sc.prog_load(sc.ProgType.TRACEPOINT, program().relocate({"rb": rb_fd, "lost": lost_fd}),
                            license="GPL", name="ut_rb")
        fds.append(prog)
        perf = attach(prog, tp_id)
        fds += perf
        rb = RingBuffer(rb_fd, ring_size) if window is None else RingBuffer(rb_fd, ring_size, window=window)
        for _ in range(calls):
            os.getppid()
        recs = drain_all(rb)
        if window is not None:  # a second pass wraps past the end of the data area
            for _ in range(calls):
                os.getppid()
            recs += drain_all(rb)
            calls *= 2
        lost = struct.unpack("<Q", sc.map_lookup_elem(lost_fd, struct.pack("<I", 0), 8))[0]
        mine = [r for r in recs if struct.unpack("<Q", r)[0] >> 32 == os.getpid()]
        if ring_size > 4096:
            assert len(mine) >= calls and lost == 0
            assert all(len(r) == 8 and struct.unpack("<Q", r)[0] >> 32 > 0 for r in recs)  # whole records
        else:
            # 4 KiB holds ~250 16-byte records: the rest must be counted, not silently lost
            assert lost > 0 and len(mine) + lost >= calls
    finally:
        if rb is not None:
            rb.close()
        for fd in fds + [rb_fd, lost_fd]:
            os.close(fd)
    assert len(os.listdir("/proc/self/fd")) <= before


def test_ring_more_than_half_full_spills_to_the_backlog(tp_id):
    """A ring over half full is copied out in one go (the producers get the space back at
    once); the records then come from the backlog, whole and all of them."""
    size, calls = 1 << 16, 3000  # 3000 x 16 B = 48 KB: over half of 64 KiB
    rb_fd = sc.map_create(sc.MapType.RINGBUF, 0, 0, size)
    lost_fd = sc.map_create(sc.MapType.ARRAY, 4, 8, 1)
    fds, rb = [], None
    try:
        prog = sc.prog_load(sc.ProgType.TRACEPOINT, program().relocate({"rb": rb_fd, "lost": lost_fd}),
                            license="GPL", name="ut_rb_spill")
        fds.append(prog)
        fds += attach(prog, tp_id)
        rb = RingBuffer(rb_fd, size, window=4096)
        for _ in range(calls):
            os.getppid()
        got = []
        assert rb.consume(lambda v: got.append(bytes(v)), limit=10) == 10
        assert rb._backlog_bytes > size // 2 - 16 * 10
        ring_left = struct.unpack("<Q", rb._prod[:8])[0] - struct.unpack("<Q", rb._cons[:8])[0]
        assert ring_left < size // 4          # the kernel ring was given back
        got += drain_all(rb)
        mine = [r for r in got if struct.unpack("<Q", r)[0] >> 32 == os.getpid()]
        assert len(mine) == calls and all(len(r) == 8 for r in got) and rb._backlog_bytes == 0
    finally:
        if rb is not None:
            rb.close()
        for fd in fds + [rb_fd, lost_fd]:
            os.close(fd)


def refusals_program(size, rb="rb", lost="lost"):
    """Reserve 16 bytes per getppid(); a refused reservation while the kernel says the ring
    holds under half of ``size`` (bpf_ringbuf_query(BPF_RB_AVAIL_DATA), asked right after) is
    counted in lost[0]."""
    a = Asm()
    a.ld_map_fd(I.R1, rb)
    a.mov64(I.R2, 16)
    a.mov64(I.R3, 0)
    a.call(I.Helper.ringbuf_reserve)
    a.jeq(I.R0, 0, "refused")
    a.mov64(I.R1, Reg(I.R0))
    a.mov64(I.R2, I.BPF_RB_NO_WAKEUP)
    a.call(I.Helper.ringbuf_submit)
    ret0_exit(a)
    a.label("refused")
    a.ld_map_fd(I.R1, rb)
    a.mov64(I.R2, 0)                     # BPF_RB_AVAIL_DATA
    a.call(I.Helper.ringbuf_query)
    a.jgt(I.R0, size // 2, "out")        # really filling up: the consumer's fault, not counted
    return count_and_exit(a, lost)


def test_consumer_position_is_never_seen_half_written(tp_id):
    """The consumer stores consumer_pos in one 8-byte write. struct.pack_into zeroes the field
    before writing it: a reservation on another CPU in between read 0, and once the producer
    had wrapped the ring that looked full (Linux 6.18: ~150 refusals per 300k records of a
    16 MiB ring, with the ring almost empty). A child makes the records while this process
    drains; the ring wraps ~18 times. A ring that really fills up (a slow machine) is not
    counted, except that the consumer may move it to its backlog in one go between a refusal
    and the query: at most one such refusal per move (``spills``)."""
    import subprocess
    import sys

    size, calls = 1 << 18, 200_000
    rb_fd = sc.map_create(sc.MapType.RINGBUF, 0, 0, size)
    lost_fd = sc.map_create(sc.MapType.ARRAY, 4, 8, 1)
    fds, rb, child = [], None, None
    try:
        prog = sc.prog_load(sc.ProgType.TRACEPOINT, refusals_program(size).relocate({"rb": rb_fd, "lost": lost_fd}),
                            license="GPL", name="ut_rb_tear")
        fds.append(prog)
        fds += attach(prog, tp_id)
        rb = RingBuffer(rb_fd, size)
        child = subprocess.Popen([sys.executable, "-S", "-c", f"import os\nfor _ in range({calls}): os.getppid(); sum(range(20))\n"])
        got = [0]

        def count(_view):
            got[0] += 1

        while child.poll() is None or rb.pending():
            rb.consume(count, 4096)
        refused = struct.unpack("<Q", sc.map_lookup_elem(lost_fd, struct.pack("<I", 0), 8))[0]
        assert got[0] * 32 >= 4 * size  # it wrapped (records are 16 bytes + an 8-byte header, rounded)
        assert refused <= rb.spills, (refused, rb.spills)
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        if rb is not None:
            rb.close()
        for fd in fds + [rb_fd, lost_fd]:
            os.close(fd)
