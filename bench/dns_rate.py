#!/usr/bin/env python3
"""`undertow dns` under a query storm: the tool's CPU per query, and whether it keeps up (issue 18).

A child sends N DNS queries (UDP sendto to a listener on 127.0.0.1:53, which drains them) at
a fixed rate (default 20,000/s for 10 s) while `undertow dns --json` runs with its output to
a file. Printed: the tool's CPU time per query (user + system, from wait4's rusage, start-up
included), the share of a core it used during the storm, queries captured, records lost.

    python3 bench/dns_rate.py [--queries 200000] [--rate 20000] [--src DIR] [--profile FILE]

``--src`` runs another source tree (e.g. an exported main, for a before/after figure);
``--profile`` runs the tool under cProfile and writes the stats there.
Root needed (BPF, port 53). Traffic stays on loopback.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")

LOAD = r'''
import socket, struct, sys, time
n, rate = int(sys.argv[1]), float(sys.argv[2])
q = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x05bench\x07example\x04test\x00" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t0 = time.monotonic()
for i in range(n):
    s.sendto(q, ("127.0.0.1", 53))
    if rate:
        due = t0 + (i + 1) / rate
        while time.monotonic() < due:
            time.sleep(0.0002)
print(time.monotonic() - t0)
'''

PROBE = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ready\x04test\x00\x00\x01\x00\x01"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=200000)
    ap.add_argument("--rate", type=int, default=20000)
    ap.add_argument("--src", default=SRC)
    ap.add_argument("--profile")
    a = ap.parse_args()
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 53))
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    stop = threading.Event()

    def drain() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                srv.recv(2048)
            except OSError:
                pass

    th = threading.Thread(target=drain, daemon=True)
    th.start()
    fd, out_path = tempfile.mkstemp(prefix="ut_dns_rate_")  # O_EXCL: no planted file or link in /tmp
    os.close(fd)
    cmd = [sys.executable] + (["-m", "cProfile", "-o", a.profile] if a.profile else []) + \
        ["-m", "undertow", "dns", "--json"]
    try:
        with open(out_path, "w") as out:
            p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True,
                                 env=dict(os.environ, PYTHONPATH=a.src))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and os.path.getsize(out_path) == 0:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.sendto(PROBE, ("127.0.0.1", 53))
                time.sleep(0.3)
            res = subprocess.run([sys.executable, "-c", LOAD, str(a.queries), str(a.rate)], capture_output=True,
                                 text=True, check=True)
            took = float(res.stdout)
            time.sleep(2.0)
            p.send_signal(signal.SIGINT)
            _pid, _st, ru = os.wait4(p.pid, 0)
            err = p.stderr.read()
        n = lost = 0
        with open(out_path) as f:
            for line in f:
                if not line.startswith("{"):
                    continue
                d = json.loads(line)
                if d.get("qname") == "bench.example.test.":
                    n += 1
                elif "lost" in d:
                    lost += d["lost"]
    finally:
        stop.set()
        srv.close()
        if os.path.exists(out_path):
            os.unlink(out_path)
    cpu = ru.ru_utime + ru.ru_stime
    print(f"undertow dns, {a.queries} queries at {a.rate or 'max'}/s for {took:.1f} s ({a.src}):")
    print(f"  tool CPU {cpu:.2f} s = {cpu / a.queries * 1e6:.1f} us/query "
          f"({cpu / took:.0%} of a core over the storm, start-up included)")
    print(f"  captured {n}/{a.queries} ({n / a.queries:.2%}), lost {lost}; "
          f"{cpu / max(n, 1) * 1e6:.1f} us of tool CPU per event shown (the figure to compare when the "
          f"host is busy: lost events cost little)")
    print(f"  load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if err.strip():
        print("  stderr: " + err.strip().replace("\n", "\n  "))


if __name__ == "__main__":
    main()
