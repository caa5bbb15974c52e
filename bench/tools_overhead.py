#!/usr/bin/env python3
"""Overhead of the incident-response tools under load: the workload's slowdown and events lost.

- `undertow dns` while a child sends N DNS queries (UDP, sendto) to a listener on
  127.0.0.1:53 at a fixed rate (default 20k/s) or as fast as it can;
- `undertow connect` while a child makes N TCP connects to a listener on 127.0.0.1;
- `undertow inbound` on the same connect storm (handshakes seen by the listening side).

Slowdown = the workload's run time with the tool attached / without. Captured = events the
tool printed for the workload / operations made. Traffic stays on loopback.

    python3 bench/tools_overhead.py [--queries 100000] [--rate 20000] [--connects 5000]
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

DNS_LOAD = r'''
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

CONNECT_LOAD = r'''
import socket, sys, time
n, port = int(sys.argv[1]), int(sys.argv[2])
t0 = time.monotonic()
for _ in range(n):
    socket.create_connection(("127.0.0.1", port)).close()
print(time.monotonic() - t0)
'''


def load(code, *argv):
    out = subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True, check=True)
    return float(out.stdout)


def with_tool(tool_argv, code, argv, match):
    out_path = tempfile.mktemp(prefix="ut_bench_")
    with open(out_path, "w") as out:
        p = subprocess.Popen([sys.executable, "-m", "undertow", *tool_argv, "--json"], stdout=out,
                             stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=SRC))
        time.sleep(3.0)  # attach (the tools print nothing before their first event in --json)
        took = load(code, *argv)
        time.sleep(2.0)
        p.send_signal(signal.SIGINT)
        _pid, _st, ru = os.wait4(p.pid, 0)
        err = p.stderr.read()
    with open(out_path) as f:
        n = sum(1 for line in f if line.startswith("{") and match(json.loads(line)))
    os.unlink(out_path)
    return took, n, ru.ru_utime + ru.ru_stime, err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=100000)
    ap.add_argument("--rate", type=int, default=20000)
    ap.add_argument("--connects", type=int, default=5000)
    a = ap.parse_args()
    import compileall

    compileall.compile_dir(SRC, quiet=1)
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 53))
    stop = threading.Event()

    def drain():
        dns.settimeout(0.2)
        while not stop.is_set():
            try:
                dns.recv(2048)
            except OSError:
                pass
    th = threading.Thread(target=drain, daemon=True)
    th.start()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1024)
    port = srv.getsockname()[1]

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                c.close()
            except OSError:
                pass
    th2 = threading.Thread(target=accept, daemon=True)
    th2.start()
    try:
        base = load(DNS_LOAD, a.queries, a.rate)
        took, n, cpu, err = with_tool(["dns"], DNS_LOAD, [a.queries, a.rate],
                                      lambda d: d.get("qname") == "bench.example.test.")
        print(f"dns      {a.queries} queries at {a.rate or 'max'}/s: slowdown {took / base:.2f}x, "
              f"captured {n / a.queries:.2%}, tool CPU {cpu:.2f} s {err.strip()[:100]}")
        base = load(CONNECT_LOAD, a.connects, port)
        for tool in ("connect", "inbound"):
            took, n, cpu, err = with_tool([tool], CONNECT_LOAD, [a.connects, port],
                                          lambda d, t=tool: d.get("dport") == port and
                                          d.get("outcome") in ("established", "handshake"))
            print(f"{tool:8} {a.connects} connects: slowdown {took / base:.2f}x, captured {n / a.connects:.2%}, "
                  f"tool CPU {cpu:.2f} s {err.strip()[:100]}")
    finally:
        stop.set()
        dns.close()
        srv.close()


if __name__ == "__main__":
    main()
