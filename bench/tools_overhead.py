#!/usr/bin/env python3
"""The incident-response tools under load: events per second held, lost, and the tool's CPU.

Issue 18's bar: each tool holds 20,000 events/s for 10 s with 0 loss and at most 25% of a
core. For each tool a child process makes the tool's kind of event at a paced rate (default
20k/s for 10 s) while ``undertow TOOL --json`` runs; the bench reports per tool:

- the rate the workload reached (a Python child cannot fork+exec 20k times a second on a
  small VM: exec/exit show what it could make, and say so);
- captured: the workload's events the tool printed / operations made;
- lost: what the tool reported lost (``{"lost": N}`` lines) — never silent;
- tool CPU during the load, as a share of one core (user+system time of the tool's process
  from /proc/PID/stat, over the load's wall time), and in all (start to exit, with the drain);
  per event: the CPU during the load over the events offered (the 25% bar at 20k/s is 12.5 us;
  on a shared machine the share swings with what else runs, the CPU per event much less).

Workloads (loopback only, as the project's rules say):
  dns        UDP queries (sendto) to a listener on 127.0.0.1:53
  icmp       ICMP echo requests on a raw socket to 127.0.0.1 (each also gets the kernel's reply)
  connect    TCP connects to a listener on 127.0.0.1 (accepted and closed)
  inbound    TCP connects to a closed port on 127.0.0.1 (refused: RST), the knocks it must see
  filewatch  write(2) calls on a watched file
  exec/exit  fork + exec of /bin/true

    python3 bench/tools_overhead.py [--rate 20000] [--seconds 10] [--tools dns,icmp,...]
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
CLK_TCK = os.sysconf("SC_CLK_TCK")

#: A paced loop: op(i) for i in range(n), the i-th at t0 + i/rate (rate 0: as fast as it can).
PACE = r'''
import os, socket, struct, sys, time
n, rate = int(sys.argv[1]), float(sys.argv[2])
arg = sys.argv[3] if len(sys.argv) > 3 else ""
{setup}
t0 = time.monotonic()
for i in range(n):
    {op}
    if rate and i % 16 == 15:
        due = t0 + (i + 1) / rate
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
print(time.monotonic() - t0)
'''

WORKLOADS = {
    "dns": dict(
        setup='q = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\\x05bench\\x07example\\x04test\\x00" '
              '+ struct.pack(">HH", 1, 1)\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
        op='s.sendto(q, ("127.0.0.1", 53))',
        match=lambda d, ctx: d.get("qname") == "bench.example.test."),
    "icmp": dict(
        setup='s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)\n'
              'def pkt(seq):\n'
              '    h = struct.pack("!BBHHH", 8, 0, 0, 0x4242, seq & 0xffff) + b"undertow-bench"\n'
              '    c = sum(struct.unpack("!%dH" % (len(h) // 2), h)); c = (c >> 16) + (c & 0xffff); c += c >> 16\n'
              '    return h[:2] + struct.pack("!H", ~c & 0xffff) + h[4:]',
        op='s.sendto(pkt(i), ("127.0.0.1", 0))',
        match=lambda d, ctx: d.get("type") in (8, "echo-request", "echo request") or d.get("icmp_type") == 8),
    "connect": dict(
        setup='port = int(arg)',
        op='socket.create_connection(("127.0.0.1", port)).close()',
        match=lambda d, ctx: d.get("dport") == ctx["port"]),
    "inbound": dict(
        setup='port = int(arg)\n'
              'def knock():\n'
              '    c = socket.socket()\n'
              '    try:\n'
              '        c.connect(("127.0.0.1", port))\n'
              '    except OSError:\n'
              '        pass\n'
              '    c.close()',
        op='knock()',
        match=lambda d, ctx: d.get("dport") == ctx["closed"] or d.get("port") == ctx["closed"]),
    "filewatch": dict(
        setup='fd = os.open(arg, os.O_WRONLY)',
        op='os.pwrite(fd, b"x", 0)',
        match=lambda d, ctx: True),
    "exec": dict(
        setup='',
        op='os.waitpid(os.posix_spawn("/bin/true", ["true", "undertow-bench"], {}), 0)',
        match=lambda d, ctx: "undertow-bench" in json.dumps(d)),
    "exit": dict(
        setup='',
        op='os.waitpid(os.posix_spawn("/bin/true", ["true", "undertow-bench"], {}), 0)',
        match=lambda d, ctx: d.get("comm") == "true"),
}


def cpu_seconds(pid, part=None):
    """utime + stime of ``pid`` (fields 14 and 15 of /proc/PID/stat), in seconds (``part``:
    ``"user"`` or ``"system"`` alone)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    user, system = int(fields[11]), int(fields[12])
    return {"user": user, "system": system}.get(part, user + system) / CLK_TCK


def run_load(tool, n, rate, arg):
    w = WORKLOADS[tool]
    code = PACE.format(setup=w["setup"], op=w["op"])
    out = subprocess.run([sys.executable, "-c", code, str(n), str(rate), str(arg)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout)


def measure(tool, tool_argv, n, rate, arg, ctx):
    fd, out_path = tempfile.mkstemp(prefix="ut_bench_")  # O_EXCL: no planted file or link in /tmp
    os.close(fd)
    with open(out_path, "w") as out:
        p = subprocess.Popen([sys.executable, "-m", "undertow", *tool_argv, "--json"], stdout=out,
                             stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=SRC))
        try:
            last, still = -1.0, 0
            for _ in range(120):  # start-up settles: its CPU time stops growing for 0.6 s
                time.sleep(0.2)
                c = cpu_seconds(p.pid)
                still = still + 1 if c == last else 0
                last = c
                if still >= 3:
                    break
            c0, s0 = cpu_seconds(p.pid), cpu_seconds(p.pid, "system")
            took = run_load(tool, n, rate, arg)
            c1, s1 = cpu_seconds(p.pid), cpu_seconds(p.pid, "system")
            time.sleep(2.0)
            p.send_signal(signal.SIGINT)
            _pid, _st, ru = os.wait4(p.pid, 0)
            err = p.stderr.read()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    got = lost = 0
    with open(out_path) as f:
        for line in f:
            if not line.startswith("{"):
                continue
            d = json.loads(line)
            if "lost" in d and len(d) <= 3:
                lost += int(d["lost"])
            elif WORKLOADS[tool]["match"](d, ctx):
                got += 1
    os.unlink(out_path)
    return dict(took=took, captured=got, lost=lost, cpu_load=c1 - c0, sys_load=s1 - s0,
                cpu_all=ru.ru_utime + ru.ru_stime,
                err=err.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=20000, help="operations per second (0: as fast as possible)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--tools", default="dns,icmp,connect,inbound,filewatch,exec,exit")
    a = ap.parse_args()
    import compileall

    compileall.compile_dir(SRC, quiet=1)
    n = int(a.rate * a.seconds) if a.rate else 200000
    stop = threading.Event()
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tools = a.tools.split(",")
    if "dns" in tools:
        try:
            dns.bind(("127.0.0.1", 53))
        except OSError as e:
            print(f"dns: skipped, cannot listen on 127.0.0.1:53 ({e.strerror})")
            tools.remove("dns")
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4096)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
    ctx = {"port": srv.getsockname()[1], "closed": closed.getsockname()[1]}

    def drain():
        dns.settimeout(0.2)
        while not stop.is_set():
            try:
                dns.recv(2048)
            except OSError:
                pass

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                c.close()
            except OSError:
                pass
    for fn in (drain, accept):
        threading.Thread(target=fn, daemon=True).start()
    watched = tempfile.NamedTemporaryFile(prefix="ut_bench_watch_", delete=False)
    watched.close()
    args = {"connect": ctx["port"], "inbound": ctx["closed"], "filewatch": watched.name}
    argvs = {"filewatch": ["filewatch", watched.name], "inbound": ["inbound", "--port", str(ctx["closed"])]}
    print(f"{'tool':10} {'offered':>16} {'captured':>9} {'lost':>6} {'CPU (load)':>11} {'CPU (all)':>9} "
          f"{'per event':>9}")
    try:
        for tool in tools:
            arg = args.get(tool, "")
            base = run_load(tool, n, a.rate, arg)
            r = measure(tool, argvs.get(tool, [tool]), n, a.rate, arg, ctx)
            offered = n / r["took"]
            per_op = 1
            note = "" if not a.rate or offered >= 0.95 * a.rate else f" (the workload reached {offered:.0f}/s)"
            print(f"{tool:10} {n:>7} @ {offered:>6.0f}/s {r['captured'] / n:>9.1%} {r['lost']:>6} "
                  f"{r['cpu_load'] / r['took']:>10.1%} {r['cpu_all']:>8.2f}s "
                  f"{r['cpu_load'] / (n * per_op) * 1e6:>6.1f} us ({r['sys_load'] / (n * per_op) * 1e6:.1f} system)"
                  f"  slowdown {r['took'] / base:.2f}x{note}"
                  + (f"  [{per_op} events per operation]" if per_op > 1 else "")
                  + (f"\n{'':10} stderr: {r['err'][-200:]}" if r["err"] else ""), flush=True)
    finally:
        stop.set()
        for s in (dns, srv, closed):
            s.close()
        os.unlink(watched.name)


if __name__ == "__main__":
    main()
