#!/usr/bin/env python3
"""bpftrace 0.17's own runtime test suite, run against `undertow run` and bpftrace (issue 16).

The judge is bpftrace's suite as Debian ships it (source package bpftrace 0.17.0-1:
tests/runtime, its engine in tests/runtime/engine, the programs in tests/testprogs and
tests/testlibs). Nothing of it is copied into this repository: the harness fetches the
source package (``apt-get source --download-only`` with a private apt configuration, so
the host's sources are untouched), builds the test programs as the suite's CMake file does
(``gcc -g -O0 -no-pie``; USDT programs with ``sys/sdt.h`` from systemtap-sdt-dev), and runs
every case through the engine's own ``main.py`` — its parser, its runner, its matching
rules: ``PROG`` as ``bpftrace -e``, ``RUN`` with ``{{BPFTRACE}}``, ``EXPECT`` as a regular
expression over the whole output, BEFORE/AFTER, REQUIRES, REQUIRES_FEATURE from
``bpftrace --info``, the ``__BPFTRACE_NOTIFY_PROBES_ATTACHED`` notice.

Each tool runs as the engine's ``bpftrace``: the real one, or a small executable that is
``undertow run`` (so ``bpftrace -e PROG`` is ``undertow run -e PROG``). The engine is
started once per case (``--filter`` naming exactly that case) under a watchdog, so that a
case still running 10 s after its own timeout is recorded as a hang, not a stuck suite;
its output is scanned for Python tracebacks.

    python3 tests/compat/bpftrace_suite.py                    # both tools, this kernel
    python3 tests/compat/bpftrace_suite.py --filter 'basic.*' --tools undertow -v
    python3 tests/compat/bpftrace_suite.py --label 6.12 --results /tmp/r-6.12.json
    python3 tests/compat/bpftrace_suite.py --report docs/bpftrace-compat.md \\
        --merge tests/compat/results-host.json tests/compat/results-6.12.json

Results are JSON (``--results``, one per kernel); ``--report`` writes the comparison page
from one or more of them, with the reasons in tests/compat/differences.txt.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SRC = os.path.join(REPO, "src")
VERSION = "0.17.0"
PACKAGE = f"bpftrace={VERSION}-1"
CACHE = os.environ.get("UNDERTOW_COMPAT_CACHE", os.path.join(tempfile.gettempdir(), "undertow-compat"))
#: Past a case's own TIMEOUT (the engine stops it then), how long before it counts as a hang.
HANG_AFTER = 10
STATUSES = ("PASS", "FAIL", "TIMEOUT", "SKIP", "HANG")


# ----------------------------------------------------------------------------- the suite

def fetch_source(cache: str = CACHE) -> str:
    """bpftrace's source tree (unpacked from Debian's source package into ``cache``)."""
    tree = os.path.join(cache, f"bpftrace-{VERSION}")
    if os.path.isdir(os.path.join(tree, "tests", "runtime", "engine")):
        return tree
    os.makedirs(cache, exist_ok=True)
    orig = os.path.join(cache, f"bpftrace_{VERSION}.orig.tar.gz")
    if not os.path.exists(orig):
        _apt_source(cache)
    with tarfile.open(orig) as tf:
        members = [m for m in tf.getmembers() if m.name.startswith(f"bpftrace-{VERSION}/tests/")]
        tf.extractall(cache, members=members)  # noqa: S202 - Debian's archive, checked by apt
    return tree


def _apt_source(cache: str) -> None:
    """``apt-get source --download-only`` with a private sources list (deb-src of the mirror
    the host's own sources name) and private lists: the host's apt state is not touched."""
    mirror, suite = "http://deb.debian.org/debian", "bookworm"
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        try:
            text = open(path).read()
        except OSError:
            continue
        uri = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.M)
        suites = re.search(r"^Suites:\s*([\w-]+)", text, re.M)
        if uri and suites:
            mirror, suite = uri.group(1), suites.group(1)
            break
    apt = os.path.join(cache, "apt")
    for d in ("parts", "lists/partial"):
        os.makedirs(os.path.join(apt, d), exist_ok=True)
    with open(os.path.join(apt, "parts", "src.sources"), "w") as f:
        f.write(f"Types: deb-src\nURIs: {mirror}\nSuites: {suite}\nComponents: main\n"
                "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    opts = ["-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={apt}/parts",
            "-o", f"Dir::State::Lists={apt}/lists", "-o", "APT::Sandbox::User=root"]
    subprocess.run(["apt-get", *opts, "update", "-qq"], check=True, cwd=cache)
    subprocess.run(["apt-get", *opts, "source", "--download-only", "-qq", PACKAGE], check=True, cwd=cache)


def build(tree: str, work: str) -> None:
    """The suite's layout in ``work`` (as its CMake build dir has it): runtime/ with the
    engine, testprogs/ and testlibs/ built as tests/CMakeLists.txt builds them."""
    tests = os.path.join(tree, "tests")
    if os.path.exists(os.path.join(work, "runtime")):
        shutil.rmtree(os.path.join(work, "runtime"))
    shutil.copytree(os.path.join(tests, "runtime"), os.path.join(work, "runtime"))
    with open(os.path.join(work, "runtime", "engine", "cmake_vars.py"), "w") as f:
        f.write("LIBBCC_BPF_CONTAINS_RUNTIME = False\n")  # no AOT runtime: AOT cases are not run
    # <sys/sdt.h> (systemtap-sdt-dev; a multiarch include directory on Debian)
    sdt = subprocess.run(["gcc", "-E", "-x", "c", "-"], input="#include <sys/sdt.h>\n", text=True,
                         capture_output=True).returncode == 0
    defs = ["-DHAVE_SYSTEMTAP_SYS_SDT_H"] if sdt else []
    libs = os.path.join(work, "testlibs")
    progs = os.path.join(work, "testprogs")
    os.makedirs(libs, exist_ok=True)
    os.makedirs(progs, exist_ok=True)
    for src in sorted(glob.glob(os.path.join(tests, "testlibs", "*.c"))):
        name = os.path.splitext(os.path.basename(src))[0]
        out = os.path.join(libs, f"lib{name}.so")
        _cc(["gcc", "-g", "-O0", "-fPIC", "-shared", *defs, "-o", out, src])
        os.chmod(out, 0o644)  # the suite clears the executable bit
    for src in sorted(glob.glob(os.path.join(tests, "testprogs", "*.c"))):
        name = os.path.splitext(os.path.basename(src))[0]
        extra: List[str] = []
        if name == "usdt_lib":  # target_link_libraries(usdt_lib usdt_tp)
            extra = [f"-I{os.path.join(tests, 'testlibs')}", f"-L{libs}", "-lusdt_tp", f"-Wl,-rpath,{libs}", "-fPIC"]
        _cc(["gcc", "-g", "-O0", "-no-pie", *defs, "-o", os.path.join(progs, name), src, *extra, "-lpthread"])


def _cc(argv: List[str]) -> None:
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"compat: cannot build {argv[-1]}: {p.stderr.strip()[:300]}", file=sys.stderr)


def cases(work: str) -> List[Tuple[str, str, int]]:
    """``[(file, name, timeout)]`` of every case the engine would run here, read with the
    engine's own parser."""
    engine = os.path.join(work, "runtime", "engine")
    code = ("import json, sys; sys.path.insert(0, %r); from parser import TestParser\n"
            "print(json.dumps([(f, t.name, t.timeout) for f, ts in TestParser.read_all(False) for t in ts]))"
            % engine)
    out = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, check=True).stdout
    return [tuple(x) for x in json.loads(out)]  # type: ignore[misc]


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


# ----------------------------------------------------------------------------- the tools

def tool_dir(tool: str, base: str) -> str:
    """A directory holding the ``bpftrace`` the engine runs for ``tool``."""
    d = os.path.join(base, f"bin-{tool}")
    os.makedirs(d, exist_ok=True)
    exe = os.path.join(d, "bpftrace")
    if os.path.lexists(exe):
        os.unlink(exe)
    if tool == "bpftrace":
        real = shutil.which("bpftrace", path="/usr/bin:/usr/sbin:/usr/local/bin")
        if real is None:
            raise SystemExit("compat: bpftrace is not installed")
        os.symlink(real, exe)
    else:
        # named bpftrace as bpftrace is, for the cases that find it by name (`pidof bpftrace`
        # reads argv[0], `pkill bpftrace` the process name): argv[0] through exec -a, the
        # name written to /proc/self/comm; sys.argv[0] the script's path (undertow run then
        # speaks bpftrace's command line: commands/run_bt.py)
        code = ("import os, sys\n"
                "os.environ.pop('PYTHONHOME', None)  # set below for this interpreter only\n"
                "open('/proc/self/comm', 'w').write('bpftrace')\n"
                f"sys.executable, sys.argv[0] = {sys.executable!r}, {exe!r}\n"
                f"sys.path.insert(0, {SRC!r})\n"
                "from undertow.cli import main\n"
                "sys.exit(main(['run', *sys.argv[1:]]))\n")
        with open(exe, "w") as f:
            f.write("#!/bin/bash\n"
                    "# bpftrace's command line, run by undertow (tests/compat/bpftrace_suite.py)\n"
                    # with argv[0] "bpftrace" Python cannot find its own prefix: given here
                    f"PYTHONHOME={shlex.quote(sys.prefix + ':' + sys.exec_prefix)} "
                    f"exec -a bpftrace {shlex.quote(sys.executable)} -c {shlex.quote(code)} \"$@\"\n")
        os.chmod(exe, 0o755)
    return d


_RESULT = re.compile(r"^\[\s*(OK|FAILED|TIMEOUT|SKIP)\s*\] (.*)$")


def run_case(work: str, bindir: str, file: str, name: str, timeout: int,
             hang_after: float = HANG_AFTER) -> Dict[str, object]:
    """One case through the engine: ``{"status", "seconds", "traceback", "output"}``."""
    env = dict(os.environ, BPFTRACE_RUNTIME_TEST_EXECUTABLE=bindir, PYTHONPATH=SRC,
               PATH=f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    flt = _glob_escape(f"{file}.{name}")
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, os.path.join("runtime", "engine", "main.py"), "--filter", flt],
                         cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         errors="replace", start_new_session=True)
    hang = False
    try:
        # the engine's own limits: 5 s to attach, then TIMEOUT; it then SIGTERMs the tool and
        # waits for it without a limit (a tool that ignores SIGTERM would block it forever)
        out, _ = p.communicate(timeout=5 + timeout + hang_after)
    except subprocess.TimeoutExpired:
        hang = True
        where = _group_snapshot(p.pid)
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        out += "\n[hang] the case's processes when it was stopped:\n" + where
        _kill_stragglers(bindir)
    took = time.monotonic() - t0
    status = "HANG" if hang else "FAIL"
    reason = ""
    if not hang:
        for line in out.splitlines():
            m = _RESULT.match(line)
            if m and m.group(2).split(" (", 1)[0] == f"{file}.{name}":
                status = {"OK": "PASS", "FAILED": "FAIL", "TIMEOUT": "TIMEOUT", "SKIP": "SKIP"}[m.group(1)]
                if status == "SKIP" and "(" in m.group(2):
                    reason = m.group(2).split(" (", 1)[1].rstrip(")")
    return {"status": status, "reason": reason, "seconds": round(took, 2),
            "traceback": "Traceback (most recent call last)" in out, "output": out[-4000:]}


def _group_snapshot(root: int) -> str:
    """What the case's processes (``root`` and its descendants: the engine puts the tool in a
    session of its own) were doing — state, kernel wait channel, command line: the evidence a
    hang report needs, taken before they are killed."""
    procs = {}
    for pid in (d for d in os.listdir("/proc") if d.isdigit()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/wchan") as f:
                wchan = f.read().strip()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").replace(b"\n", b"\\n").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue
        procs[int(pid)] = (int(fields[1]), fields[0], wchan, cmd)  # stat fields 4 and 3
    tree, lines = {root}, []
    for pid in sorted(procs):  # children have higher PIDs, except after a PID wrap
        ppid, state, wchan, cmd = procs[pid]
        if pid == root or ppid in tree:
            tree.add(pid)
            lines.append(f"  {pid} {state} wchan={wchan or '-'} {cmd[:200]}")
    return "\n".join(lines) + "\n"


def _kill_stragglers(bindir: str) -> None:
    """After a hang: end the tool's processes still running from ``bindir`` (by PID, ours only)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if os.path.join(bindir, "bpftrace").encode() in cmd:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass


# ----------------------------------------------------------------------------- the report

def load_differences(path: str = os.path.join(HERE, "differences.txt")) -> List[Tuple[str, str]]:
    """``[(glob of "file.name", reason)]``: why undertow differs where it does, on purpose or
    not yet (one ``GLOB<TAB>reason`` per line)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                if line.strip() and not line.startswith("#") and "\t" in line:
                    g, why = line.rstrip("\n").split("\t", 1)
                    out.append((g.strip(), why.strip()))
    except OSError:
        pass
    return out


def reason_for(case: str, diffs: List[Tuple[str, str]]) -> str:
    for g, why in diffs:
        if fnmatch.fnmatchcase(case, g):
            return why
    return ""


def classify(u: Optional[str], b: Optional[str]) -> str:
    """A case's row in the report. A case one tool passes counts for it even where the other
    skipped it: undertow's --info saying "no" to a feature bpftrace has is a miss, not a skip."""
    if u is None or b is None:
        return "skipped"
    if u == "PASS" and b == "PASS":
        return "both pass"
    if b == "PASS":
        return "only bpftrace"
    if u == "PASS":
        return "only undertow"
    if u == "SKIP" or b == "SKIP":
        return "skipped"
    return "both fail"


def report(results: List[Dict[str, object]], path: str) -> None:
    diffs = load_differences()
    lines = ["# bpftrace 0.17's runtime suite: undertow and bpftrace",
             "",
             "Generated by `tests/compat/bpftrace_suite.py` (issue 16): bpftrace 0.17.0's own runtime tests",
             "(Debian's source package), run by the suite's own engine against `undertow run` and against",
             "bpftrace 0.17 on the same kernel. Reasons for the differences: tests/compat/differences.txt.",
             "",
             "CI (`.ci/run`) runs the suite with `--ci` on its host: a Python traceback, a hang, or a",
             "case that passes in tests/compat/expected-host.json and no longer does fails the run. The",
             "lab's Debian 6.12 guest (tests/lab) runs the cases the host's kernel skips (kprobe,",
             "kretprobe, kfunc, iterators): both tools were measured there once",
             "(tests/compat/expected-6.12.json, the 6.12 section below); CI's lab step runs undertow",
             "against it with the same judgement (a case that passed there and fails under emulation is",
             "run once more, and says so). Regenerate the host's file with",
             "`python3 tests/compat/bpftrace_suite.py --results /tmp/r.json --write-expected",
             "tests/compat/expected-host.json`, the guest's with the same command inside",
             "`tests/lab/lab.py run --kernel 6.12` (`--label 6.12 --only-skipped-in",
             "tests/compat/expected-host.json`), and this page with `python3 tests/compat/bpftrace_suite.py",
             "--merge tests/compat/expected-host.json tests/compat/expected-6.12.json --report",
             "docs/bpftrace-compat.md`.",
             ""]
    for res in results:
        label = res["label"]
        cases_ = res["cases"]  # type: ignore[index]
        by_file: Dict[str, Dict[str, int]] = {}
        totals: Dict[str, int] = {}
        diff_rows = []
        hangs = tracebacks = 0
        for key, r in sorted(cases_.items()):  # type: ignore[union-attr]
            u = r.get("undertow", {}).get("status")
            b = r.get("bpftrace", {}).get("status")
            c = classify(u, b)
            f = key.split(".", 1)[0]
            by_file.setdefault(f, {}).setdefault(c, 0)
            by_file[f][c] += 1
            totals[c] = totals.get(c, 0) + 1
            hangs += u == "HANG"
            tracebacks += bool(r.get("undertow", {}).get("traceback"))
            if c in ("only bpftrace", "only undertow") or (c == "skipped" and b == "PASS"):
                why = reason_for(key, diffs) or r.get("undertow", {}).get("reason") or "(not analysed yet)"
                diff_rows.append((c, key, u, b, why))
        bp = totals.get("both pass", 0) + totals.get("only bpftrace", 0)
        up = totals.get("both pass", 0)
        share = f"{100.0 * up / bp:.1f}%" if bp else "-"
        lines += [f"## {label} ({res.get('kernel', '')}, {res.get('date', '')})", "",
                  f"Of the {bp} cases bpftrace passes here, undertow passes {up} ({share}); "
                  f"undertow alone passes {totals.get('only undertow', 0)}. "
                  f"Python tracebacks: {tracebacks}; hangs: {hangs}.", "",
                  "| file | both pass | only bpftrace | only undertow | both fail | skipped |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for f, counts in sorted(by_file.items()):
            lines.append(f"| {f} | " + " | ".join(str(counts.get(c, 0)) for c in
                                                  ("both pass", "only bpftrace", "only undertow", "both fail",
                                                   "skipped")) + " |")
        lines.append("| **all** | " + " | ".join(str(totals.get(c, 0)) for c in
                                                 ("both pass", "only bpftrace", "only undertow", "both fail",
                                                  "skipped")) + " |")
        if diff_rows:
            lines += ["", "| case | undertow | bpftrace | why |", "| --- | --- | --- | --- |"]
            for _c, key, u, b, why in diff_rows:
                lines.append(f"| `{key}` | {u} | {b} | {why} |")
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


# ----------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", help="bpftrace's source tree (default: fetched from Debian into $UNDERTOW_COMPAT_CACHE)")
    ap.add_argument("--work", help="build directory (default: a new temporary one)")
    ap.add_argument("--filter", default="*", help="cases to run, as FILE.NAME globs (comma-separated)")
    ap.add_argument("--tools", default=None, help="undertow, bpftrace or both (default: both; with --ci: see --ci)")
    ap.add_argument("--label", default="host", help="the kernel's name in the report (host, 6.12)")
    ap.add_argument("--results", help="write the results as JSON here")
    ap.add_argument("--report", help="write the comparison page (Markdown) here")
    ap.add_argument("--merge", nargs="*", default=[], help="results JSON files to put in the report (no run)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each case's result")
    ap.add_argument("--expected", help="expected statuses (JSON written by --write-expected): bpftrace's are "
                    "taken from it when bpftrace is not run, and --check compares undertow's with it")
    ap.add_argument("--write-expected", help="write this run's statuses (no outputs) here, for --expected")
    ap.add_argument("--only-skipped-in", help="run only the cases some tool skipped in this results/expected "
                    "JSON (the lab: what the host's kernel could not run)")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 on a Python traceback, a hang, or a case undertow passed in --expected and "
                         "no longer passes")
    ap.add_argument("--ci", action="store_true",
                    help="what CI runs: --check against tests/compat/expected-LABEL.json; bpftrace is run "
                         "only when that file was measured on another kernel release")
    ap.add_argument("--hang-after", type=float, default=HANG_AFTER,
                    help=f"seconds past a case's own timeout before it counts as a hang (default {HANG_AFTER})")
    ap.add_argument("--retries", type=int, default=0,
                    help="run a case that passed in --expected and does not pass now up to N more times "
                         "(the lab: emulated guests are ~15x slower, the engine's timeouts are not); each "
                         "retry is printed and kept in the results as retried_after")
    ap.add_argument("--fetch-only", action="store_true",
                    help="fetch and unpack the suite (needs the network), print where, run nothing")
    a = ap.parse_args()
    if a.fetch_only:
        try:
            print(fetch_source())
        except (OSError, subprocess.CalledProcessError, tarfile.TarError) as e:
            print(f"compat: cannot fetch bpftrace {VERSION}'s source package: {e}", file=sys.stderr)
            return 1
        return 0
    if a.ci:
        a.check = True
        a.expected = a.expected or os.path.join(HERE, f"expected-{a.label}.json")
        a.results = a.results or os.path.join(tempfile.gettempdir(), f"undertow-compat-{a.label}.json")
        exp = _load(a.expected)
        if a.tools is None:
            a.tools = "undertow" if exp and exp.get("kernel") == platform.release() else "undertow,bpftrace"
    a.tools = a.tools or "undertow,bpftrace"
    if a.merge:
        results = [json.load(open(p)) for p in a.merge]
        if a.report:
            report(results, a.report)
        return 0
    if os.geteuid() != 0:
        print("compat: the suite needs root (it loads BPF programs)", file=sys.stderr)
        return 77
    try:
        tree = a.source or fetch_source()
    except (OSError, subprocess.CalledProcessError, tarfile.TarError) as e:
        print(f"compat: cannot fetch bpftrace {VERSION}'s source package, the suite is not run: {e}", file=sys.stderr)
        return 77
    work = a.work or tempfile.mkdtemp(prefix="undertow-compat-")
    build(tree, work)
    todo = [c for c in cases(work) if any(fnmatch.fnmatchcase(f"{c[0]}.{c[1]}", g) for g in a.filter.split(","))]
    if a.only_skipped_in:
        was = _load(a.only_skipped_in) or {"cases": {}}
        skipped = {k for k, r in was["cases"].items() if any(v.get("status") == "SKIP" for v in r.values())}
        todo = [c for c in todo if f"{c[0]}.{c[1]}" in skipped]
    tools = [t for t in a.tools.split(",") if t]
    if "bpftrace" in tools and shutil.which("bpftrace") is None:
        print("compat: bpftrace is not installed: undertow only", file=sys.stderr)
        tools.remove("bpftrace")
    bindirs = {t: tool_dir(t, work) for t in tools}
    out: Dict[str, object] = {"label": a.label, "kernel": platform.release(), "date": time.strftime("%Y-%m-%d"),
                              "tools": tools, "cases": {}}
    t0 = time.monotonic()
    kept = _global_state()
    expected = _load(a.expected) if a.expected else None
    try:
        for i, (f, name, timeout) in enumerate(todo):
            key = f"{f}.{name}"
            row: Dict[str, object] = {}
            for t in tools:
                row[t] = run_case(work, bindirs[t], f, name, int(timeout or 5), a.hang_after)
                was = (expected or {}).get("cases", {}).get(key, {}).get(t, {}).get("status")
                tries = []
                while was == "PASS" and row[t]["status"] != "PASS" and len(tries) < a.retries:
                    tries.append(row[t]["status"])  # kept in the results and printed: never hidden
                    row[t] = run_case(work, bindirs[t], f, name, int(timeout or 5), a.hang_after)
                if tries:
                    row[t]["retried_after"] = tries
            out["cases"][key] = row  # type: ignore[index]
            if a.verbose:
                print(f"[{i + 1}/{len(todo)}] {key}: " + ", ".join(
                    f"{t} {row[t]['status']}" + (f" ({row[t]['reason']})" if row[t].get("reason") else "")
                    + (f" (after {', '.join(row[t]['retried_after'])})" if row[t].get("retried_after") else "")
                    + f" {row[t]['seconds']} s" for t in tools), flush=True)
    finally:
        _restore_global_state(kept)
    out["seconds"] = round(time.monotonic() - t0)
    if expected and "bpftrace" not in tools and expected.get("kernel") == platform.release():
        # bpftrace 0.17 on this same kernel release: its statuses as measured then
        for key, row in out["cases"].items():  # type: ignore[union-attr]
            b = expected["cases"].get(key, {}).get("bpftrace")
            if b:
                row["bpftrace"] = dict(b, measured=expected.get("date", ""))
        out["bpftrace_from"] = os.path.relpath(a.expected, REPO)
    if a.write_expected:
        _write_expected(out, a.write_expected)
    if a.results:
        with open(a.results, "w") as fh:
            json.dump(out, fh, indent=1, sort_keys=True)
    if a.report:
        report([out], a.report)
    counts: Dict[str, Dict[str, int]] = {}
    for row in out["cases"].values():  # type: ignore[union-attr]
        for t in tools:
            s = row[t]["status"]
            counts.setdefault(t, {}).setdefault(s, 0)
            counts[t][s] += 1
    for t in tools:
        print(f"compat {a.label}: {t}: " + ", ".join(f"{s} {counts[t].get(s, 0)}" for s in STATUSES))
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    if a.check:
        return check(out, expected)
    return 0


#: Global tracefs files the suite's cases change and do not put back: loading a program that
#: calls bpf_trace_printk (bpftrace's debugf cases) enables this event for good.
GLOBAL_FILES = ("/sys/kernel/tracing/events/bpf_trace/bpf_trace_printk/enable",)


def _global_state() -> Dict[str, str]:
    kept = {}
    for path in GLOBAL_FILES:
        try:
            with open(path) as f:
                kept[path] = f.read().strip()
        except OSError:
            pass
    return kept


def _restore_global_state(kept: Dict[str, str]) -> None:
    for path, value in kept.items():
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            print(f"compat: cannot put {path} back to {value}: {e.strerror}", file=sys.stderr)


def _load(path: Optional[str]) -> Optional[Dict[str, object]]:
    try:
        with open(path) as f:  # type: ignore[arg-type]
            return json.load(f)
    except (OSError, TypeError, ValueError):
        return None


def _write_expected(out: Dict[str, object], path: str) -> None:
    """The statuses of a run without the outputs: small enough to keep in the repository."""
    slim = {k: out[k] for k in ("label", "kernel", "date", "tools")}
    slim["cases"] = {key: {t: {"status": r["status"], "reason": r.get("reason", "")} for t, r in row.items()}
                     for key, row in sorted(out["cases"].items())}  # type: ignore[union-attr]
    with open(path, "w") as f:
        json.dump(slim, f, indent=1, sort_keys=True)
        f.write("\n")


def check(out: Dict[str, object], expected: Optional[Dict[str, object]]) -> int:
    """CI's judgement (issue 16): no traceback, no hang, and nothing undertow passed before
    fails now. Prints the share of bpftrace's passes that undertow passes."""
    bad = []
    both = bp = 0
    same_kernel = bool(expected) and expected.get("kernel") == out.get("kernel")  # type: ignore[union-attr]
    for key, row in sorted(out["cases"].items()):  # type: ignore[union-attr]
        u = row.get("undertow", {})
        if u.get("traceback"):
            bad.append(f"{key}: a Python traceback")
        if u.get("retried_after"):
            print(f"compat {out['label']}: {key} was run again after {', '.join(u['retried_after'])}: "
                  f"{u.get('status')}")
        if u.get("status") == "HANG":
            bad.append(f"{key}: a hang (still running well after its timeout)")
            print(f"compat {out['label']}: {key} hung; its output's end:\n"
                  + str(u.get("output", ""))[-2500:])
        was = (expected or {}).get("cases", {}).get(key, {}).get("undertow", {}).get("status")
        # a skip hides nothing on the kernel the expectations were measured on (a feature
        # undertow's --info stopped reporting would skip cases silently); elsewhere the
        # kernel may lack what the case requires
        allowed = ("PASS",) if same_kernel else ("PASS", "SKIP")
        # on another kernel, a case counts only where bpftrace passes it here too (the
        # kernel may refuse what the case needs to both tools)
        judged = same_kernel or row.get("bpftrace", {}).get("status") == "PASS"
        if was == "PASS" and u.get("status") not in allowed and judged:
            bad.append(f"{key}: passed before, {u.get('status')} now")
        if row.get("bpftrace", {}).get("status") == "PASS":
            bp += 1
            both += u.get("status") == "PASS"
    if bp:
        print(f"compat {out['label']}: undertow passes {both} of the {bp} cases bpftrace passes "
              f"({100.0 * both / bp:.1f}%)")
    for line in bad:
        print(f"compat {out['label']}: FAIL {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
