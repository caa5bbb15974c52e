"""`undertow run` with USDT probes, uprobe arguments from DWARF and stack arguments (issue 16),
on programs built here with gcc and <sys/sdt.h> (systemtap-sdt-dev); skipped without them.

Ground truth is in the programs: the values they pass to their markers and functions.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))")

PROG = r"""
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
#include <stdio.h>
#include <unistd.h>

unsigned short ut_ready_semaphore __attribute__((section(".probes"), used));
unsigned short ut_sym_semaphore __attribute__((section(".probes"), used));
unsigned short ut_twice_semaphore __attribute__((section(".probes"), used));
long counter = 40;
int small = -7;
struct rec { int a; char name[8]; };

__attribute__((noinline, noipa)) int with_stack(long a, long b, long c, long d, long e, long f, long g, long h)
{
    return (int)(a + b + c + d + e + f + g + h);
}

__attribute__((noinline, noipa)) int take(struct rec *r, int *n, char c)
{
    return r->a + *n + c;
}

static inline void inlined(int x) { DTRACE_PROBE2(ut, twice, x, 999); }

int main(int argc, char **argv)
{
    (void)argv;
    struct rec r = { 123, "hello" };
    int n = 13;
    for (int i = 0; i < (argc > 1 ? 600 : 3); i++) {  /* with an argument: a minute */
        counter++;
        DTRACE_PROBE2(ut, sym, counter, small);
        if (ut_ready_semaphore)
            DTRACE_PROBE2(ut, ready, ut_ready_semaphore, -5);
        inlined(i);
        inlined(i + 10);
        with_stack(1, 2, 3, 4, 5, 6, 32, 64);
        take(&r, &n, 'x');
        usleep(100000);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def prog():
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    d = tempfile.mkdtemp(prefix="ut_usdt_")
    src = os.path.join(d, "prog.c")
    with open(src, "w") as f:
        f.write(PROG)
    exe = os.path.join(d, "prog")
    res = subprocess.run(["gcc", "-O2", "-g", "-no-pie", "-o", exe, src], capture_output=True, text=True)
    if res.returncode != 0:
        shutil.rmtree(d, ignore_errors=True)
        pytest.skip(f"cannot build a USDT program (systemtap-sdt-dev?): {res.stderr.strip()[:200]}")
    yield exe
    shutil.rmtree(d, ignore_errors=True)


def run(*args, timeout=60):
    res = subprocess.run([sys.executable, "-m", "undertow", "run", *args], capture_output=True, text=True,
                         timeout=timeout)
    assert "Traceback" not in res.stderr, res.stderr
    return res


def test_symbol_and_semaphore_arguments(prog):
    res = run("-e", f'usdt:{prog}:ut:sym {{ printf("%d %d\\n", arg0, arg1); }} '
                    f'usdt:{prog}:ut:ready {{ printf("sem %d %d\\n", arg0, arg1); }}', "-c", prog)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "Attaching 2 probes..."
    assert [x for x in lines if not x.startswith("sem")][1:4] == ["41 -7", "42 -7", "43 -7"]
    # the kernel counted the semaphore up while the probe was attached: the marker fired
    assert [x for x in lines if x.startswith("sem")] == ["sem 1 -5"] * 3


def test_every_location_of_an_inlined_marker(prog):
    res = run("-e", f'usdt:{prog}:ut:twice {{ @[arg0] = count(); }}', "-c", prog)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("Attaching 2 probes...")
    for x in (0, 1, 2, 10, 11, 12):
        assert f"@[{x}]: 1" in res.stdout, res.stdout


def test_usdt_by_pid_and_listing(prog):
    p = subprocess.Popen([prog, "long"])
    try:
        for _ in range(500):  # until it has exec'd the program
            try:
                if os.readlink(f"/proc/{p.pid}/exe") == prog:
                    break
            except OSError:
                pass
            time.sleep(0.01)
        listed = run("-l", "usdt:*", "-p", str(p.pid))
        assert f"usdt:/proc/{p.pid}/root{prog}:ut:sym" in listed.stdout.splitlines(), listed.stdout
        res = run("-e", 'usdt::ut:sym { printf("%s\\n", probe); exit(); }', "-p", str(p.pid))
        assert res.stdout.splitlines()[1] == f"usdt:/proc/{p.pid}/root{prog}:ut:sym", res.stdout + res.stderr
    finally:
        p.kill()
        p.wait()


def test_args_by_name_from_dwarf_and_stack_arguments(prog):
    res = run("-e", f'uprobe:{prog}:take {{ printf("%d %d %c %s\\n", args->r->a, *(args->n), args->c, '
                    f'args->r->name); exit(); }} '
                    f'uprobe:{prog}:with_stack {{ printf("stack %d %d\\n", sarg0, sarg1); }}', "-c", prog)
    assert res.returncode == 0, res.stderr
    assert "123 13 x hello" in res.stdout.splitlines(), res.stdout
    assert "stack 32 64" in res.stdout.splitlines(), res.stdout
    listed = run("-lv", f"uprobe:{prog}:take")
    assert listed.stdout == f"uprobe:{prog}:take\n    struct rec* r\n    int* n\n    char c\n"
