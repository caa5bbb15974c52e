"""`undertow run` loading a program this boot already compiled (backends/bpf/progcache.py).

A cached program was compiled by another process: what depends on the process that loads
it (its own pid, filtered out of every probe; the start of `elapsed`) must be that
process's, not the compiling one's. The tests make the activity themselves: the undertow
process calls bpf(2) from its read loop, so a probe on sys_enter_bpf sees it unless the
self filter holds the right pid.
"""

import os
import re
import subprocess
import sys
import tempfile
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))")

SELF_AND_ELAPSED = ('tracepoint:syscalls:sys_enter_bpf { @calls[pid] = count(); } '
                    'interval:ms:400 { printf("elapsed %d\\n", elapsed / 1000000); exit(); }')


def _run(*args, env=None):
    p = subprocess.Popen([sys.executable, "-m", "undertow", "run", "-v", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return p.pid, out, err


@pytest.fixture
def cache_env():
    with tempfile.TemporaryDirectory(prefix="ut-progcache-") as d:
        yield dict(os.environ, UNDERTOW_CACHE_DIR=d)


def _pids(out):
    return {int(m) for m in re.findall(r"^@calls\[(\d+)\]: \d+$", out, re.M)}


def _elapsed_ms(out):
    m = re.search(r"^elapsed (\d+)$", out, re.M)
    assert m, out
    return int(m.group(1))


def test_a_cached_program_filters_the_loading_process_and_times_from_its_start(cache_env):
    pid1, out1, err1 = _run("-e", SELF_AND_ELAPSED, env=cache_env)
    assert "kept for the next run" in err1 and "from this boot's cache" not in err1
    time.sleep(1.0)  # a start time baked in at compile time would show up as >1400 ms below
    pid2, out2, err2 = _run("-e", SELF_AND_ELAPSED, env=cache_env)
    assert "from this boot's cache" in err2, err2
    for pid, out in ((pid1, out1), (pid2, out2)):
        assert pid not in _pids(out), (pid, out)  # the loading process is not traced
        assert 350 <= _elapsed_ms(out) < 1300, out


def test_a_hit_imports_no_front_end(cache_env):
    """What makes a hit fast: neither the parser, the resolver nor the code generator is
    imported (their imports and work are most of a compiling run's start-up)."""
    prog = 'BEGIN { printf("hit\\n"); exit(); }'
    front_end = ("undertow.lang.bt.parser", "undertow.lang.resolve", "undertow.lang.resolve_bt",
                 "undertow.backends.bpf.compiler", "undertow.backends.bpf.gen")
    for round_ in ("compiled", "cached"):
        res = subprocess.run([sys.executable, "-X", "importtime", "-m", "undertow", "run", "-v", "-e", prog],
                             capture_output=True, text=True, timeout=120, env=cache_env)
        assert res.returncode == 0 and res.stdout.endswith("hit\n\n\n"), res.stderr
        imported = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines()
                    if line.startswith("import time:")}
        assert ("from this boot's cache" in res.stderr) == (round_ == "cached")
        if round_ == "compiled":
            assert set(front_end) <= imported
        else:
            assert not imported & set(front_end), sorted(imported & set(front_end))


def test_no_cache_compiles_again_and_volatile_programs_are_not_kept(cache_env):
    _run("-e", 'BEGIN { printf("a\\n"); exit(); }', env=cache_env)
    _pid, out, err = _run("--no-cache", "-e", 'BEGIN { printf("a\\n"); exit(); }', env=cache_env)
    assert out.endswith("a\n\n\n") and "from this boot's cache" not in err
    cg = "/sys/fs/cgroup"
    if not os.path.isdir(cg):
        pytest.skip("no cgroup2 mount at /sys/fs/cgroup")
    prog = 'BEGIN { printf("%%d\\n", cgroupid("%s") > 0); exit(); }' % cg
    _pid, out, err = _run("-e", prog, env=cache_env)
    assert out.endswith("1\n\n\n") and "not cached: cgroupid()" in err, err
    _pid, out, err = _run("-e", prog, env=cache_env)
    assert "from this boot's cache" not in err


def test_a_cached_program_with_kernel_struct_casts(cache_env):
    """Casts keep the vmlinux BTF they were resolved with: it is cached as a reference."""
    prog = ('tracepoint:syscalls:sys_enter_getppid /pid == %d/ { $t = (struct task_struct *)curtask; '
            'printf("parent %%d\\n", $t->real_parent->tgid); exit(); }')
    marker = "parent"
    for round_ in ("compiled", "cached"):
        p = subprocess.Popen([sys.executable, "-m", "undertow", "run", "-v", "-e", prog % os.getpid()],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cache_env)
        assert "Attaching" in p.stdout.readline()
        os.getppid()
        out, err = p.communicate(timeout=120)
        assert f"{marker} {os.getppid()}\n" in out, out + err
        assert ("from this boot's cache" in err) == (round_ == "cached"), err
