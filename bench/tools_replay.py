#!/usr/bin/env python3
"""A tool's Python path on recorded records: the CPU per record, and the output to compare.

``record``: run ``undertow TOOL`` in this process (root) while tools_overhead.py's workload
for it makes events, and keep every record the ring gave (the action's index, the payload,
the header) and what /proc said about each process, in a pickle file.

``replay``: compile the tool's program (nothing is loaded or attached), feed the recorded
batches to the tool's loop (tools/bpftool.run_tool) as the ring read handed them, with the
/proc details recorded, the text clock fixed, and the output to a file; prints the CPU per
record (best of ``--rounds``). Run it with each tree on ``PYTHONPATH`` and ``cmp`` the
outputs: the tool's lines must be byte for byte the same (text and ``--json``).

    python3 bench/tools_replay.py record dns /tmp/dns.rec [--rate 20000 --seconds 3]  (--rate 0: no
        workload, the host's own events for --seconds after a 3 s start)
    PYTHONPATH=src python3 bench/tools_replay.py replay /tmp/dns.rec out.json [--text] [--rounds 5] [--args "--summary"]
"""

import argparse
import os
import pickle
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _record(a):
    sys.path.insert(0, HERE)
    import tools_overhead as to
    from undertow import cli
    from undertow.bpfrun import BpfRun
    from undertow.tools import proc

    batches, infos = [], {}
    orig_batches, orig_info = BpfRun.batches, proc.proc_info

    def batches_kept(self, **kw):
        for batch in orig_batches(self, **kw):
            kept = []
            for r in batch:
                if r.__class__.__name__ == "Printed":
                    kept.append(("p", self.compiled.actions.index(r.action), r.raw,
                                 (r.ts, r.pid, r.tid, r._comm, r.cpu)))
                else:
                    kept.append(("o", r))
            batches.append(kept)
            yield batch

    def info_kept(pid, *args, **kw):
        pi = orig_info(pid, *args, **kw)
        infos.setdefault(pid, pi)
        return pi

    BpfRun.batches = batches_kept
    proc.proc_info = info_kept
    stop = threading.Event()
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if a.tool == "dns":
        dns.bind(("127.0.0.1", 53))
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4096)
    port = srv.getsockname()[1]

    def drain(s):
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                if s is dns:
                    s.recv(2048)
                else:
                    s.accept()[0].close()
            except OSError:
                pass

    def load():
        time.sleep(3.0)  # the tool compiles and attaches
        if a.rate == 0:  # no workload: what the host does meanwhile (traffic made by hand)
            time.sleep(a.seconds)
        else:
            w = to.WORKLOADS[a.tool]
            code = to.PACE.format(setup=w["setup"], op=w["op"])
            subprocess.run([sys.executable, "-c", code, str(int(a.rate * a.seconds)), str(a.rate), str(port)],
                           capture_output=True, check=True)
        time.sleep(1.0)
        os.kill(os.getpid(), 2)

    for s in (dns, srv):
        threading.Thread(target=drain, args=(s,), daemon=True).start()
    threading.Thread(target=load, daemon=True).start()
    with open(os.devnull, "w") as null:
        sys.stdout = null
        try:
            cli.main([a.tool, "--json"])
        finally:
            sys.stdout = sys.__stdout__
            stop.set()
    n = sum(len(b) for b in batches)
    with open(a.file, "wb") as f:
        pickle.dump({"tool": a.tool, "batches": batches, "infos": infos}, f)
    print(f"{n} records in {len(batches)} batches, {len(infos)} processes -> {a.file}")


class _Session:
    map_fds: dict = {}
    stats = None


def _replay(a):
    from undertow import cli
    from undertow.backends.bpf.runtime import Printed
    from undertow.bpfrun import BpfRun
    from undertow.output import text
    from undertow.tools import proc

    with open(a.file, "rb") as f:
        rec = pickle.load(f)
    tool = rec["tool"]
    BpfRun.start = lambda self, *x, **kw: _Session()
    BpfRun.close = lambda self: None
    proc.proc_info = lambda pid, *x, **kw: rec["infos"].get(pid) or proc.ProcInfo(pid)
    text.hms_now = lambda: "12:00:00"
    if tool == "connect":
        from undertow.tools import connect

        connect.in_progress = lambda *x, **kw: []
    took = []

    def batches(self, **kw):
        acts = self.compiled.actions
        # fresh record objects each round (a record decodes its values once), made untimed
        made = [[Printed("", acts[r[1]], None, r[2], r[3]) if r[0] == "p" else r[1] for r in b]
                for b in rec["batches"]]
        t0 = time.process_time()
        for b in made:
            yield b
        took.append(time.process_time() - t0)  # the last batch handled

    BpfRun.batches = batches
    argv = [tool] + ([] if a.text else ["--json"]) + a.args.split()
    n = sum(len(b) for b in rec["batches"])
    for _ in range(a.rounds):
        with open(a.out, "w") as out:
            sys.stdout = out
            try:
                cli.main(argv)
            finally:
                sys.stdout = sys.__stdout__
    print(f"{tool} {'text' if a.text else 'json'}: {n} records, {min(took) / n * 1e6:.2f} us per record "
          f"(best of {len(took)}: " + ", ".join(f"{t / n * 1e6:.2f}" for t in took) + ")", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("tool")
    r.add_argument("file")
    r.add_argument("--rate", type=int, default=20000)
    r.add_argument("--seconds", type=float, default=3.0)
    p = sub.add_parser("replay")
    p.add_argument("file")
    p.add_argument("out")
    p.add_argument("--text", action="store_true")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--args", default="", help="more options of the tool (--summary, --comm GLOB ...)")
    a = ap.parse_args()
    (_record if a.cmd == "record" else _replay)(a)


if __name__ == "__main__":
    main()
