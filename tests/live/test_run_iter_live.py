"""`undertow run` iterator probes on this kernel (issue 16): iter:task and iter:task_file
read to their end, ctx members typed from BTF, the run ending by itself with END and the
maps, as bpftrace 0.17 runs them. Skipped, with the kernel's reason, where the kernel has
no such iterator (the feature probe: kernel/featprobes/bpf.py)."""

import os
import subprocess
import sys
import tempfile

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bpf(2))")


def run(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "undertow", "run", *args], capture_output=True, text=True,
                          timeout=timeout)


def need(iterator):
    from undertow.kernel import Kernel

    f = Kernel().features().get(f"bpf_iter_{iterator}")
    if f is None or not f.available:
        pytest.skip(f"iter:{iterator}: {f.reason if f is not None else 'not probed'}")


def own_comm():
    with open("/proc/self/comm") as f:
        return f.read().strip()


def test_iter_task_lists_this_process():
    need("task")
    res = run("-e", 'iter:task { printf("%d %s\\n", ctx->task->pid, ctx->task->comm); }')
    assert res.returncode == 0, res.stderr
    assert f"{os.getpid()} {own_comm()}" in res.stdout.splitlines(), res.stdout[-2000:]


def test_iter_task_prints_for_every_task_and_the_end_as_bpftrace():
    # bpftrace's own case (tests/runtime/call: iter:task): the program also runs for the
    # final call, with a NULL task, when it reads no pointer of ctx
    need("task")
    res = run("-e", 'iter:task { printf("OK\\n"); }')
    assert res.returncode == 0, res.stderr
    n = res.stdout.count("OK\n")
    tasks = sum(len(os.listdir(f"/proc/{p}/task")) for p in os.listdir("/proc") if p.isdigit()
                and os.path.isdir(f"/proc/{p}/task"))
    assert n > 1 and abs(n - tasks) < max(50, tasks // 2), (n, tasks)


def test_iter_task_file_sees_an_open_file():
    need("task_file")
    with tempfile.NamedTemporaryFile(prefix="undertow-iter-") as f:
        name = os.path.basename(f.name)
        fd = f.fileno()
        res = run("-e", f'it:task_file /ctx->task->tgid == {os.getpid()}/ {{ printf("%d %s\\n", ctx->fd, '
                        'str(ctx->file->f_path.dentry->d_name.name)); }')
    assert res.returncode == 0, res.stderr
    assert f"{fd} {name}" in res.stdout.splitlines(), res.stdout[-2000:]


def test_begin_end_and_maps_go_with_an_iterator():
    need("task")
    res = run("-e", 'BEGIN { printf("begin\\n"); } iter:task { @tasks = count(); @c[ctx->task->comm] = count(); } '
                    'END { printf("end\\n"); }')
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.index("begin\n") < out.index("end\n") < out.index("@tasks: ")
    assert f"@c[{own_comm()}]: " in out


def test_info_says_what_the_feature_probe_says():
    from undertow.kernel import Kernel

    res = run("--info", timeout=60)
    assert res.returncode == 0, res.stderr
    feats = Kernel().features()
    for name in ("task", "task_file"):
        want = "yes" if feats.available(f"bpf_iter_{name}") and feats.available("btf") else "no"
        assert f"  iter:{name}: {want}\n" in res.stderr, res.stderr
