#!/usr/bin/env python3
"""Time to resolve a few kernel types from BTF in a fresh process, cold and warm.

Work measured (issue 2): resolve task_struct.comm, sock.__sk_common.skc_daddr and the
prototypes of tcp_connect and do_sys_openat2, starting from `import undertow.kernel`.
cold = empty index cache; warm = index cached. Also the peak RSS growth of the process
over a bare interpreter. Compare: libbpf's C parser ~15 ms (measured in issue 2).

    python3 bench/btf_resolve.py [--runs 9]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

WORK = r"""
import time, json
t0 = time.perf_counter()
from undertow.kernel import Kernel
b = Kernel().btf()
b.member("struct task_struct", "comm")
b.member("struct sock", "__sk_common.skc_daddr")
b.func_proto("tcp_connect")
b.func_proto("do_sys_openat2")
t1 = time.perf_counter()
hwm = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
print(json.dumps({"ms": (t1 - t0) * 1e3, "hwm_kb": hwm}))
"""
BASE = r"""
import json
hwm = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
print(json.dumps({"ms": 0, "hwm_kb": hwm}))
"""


def run(code, cache):
    env = dict(os.environ, UNDERTOW_CACHE_DIR=cache,
               PYTHONPATH=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    a = ap.parse_args()
    # A pip install byte-compiles the package; do the same so the runs do not
    # measure the compiler (PYTHONDONTWRITEBYTECODE may be set in the caller).
    import compileall

    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    compileall.compile_dir(src, quiet=1)
    base = statistics.median(run(BASE, "")["hwm_kb"] for _ in range(3))
    cold, warm, rss = [], [], []
    for _ in range(a.runs):
        with tempfile.TemporaryDirectory() as cache:
            r = run(WORK, cache)
            cold.append(r["ms"])
            r = run(WORK, cache)
            warm.append(r["ms"])
            rss.append(r["hwm_kb"] - base)
    print(f"cold (no index)  median {statistics.median(cold):6.1f} ms  (min {min(cold):.1f})")
    print(f"warm (cached)    median {statistics.median(warm):6.1f} ms  (min {min(warm):.1f})")
    print(f"peak RSS growth  median {statistics.median(rss) / 1024:6.1f} MiB over a bare interpreter")


if __name__ == "__main__":
    main()
