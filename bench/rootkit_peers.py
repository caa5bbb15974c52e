"""Which tool catches which planted technique (issue 20, docs/tools/rootkit.md's table).

Plants every technique of tests/live/rootkit_plant.py (root, gcc), then runs, on the host and
inside the private namespaces (where the LD_PRELOAD hider and the bind mount live), undertow
rootkit and Debian's unhide (``unhide quick``, ``unhide-tcp``), chkrootkit (its lkm, sniffer, bindshell,
ldsopreload and ps tests) and rkhunter (``--check --sk --rwo``, the rootkits, network and
shared_libs groups). Each tool's output is kept under --out; a technique counts as
caught when the output names it (the patterns below), which the table's author checked by
reading the outputs. Slow (rkhunter: minutes): not a test.

    sudo python3 bench/rootkit_peers.py --out /tmp/peers
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", "src"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "live"))
sys.path.insert(0, SRC)

import rootkit_plant  # noqa: E402

TOOLS = {
    "undertow": [sys.executable, "-m", "undertow", "rootkit"],
    "unhide": ["unhide", "quick"],
    "unhide-tcp": ["unhide-tcp"],
    # chkrootkit's tests for these techniques (its full run also execs a shell per file of /tmp)
    "chkrootkit": ["chkrootkit", "-q", "lkm", "sniffer", "bindshell", "ldsopreload", "ps"],
    "rkhunter": ["rkhunter", "--check", "--sk", "--nocolors", "--rwo", "--noappend-log", "--logfile", "LOG",
                 "--enable", "rootkits,network,shared_libs"],
}


def patterns(p):
    """technique -> strings whose presence in a tool's output means it named it."""
    return {
        "LD_PRELOAD readdir hider: hidden pid": [str(p["hidden_pid"]), "process hidden for readdir"],
        "/etc/ld.so.preload (namespace)": ["ld.so.preload", "hider.so"],
        "bind mount over /proc/PID": [f"/proc/{p['masked_pid']}", f"PID: {p['masked_pid']}",
                                      f" {p['masked_pid']} "],
        "packet socket with a BPF filter": ["classic BPF filter", "PACKET SNIFFER", "sniff"],
        "memfd-executed process": ["memfd", "ut_rk_memfd"],
        "deleted-binary process": ["ut_rk_deleted", "deleted binary"],
        "uprobe by someone else": [p["uprobe"]],
        "tracefs instance by someone else": [p["instance"]],
        "BPF program with " + p["helper"]: [p["helper"]],
    }


def main():
    import signal

    def stop(sig, frame):
        raise KeyboardInterrupt  # the plants' finally removes them

    signal.signal(signal.SIGTERM, stop)
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/undertow-rootkit-peers")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tools = {k: v for k, v in TOOLS.items() if shutil.which(v[0])}
    env = dict(os.environ, PYTHONPATH=SRC)

    def argv_for(argv, where):  # rkhunter reports warnings only with a log file
        return [os.path.join(args.out, f"rkhunter-{where}.log") if a == "LOG" else a for a in argv]

    inside = [argv_for(v, "inside") for v in tools.values()]
    with rootkit_plant.planted(SRC, inside_cmds=inside) as p:
        outputs = {}
        for (name, argv), text in zip(tools.items(), p["inside_outputs"]):
            outputs[f"{name} (inside)"] = text
        for name, argv in tools.items():
            try:
                r = subprocess.run(argv_for(argv, "host"), capture_output=True, text=True, timeout=600, env=env, errors="replace")
                outputs[f"{name} (host)"] = r.stdout + r.stderr
            except subprocess.TimeoutExpired:
                outputs[f"{name} (host)"] = "[timed out]"
        table = {}
        for tech, pats in patterns(p).items():
            table[tech] = {}
            for run, text in outputs.items():
                table[tech][run] = any(x in text for x in pats)
        for run, text in outputs.items():
            with open(os.path.join(args.out, run.replace(" ", "_").replace("(", "").replace(")", "") + ".txt"),
                      "w") as f:
                f.write(text)
        with open(os.path.join(args.out, "planted.json"), "w") as f:
            json.dump({k: v for k, v in p.items() if k not in ("inside", "inside_outputs")}, f, indent=1)
    runs = list(next(iter(table.values())))
    print("| technique | " + " | ".join(runs) + " |")
    print("| --- |" + " --- |" * len(runs))
    for tech, row in table.items():
        print(f"| {tech} | " + " | ".join("yes" if row[r] else "-" for r in runs) + " |")


if __name__ == "__main__":
    main()
