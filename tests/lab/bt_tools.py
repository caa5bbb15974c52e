#!/usr/bin/env python3
"""Which bpftrace tools `undertow run` attaches on the running kernel (for docs/bpftrace.md's table).

Runs each tools/*.bt for a few seconds while some activity happens (file reads, execs, a
loopback TCP connect) and prints one line per tool: attached or not, lines of output, and
the first error line. Run it on the host and inside the lab kernels:

    python3 tests/lab/bt_tools.py [--seconds 3] [TOOL.bt ...]
    python3 tests/lab/lab.py run --kernel 6.12 -- python3 tests/lab/bt_tools.py
"""

import argparse
import glob
import os
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "..", "fixtures", "bt", "tools")


def activity(stop: threading.Event) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    while not stop.is_set():
        with open("/etc/passwd", "rb") as f:
            f.read()
        subprocess.run(["/bin/true"])
        c = socket.create_connection(("127.0.0.1", port))
        s, _ = srv.accept()
        c.sendall(b"x")
        s.recv(1)
        c.close()
        s.close()
        os.sync()
        time.sleep(0.05)
    srv.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("tools", nargs="*")
    a = ap.parse_args()
    tools = a.tools or sorted(glob.glob(os.path.join(TOOLS, "*.bt")))
    for tool in tools:
        stop = threading.Event()
        th = threading.Thread(target=activity, args=(stop,), daemon=True)
        p = subprocess.Popen([sys.executable, "-m", "undertow", "run", tool], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        th.start()
        try:
            out, err = p.communicate(timeout=a.seconds)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=120)
        finally:
            stop.set()
            th.join()
        if p.returncode is None:
            p.kill()
        attached = "Attaching" in out
        errs = [l for l in err.splitlines() if l.strip()]
        first = errs[0][:150] if errs else ""
        print(f"{os.path.basename(tool):18} {'attached' if attached else 'FAILED  '} "
              f"lines={len(out.splitlines()):<5} {first}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
