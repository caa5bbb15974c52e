#!/usr/bin/env python3
"""Slowdown of a syscall-heavy program traced by undertow's ptrace backend, against
``strace --seccomp-bpf -f -e trace=openat`` with the same filter (issue 21).

Workloads (C, built into a temporary directory with cc):
  storm  bench/gen/openat_storm.c N        every call traced (openat) or close
  mix    bench/gen/syscall_mix.c N 20      one openat + close + 20 getppid per round

Each runs untraced, under strace (``-o /dev/null``, one line per openat with its result) and
under ``undertow trace -c CMD 'e syscalls/sys_enter_openat' 'e syscalls/sys_exit_openat'``
(stdout to /dev/null: also one record per call with its result); the program prints its own
elapsed time (tracer start-up excluded), the slowdown is traced / untraced. Medians of
--runs; also ``--backend ptrace -p`` is not measured (every syscall stops: see docs/ptrace.md).

    python3 bench/ptrace_overhead.py [--runs 3] [--n 20000]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")


def build(tmp):
    out = {}
    for name in ("openat_storm", "syscall_mix"):
        exe = os.path.join(tmp, name)
        subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "gen", name + ".c")], check=True)
        out[name] = exe
    return out


def elapsed(argv, env=None):
    """The program's own elapsed seconds (its last line of output on stdout)."""
    res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    if res.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {res.stderr[-500:]}")
    nums = [ln for ln in res.stdout.splitlines() if ln.strip() and ln[0].isdigit()]
    return float(nums[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()
    if not shutil.which("strace"):
        raise SystemExit("strace is not installed")
    env = dict(os.environ, PYTHONPATH=SRC)
    tmp = tempfile.mkdtemp(prefix="ut_bench_")
    try:
        exes = build(tmp)
        workloads = [("storm", [exes["openat_storm"], str(args.n)]),
                     ("mix", [exes["syscall_mix"], str(args.n), "20"])]
        for wname, cmd in workloads:
            base, st, ut = [], [], []
            for _ in range(args.runs):
                base.append(elapsed(cmd))
                st.append(elapsed(["strace", "-f", "--seccomp-bpf", "-qq", "-e", "trace=openat", "-o", "/dev/null",
                                   "--", *cmd]))
                # the program's line goes to stdout with undertow's events: --json keeps them apart
                ut.append(elapsed([sys.executable, "-m", "undertow", "trace", "--no-summary", "-c", " ".join(cmd),
                                   "e syscalls/sys_enter_openat", "e syscalls/sys_exit_openat"], env=env))
            b = statistics.median(base)
            print(f"{wname:6} N={args.n}: untraced {b:.3f} s | strace {statistics.median(st):.3f} s "
                  f"({statistics.median(st) / b:.1f}x) | undertow ptrace {statistics.median(ut):.3f} s "
                  f"({statistics.median(ut) / b:.1f}x)  [runs: {args.runs}]", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
