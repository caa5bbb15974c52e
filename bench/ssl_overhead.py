#!/usr/bin/env python3
"""`undertow ssl`: the cost per TLS record at a paced rate (default 10,000 records/s for 5 s).

A Python `ssl` client (OpenSSL: one ``SSL_write_ex`` per record) sends RECORD-byte records at
the rate to a Python `ssl` server on 127.0.0.1 that reads them (``SSL_read_ex``). Runs:

- ``baseline``: no tracer;
- ``pid``: ``undertow ssl --json --pid CLIENT`` (the client's writes only: RATE records/s);
- ``all``: ``undertow ssl --json`` (the client's writes and the server's reads: ~2x RATE).

For each run: the client's CPU time (user+system, its own ``os.times()``) per record and the
difference to the baseline (the probes' cost in the traced process: two uprobe traps per
call, the program, the syscall tracepoints inside the call); the tool's CPU share of one core
during the load (/proc/PID/stat) and per record shown; records shown and lost. Loopback only.

    python3 bench/ssl_overhead.py [--rate 10000] [--seconds 5] [--record 100] [--src DIR]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
CLK_TCK = os.sysconf("SC_CLK_TCK")

SERVER = r"""
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0)); ls.listen(4)
print(ls.getsockname()[1], flush=True)
while True:
    c, _ = ls.accept()
    s = ctx.wrap_socket(c, server_side=True)
    n = 0
    while True:
        d = s.recv(65536)
        if not d:
            break
        n += len(d)
    s.close()
"""

CLIENT = r"""
import os, socket, ssl, sys, time
port, n, rate, size = (int(x) for x in sys.argv[1:5])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
print("ready", flush=True)
sys.stdin.readline()
rec = b"x" * (size - 12)
c0 = os.times()
t0 = time.monotonic()
for i in range(n):
    s.sendall(b"REC%08d:" % i + rec)
    if i % 32 == 31:
        due = t0 + (i + 1) / rate
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
wall = time.monotonic() - t0
c1 = os.times()
s.close()
print(wall, (c1.user - c0.user) + (c1.system - c0.system), flush=True)
"""


def cpu_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def one_run(mode, port, args, src):
    client = subprocess.Popen([sys.executable, "-c", CLIENT, str(port), str(args.rate * args.seconds),
                               str(args.rate), str(args.record)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert client.stdout.readline().strip() == "ready"
    tool = None
    out = tempfile.TemporaryFile()
    try:
        if mode != "baseline":
            cmd = [sys.executable, "-m", "undertow", "ssl", "--json", "--max-bytes", str(args.record)]
            if mode == "pid":
                cmd += ["--pid", str(client.pid)]
            tool = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True,
                                    env=dict(os.environ, PYTHONPATH=src))
            time.sleep(args.warmup)  # the start (scan, compile, attach): not part of the load
        t_cpu0 = cpu_of(tool.pid) if tool else 0.0
        t0 = time.monotonic()
        client.stdin.write("go\n")
        client.stdin.flush()
        wall, ccpu = (float(x) for x in client.stdout.readline().split())
        t1 = time.monotonic()
        time.sleep(0.3)  # the tool reads what is left (its 20-50 ms timer)
        t_cpu1 = cpu_of(tool.pid) if tool else 0.0
        client.wait(timeout=60)
        err = ""
        if tool:
            tool.send_signal(signal.SIGINT)
            _o, err = tool.communicate(timeout=60)
        out.seek(0)
        shown = lost = 0
        for line in out:
            if line.startswith(b'{"lost"'):
                lost += json.loads(line)["lost"]
            elif line.startswith(b"{") and b"REC" in line:
                shown += 1
        n = args.rate * args.seconds
        return {"mode": mode, "records": n, "wall_s": round(wall, 3), "rate": round(n / wall),
                "client_cpu_s": round(ccpu, 3), "client_us_per_record": round(ccpu / n * 1e6, 2),
                "tool_core_share": round((t_cpu1 - t_cpu0) / (t1 - t0 + 0.3), 3) if tool else None,
                "tool_us_per_record_shown": round((t_cpu1 - t_cpu0) / shown * 1e6, 1) if tool and shown else None,
                "shown": shown, "lost": lost, "stderr": err.strip()[-300:]}
    finally:
        for p in (client, tool):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        out.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--record", type=int, default=100, help="bytes per record (>= 16)")
    ap.add_argument("--warmup", type=float, default=4.0, help="seconds left to the tool to attach")
    ap.add_argument("--src", default=SRC, help="the undertow source tree to run")
    ap.add_argument("--modes", default="baseline,pid,all")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root")
    d = tempfile.mkdtemp(prefix="ut-sslbench")
    server = None
    try:
        key, cert = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
                       check=True, capture_output=True)
        server = subprocess.Popen([sys.executable, "-c", SERVER, cert, key], stdout=subprocess.PIPE, text=True)
        port = int(server.stdout.readline())
        base = None
        for mode in args.modes.split(","):
            r = one_run(mode, port, args, args.src)
            if mode == "baseline":
                base = r
            elif base is not None:
                r["client_extra_us_per_record"] = round(r["client_us_per_record"] - base["client_us_per_record"], 2)
            print(json.dumps(r), flush=True)
    finally:
        if server is not None:
            server.kill()
            server.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
