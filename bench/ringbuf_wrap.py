#!/usr/bin/env python3
"""Are reservations refused while the ring is nearly empty? (a check of the consumer)

A hand-assembled program on ``syscalls:sys_enter_getppid`` reserves a 128-byte record for
every call of one child process; when the reservation fails it asks the kernel how much data
the ring holds (``bpf_ringbuf_query(BPF_RB_AVAIL_DATA)``) and keeps the smallest answer. The
consumer (undertow's RingBuffer) drains continuously. A full ring would answer close to the
ring size; a refusal with a nearly empty ring means the kernel saw a wrong ``consumer_pos``.

History (2026-12-06): with ``consumer_pos`` written by ``struct.pack_into`` (which zeroes the
field, then writes it byte by byte) Linux 6.18 refused ~150-180 of 300k records of a 16 MiB
ring after its wraps, with as little as 16 KB in use; with the position stored in one 8-byte
write (``ringbuf.u64_words``) none. Expected output now: ``0 reservations failed``.

    python3 bench/ringbuf_wrap.py [--calls 300000] [--ring-mb 16]
"""

import argparse
import os
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from undertow.backends.bpf import insn as I  # noqa: E402
from undertow.backends.bpf.asm import Asm, Reg, ret0_exit, zero_stack  # noqa: E402
from undertow.backends.bpf.ringbuf import RingBuffer  # noqa: E402
from undertow.kernel import Kernel  # noqa: E402
from undertow.kernel import syscalls as sc  # noqa: E402

REC = 128
BPF_RB_AVAIL_DATA = 0


def program(tgid):
    a = Asm()
    a.call(I.Helper.get_current_pid_tgid)
    a.rsh64(I.R0, 32)
    a.jne(I.R0, tgid, "out")
    a.ld_map_fd(I.R1, "rb")
    a.mov64(I.R2, REC)
    a.mov64(I.R3, 0)
    a.call(I.Helper.ringbuf_reserve)
    a.jeq(I.R0, 0, "full")
    a.mov64(I.R1, Reg(I.R0))
    a.mov64(I.R2, I.BPF_RB_NO_WAKEUP)
    a.call(I.Helper.ringbuf_submit)
    a.ja("out")
    a.label("full")                      # st[0] = {failures, min avail at a failure}
    a.ld_map_fd(I.R1, "rb")
    a.mov64(I.R2, BPF_RB_AVAIL_DATA)
    a.call(I.Helper.ringbuf_query)
    a.mov64(I.R6, Reg(I.R0))
    zero_stack(a, -4, 4)
    a.ld_map_fd(I.R1, "st")
    a.mov64(I.R2, Reg(I.R10))
    a.add64(I.R2, -4)
    a.call(I.Helper.map_lookup_elem)
    a.jeq(I.R0, 0, "out")
    a.mov64(I.R1, 1)
    a.atomic_add(I.DW, I.R0, 0, I.R1)
    a.ldx(I.DW, I.R1, I.R0, 8)
    a.jle(I.R1, Reg(I.R6), "out")
    a.stx(I.DW, I.R0, 8, I.R6)
    a.label("out")
    ret0_exit(a)
    return a.assemble()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300_000)
    ap.add_argument("--ring-mb", type=int, default=16)
    a = ap.parse_args()
    size = a.ring_mb << 20
    child = subprocess.Popen([sys.executable, "-S", "-c",
                              f"import os, sys\nsys.stdin.readline()\n"
                              f"for _ in range({a.calls}): os.getppid(); sum(range(40))\n"],
                             stdin=subprocess.PIPE, text=True)
    fds = []
    try:
        rb_fd = sc.map_create(sc.MapType.RINGBUF, 0, 0, size)
        st = sc.map_create(sc.MapType.ARRAY, 4, 16, 1)
        fds += [rb_fd, st]
        sc.map_update_elem(st, struct.pack("<I", 0), struct.pack("<QQ", 0, 1 << 62))
        prog = sc.prog_load(sc.ProgType.TRACEPOINT, program(child.pid).relocate({"rb": rb_fd, "st": st}),
                            license="GPL", name="ut_rb_wrap")
        fds.append(prog)
        tp = Kernel().tracefs().event_format("syscalls", "sys_enter_getppid").id
        pfd = sc.perf_event_open(sc.tracepoint_attr(tp), pid=-1, cpu=0)
        fds.append(pfd)
        sc.perf_event_set_bpf(pfd, prog)
        sc.perf_event_enable(pfd)
        rb = RingBuffer(rb_fd, size)
        got = [0]
        child.stdin.write("go\n")
        child.stdin.flush()
        while child.poll() is None or rb.pending():
            rb.consume(lambda v: got.__setitem__(0, got[0] + 1), 4096)
            time.sleep(0)
        fails, least = struct.unpack("<QQ", sc.map_lookup_elem(st, struct.pack("<I", 0), 16))
        rb.close()
        wraps = a.calls * (REC + 8) // size
        print(f"{os.uname().release}: {a.calls} calls into a {a.ring_mb} MiB ring ({wraps} wraps): "
              f"{got[0]} read, {fails} reservations failed"
              + (f", the ring holding at least {least} bytes at a failure" if fails else ""))
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    main()
