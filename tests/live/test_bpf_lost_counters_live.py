"""Records the ring buffer refused are counted and reported: the session reads the programs'
lost counters from a mapped array (BPF_F_MMAPABLE) instead of bpf() lookups (issue 18)."""

import os
import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))")


def test_ringbuf_losses_counted_while_the_reader_is_stopped():
    n = 100_000
    p = subprocess.Popen([sys.executable, "-m", "undertow", "run", "--drain", "--buffer-mb", "1", "-e",
                          'tracepoint:syscalls:sys_enter_getppid /comm == "ut_lostcheck"/ { printf("g %d\\n", pid); }'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline()
        assert "Attaching" in first, first
        p.send_signal(signal.SIGSTOP)  # the reader sleeps: a 1 MiB ring fills and refuses the rest
        try:
            code = (f"open('/proc/self/comm', 'w').write('ut_lostcheck')\nimport os\n"
                    f"for _ in range({n}): os.getppid()\n")
            subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
        finally:
            p.send_signal(signal.SIGCONT)
        p.send_signal(signal.SIGINT)  # --drain: what the ring holds is shown first (a slow lab VM)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    shown = sum(1 for line in out.splitlines() if line.startswith("g "))
    assert "ringbuf_full" in err, err[-500:]
    lost = int(err.split("lost ")[1].split()[0])
    assert shown > 0 and lost > 0 and shown + lost == n, (shown, lost, err[-500:])
