"""Real SystemTap as the oracle for `undertow stap` (issue 19), in the lab's guests.

On the host, Debian's SystemTap (4.8, ``apt-get install systemtap``) builds one kernel module
per seed script (tests/fixtures/stap) for a lab kernel: ``stap -r TREE -p4 -m NAME``, TREE being
Debian's linux-headers for that kernel, fetched and unpacked by tests/lab/modbuild.py. In the
guest (whose root is the host's ``/`` read-only under an overlay, so the modules, ``staprun``
and SystemTap's runtime are there) each module is loaded with ``staprun``, the script's activity
is made, then ``undertow stap`` runs the same script with the same
activity, and the printed lines are compared (this process's pid normalised).

    python3 tests/lab/stap_oracle.py build --kernel 6.1     # host: what builds, and why not
    flock /work/lab.lock python3 tests/lab/stap_oracle.py run --kernel 6.1   # build + compare
    UNDERTOW_LAB_STAP=1 tests/lab/run                        # the same as an opt-in CI lab step

What SystemTap 4.8 builds (docs/stap.md has the table and the exact compiler errors): nothing
for the lab's kernels as shipped. Debian's 6.1 kernels (6.1.170 on, all the mirror has) have the 6.11
``task_work_cancel()`` (a ``callback_head *``; the old meaning is now ``task_work_cancel_func()``),
which stap 4.8's runtime (stp_task_work.c) calls the old way: with ``UNDERTOW_LAB_STAP_PATCH``
not ``0`` (the default) the builds use a copy of the runtime whose one call is renamed, and say
so. 6.12 fails in many runtime files (``mmap_sem``, ``get_user_pages_remote``, ``strlcpy``,
``asm/unaligned.h``...): no oracle there. Scripts whose tapsets need the kernel's DWARF
(``kernel.function`` with ``$vars``: tcp.receive, vfs.*, syscall.* with ``$filename``) or its
symbol table (``nd_syscall``'s kprobes; Debian ships System.map in the same -dbg package, ~860
MB) are reported as not built, with SystemTap's error; with UNDERTOW_LAB_STAP_DWARF=1 the -dbg
package is fetched, its vmlinux and System.map extracted, and DWARF_SEEDS built again with them.
Activity: loopback datagrams and one loopback TCP connection.

Test tooling: runs apt-get, dpkg-deb, stap and staprun as argument lists, never through a shell.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
FIX = os.path.join(REPO, "tests", "fixtures", "stap")
RUNTIME = "/usr/share/systemtap/runtime"


def _cache() -> str:
    base = os.environ.get("UNDERTOW_LAB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "undertow-lab")
    return os.path.join(base, "stap")


# Seed scripts: (fixture name, arguments). The activity each needs is in ACTIVITY below.
SEEDS = [("hello", []), ("ok", []), ("dns_sent", []), ("udp_zero_out", []), ("udp_zero_in", []),
         ("connect", []), ("open", []), ("tcp_receive", []), ("accept", []), ("inodewatch", ["8", "1", "2"])]
#: Built again against the kernel's DWARF with UNDERTOW_LAB_STAP_DWARF=1 (as ``NAME-dwarf``).
DWARF_SEEDS = ("tcp_receive", "accept", "connect")


# --------------------------------------------------------------------------- host: building


def _error_lines(text: str, limit: int = 12) -> List[str]:
    """The lines of a stap/kbuild log that say why (compiler errors, semantic errors)."""
    keep = []
    for ln in text.splitlines():
        if re.search(r"\berror\b|^semantic error|Pass \d: .*failed", ln) and ln not in keep:
            keep.append(ln.strip())
    return keep[:limit] or text.strip().splitlines()[-3:]


def build_tree(release: str) -> str:
    """Debian's headers for ``release``, unpacked by modbuild, with the ``source`` link SystemTap
    looks for (it finds the tracepoint headers, include/trace/events, through it)."""
    import modbuild  # noqa: E402 - imports lab

    tree = modbuild.prepare_headers(release)
    common = glob.glob(os.path.join(os.path.dirname(tree), "linux-headers-*-common"))
    link = os.path.join(tree, "source")
    if common and not os.path.lexists(link):
        os.symlink(os.path.relpath(common[0], tree), link)
    return tree


def dwarf_tree(release: str, tree: str) -> Tuple[Optional[str], str]:
    """(a build tree with the kernel's DWARF ``vmlinux`` and real ``System.map``, "") or (None, why).

    Only with UNDERTOW_LAB_STAP_DWARF=1: Debian's ``linux-image-RELEASE-dbg`` (860 MB for 6.1,
    ~10 s from a fast mirror, ~75 s to extract the two files) is fetched into the lab's deb
    cache; the tree is ``tree``'s entries linked beside the two files, so that the builds
    without DWARF keep their own tree (SystemTap uses DIR/vmlinux and DIR/System.map when
    present)."""
    if os.environ.get("UNDERTOW_LAB_STAP_DWARF") != "1":
        return None, "UNDERTOW_LAB_STAP_DWARF is not 1 (Debian's -dbg package: 860 MB)"
    import modbuild  # noqa: E402

    import lab  # noqa: E402

    base = os.path.join(_cache(), release, "dbg")
    boot = os.path.join(base, "usr", "lib", "debug", "boot")
    vmlinux, sysmap = os.path.join(boot, "vmlinux-" + release), os.path.join(boot, "System.map-" + release)
    if not (os.path.exists(vmlinux) and os.path.exists(sysmap)):
        try:
            deb = modbuild._fetch_any_arch("linux-image-%s-dbg" % release)
        except lab.LabUnavailable as e:
            return None, str(e)
        os.makedirs(base, exist_ok=True)
        dpkg = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
        tar = subprocess.run(["tar", "-x", "-C", base, "." + vmlinux[len(base):], "." + sysmap[len(base):]],
                             stdin=dpkg.stdout, stderr=subprocess.PIPE, universal_newlines=True)
        dpkg.stdout.close()  # type: ignore[union-attr]
        dpkg.wait()
        if tar.returncode != 0 or dpkg.returncode != 0:
            return None, "extracting vmlinux from %s failed: %s" % (deb, tar.stderr.strip())
    dtree = os.path.join(_cache(), release, "tree-dwarf")
    os.makedirs(dtree, exist_ok=True)
    for name in os.listdir(tree):
        link = os.path.join(dtree, name)
        if not os.path.lexists(link):
            os.symlink(os.path.realpath(os.path.join(tree, name)), link)
    for src, name in ((vmlinux, "vmlinux"), (sysmap, "System.map")):
        if not os.path.lexists(os.path.join(dtree, name)):
            os.symlink(src, os.path.join(dtree, name))
    return dtree, ""


def patched_runtime(tree: str) -> Tuple[Optional[str], str]:
    """(a copy of SystemTap's runtime that calls ``task_work_cancel_func()``, what was changed),
    or (None, why not): only for kernels that declare it (6.11, backported to 6.1 stable)."""
    common = os.path.realpath(os.path.join(tree, "source"))
    hdr = os.path.join(common, "include", "linux", "task_work.h")
    try:
        with open(hdr) as f:
            if "task_work_cancel_func" not in f.read():
                return None, "the kernel has the old task_work_cancel()"
    except OSError as e:
        return None, "no %s: %s" % (hdr, e)
    dest = os.path.join(_cache(), "runtime-4.8-task_work_cancel_func")
    if os.path.exists(os.path.join(dest, "ready")):
        return dest, "stp_task_work.c calls task_work_cancel_func()"
    tmp = tempfile.mkdtemp(prefix="runtime-", dir=_cache())
    shutil.rmtree(tmp)
    shutil.copytree(RUNTIME, tmp, symlinks=True)
    path = os.path.join(tmp, "stp_task_work.c")
    with open(path) as f:
        text = f.read()
    subs = [("typedef typeof(&task_work_cancel) task_work_cancel_fn;\n"
             "#define task_work_cancel (* (task_work_cancel_fn)kallsyms_task_work_cancel)",
             "typedef typeof(&task_work_cancel_func) task_work_cancel_fn;\n"
             "#define task_work_cancel_func (* (task_work_cancel_fn)kallsyms_task_work_cancel)"),
            ('kallsyms_lookup_name("task_work_cancel")', 'kallsyms_lookup_name("task_work_cancel_func")'),
            ("twork = task_work_cancel(task, func);", "twork = task_work_cancel_func(task, func);")]
    for old, new in subs:
        if old not in text:
            shutil.rmtree(tmp, ignore_errors=True)
            return None, "stp_task_work.c is not SystemTap 4.8's (no %r)" % old.splitlines()[0]
        text = text.replace(old, new)
    with open(path, "w") as f:
        f.write(text)
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(tmp, dest)
    with open(os.path.join(dest, "ready"), "w") as f:
        f.write("ok\n")
    return dest, "stp_task_work.c calls task_work_cancel_func()"


def stap_build(tree: str, name: str, script: List[str], out_dir: str,
               runtime: Optional[str] = None, passes: str = "-p4") -> Tuple[Optional[str], List[str], float]:
    """Build ``name``.ko with ``stap -r TREE -p4`` in ``out_dir``: (path or None, error lines, s).
    With ``-p2`` (elaborate only): ("", [], s) when it elaborates."""
    argv = ["stap", "-r", tree, passes, "-m", name] + (["-R", runtime] if runtime else []) + script
    t0 = time.monotonic()
    r = subprocess.run(argv, cwd=out_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    ko = os.path.join(out_dir, name + ".ko")
    secs = time.monotonic() - t0
    if r.returncode == 0 and passes == "-p2":
        return "", [], secs
    if r.returncode != 0 or not os.path.exists(ko):
        return None, _error_lines(r.stdout), secs
    return ko, [], secs


def build_all(release: str, log: Callable[[str], None] = print) -> Dict[str, object]:
    """Build what SystemTap can build for ``release``; the result (also kept as builds.json
    beside the modules, where the guest reads it)."""
    out_dir = os.path.join(_cache(), release)
    os.makedirs(out_dir, exist_ok=True)
    res = {"release": release, "stap": "", "stock": {}, "runtime": None, "runtime_note": "",
           "seeds": {}}  # type: Dict[str, object]
    if not shutil.which("stap"):
        res["stock"] = {"ok": False, "errors": ["stap is not installed (apt-get install systemtap)"]}
        return _save(out_dir, res)
    v = subprocess.run(["stap", "-V"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    res["stap"] = (v.stdout.splitlines() or ["?"])[0]
    try:
        tree = build_tree(release)
    except Exception as e:  # LabUnavailable, LabError, OSError: the reason is the result
        res["stock"] = {"ok": False, "errors": ["linux-headers for %s: %s" % (release, e)]}
        return _save(out_dir, res)
    hello = ["-e", 'probe begin { printf("hello\\n"); exit() }']
    old = _load(out_dir)
    if old.get("stap") == res["stap"] and old.get("stock"):
        res["stock"] = old["stock"]
    else:
        log("stap-oracle: %s: stap -p4 of probe begin with Debian's runtime..." % release)
        ko, errs, secs = stap_build(tree, "so_probe_stock", hello, out_dir)
        res["stock"] = {"ok": ko is not None, "errors": errs, "seconds": round(secs, 1)}
    runtime = None
    if not res["stock"]["ok"]:  # type: ignore[index]
        if os.environ.get("UNDERTOW_LAB_STAP_PATCH", "1") == "0":
            res["runtime_note"] = "UNDERTOW_LAB_STAP_PATCH=0"
            return _save(out_dir, res)
        runtime, note = patched_runtime(tree)
        res["runtime"], res["runtime_note"] = runtime, note
        if runtime is None:
            return _save(out_dir, res)
        if old.get("runtime") == runtime and old.get("patched"):
            res["patched"] = old["patched"]
        else:
            log("stap-oracle: %s: stap -p4 of probe begin with the patched runtime..." % release)
            ko, errs, secs = stap_build(tree, "so_probe_patched", hello, out_dir, runtime)
            res["patched"] = {"ok": ko is not None, "errors": errs, "seconds": round(secs, 1)}
        if not res["patched"]["ok"]:  # type: ignore[index]
            return _save(out_dir, res)
    dtree, why = dwarf_tree(release, tree)
    res["dwarf_note"] = why
    jobs = [(name, args, tree) for name, args in SEEDS]
    if dtree:
        jobs += [(name + "-dwarf", args, dtree) for name, args in SEEDS if name in DWARF_SEEDS]
    for name, args, btree in jobs:
        base_name = name.split("-")[0]
        path = os.path.join(FIX, base_name + ".stp")
        prev = old.get("seeds", {}).get(name) if old.get("runtime") == runtime else None
        if prev and (not prev.get("ko") or os.path.exists(prev["ko"])) and \
                prev.get("mtime") == os.path.getmtime(path):
            res["seeds"][name] = prev  # type: ignore[index]
            continue
        # a script with no activity here is only elaborated (-p2): why it would not build, fast
        passes = "-p4" if base_name in ACTIVITY else "-p2"
        log("stap-oracle: %s: stap %s %s.stp%s..." % (release, passes, base_name,
                                                     " (DWARF)" if btree != tree else ""))
        built, errs, secs = stap_build(btree, "so_" + name.replace("-", "_"), [path] + args, out_dir,
                                       runtime, passes)
        res["seeds"][name] = {"ko": built, "errors": errs, "seconds": round(secs, 1),  # type: ignore[index]
                              "mtime": os.path.getmtime(path), "args": args, "passes": passes}
        _save(out_dir, res)
    return _save(out_dir, res)


def _load(out_dir: str) -> Dict:
    try:
        with open(os.path.join(out_dir, "builds.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _save(out_dir: str, res: Dict[str, object]) -> Dict[str, object]:
    with open(os.path.join(out_dir, "builds.json"), "w") as f:
        json.dump(res, f, indent=1)
    return res


def describe(res: Dict) -> List[str]:
    """One line per result, for the log and the summary."""
    out = ["stap-oracle: %s: %s" % (res["release"], res.get("stap") or "no stap")]
    st = res.get("stock") or {}
    out.append("stap-oracle: %s: probe begin with Debian's runtime: %s" % (
        res["release"], "builds" if st.get("ok") else "does NOT build"))
    out += ["    " + e for e in st.get("errors", [])]
    if res.get("runtime_note"):
        out.append("stap-oracle: %s: runtime: %s" % (res["release"], res["runtime_note"]))
    pt = res.get("patched")
    if pt:
        out.append("stap-oracle: %s: probe begin with that runtime: %s" % (
            res["release"], "builds" if pt.get("ok") else "does NOT build"))
        out += ["    " + e for e in pt.get("errors", [])]
    for name, s in sorted(res.get("seeds", {}).items()):
        what = "built (%.0f s)" % s["seconds"] if s.get("ko") else \
            "elaborates (-p2; no activity here)" if s.get("ko") == "" else "NOT built"
        out.append("stap-oracle: %s: %-13s %s" % (res["release"], name, what))
        if s.get("ko") is None:
            out += ["    " + e for e in s.get("errors", [])[:4]]
    return out


# --------------------------------------------------------------------------- guest: comparing


def udp_to(port: int, payload: bytes = b"abc") -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(payload, ("127.0.0.1", port))
    finally:
        s.close()


def _connect_both() -> None:
    for fam, addr in ((socket.AF_INET, ("127.0.0.1", 53)), (socket.AF_INET6, ("::1", 53))):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            s.connect(addr)
        except OSError:
            pass
        finally:
            s.close()


def _tcp_exchange() -> Dict[str, str]:
    """A loopback TCP connection: connect, accept, 10 bytes, close; its ports, to normalise."""
    lsock = socket.socket()
    try:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        c = socket.create_connection(("127.0.0.1", lsock.getsockname()[1]))
        a, _ = lsock.accept()
        c.sendall(b"x" * 10)
        a.recv(10)
        ports = {str(c.getsockname()[1]): "CPORT", str(lsock.getsockname()[1]): "SPORT"}
        c.close()
        a.close()
        return ports
    finally:
        lsock.close()


#: What each seed script needs to print something: (activity, the script ends by itself). An
#: activity may return {text: placeholder} for what differs between two runs (ports).
ACTIVITY = {
    "hello": (None, True),
    "ok": (None, False),
    "dns_sent": (lambda: udp_to(53), False),
    # a datagram to a closed port: the ICMP port unreachable (sport = dport = 0) out and in
    "udp_zero_out": (lambda: udp_to(9), False),
    "udp_zero_in": (lambda: udp_to(9), False),
    "connect": (_connect_both, False),
    "tcp_receive": (_tcp_exchange, False),
    "accept": (_tcp_exchange, False),
}  # type: Dict[str, Tuple[Optional[Callable[[], Optional[Dict[str, str]]]], bool]]


def _normalise(text: str, subs: Optional[Dict[str, str]] = None) -> List[str]:
    subs = dict(subs or {}, **{str(os.getpid()): "PID"})
    out = []
    for ln in text.splitlines():
        for k, v in subs.items():
            ln = re.sub(r"(?<!\d)%s(?!\d)" % re.escape(k), v, ln)
        out.append(ln)
    return out


Activity = Optional[Callable[[], Optional[Dict[str, str]]]]


def run_staprun(ko: str, activity: Activity, ends: bool, settle: float = 3.0) -> Tuple[str, Dict[str, str]]:
    """Load ``ko`` with staprun, make the activity once its probes are started, stop, the output.

    ``staprun -L`` loads the module and starts its probes, then detaches; ``staprun -A``
    attaches to read the output; SIGINT stops the script and unloads the module."""
    name = os.path.basename(ko)[:-3]
    if ends:
        r = subprocess.run(["staprun", ko], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=300)
        return r.stdout, {}
    r = subprocess.run(["staprun", "-L", ko], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("staprun -L %s: %s" % (ko, r.stderr.strip()))
    p = subprocess.Popen(["staprun", "-A", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    try:
        time.sleep(1.0)
        subs = (activity() if activity else None) or {}
        time.sleep(settle)
        p.send_signal(signal.SIGINT)
        out, _err = p.communicate(timeout=120)
        return out, subs
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if os.path.exists("/sys/module/" + name):
            subprocess.run(["staprun", "-d", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_undertow(script: List[str], activity: Activity, ends: bool,
                 settle: float = 3.0) -> Tuple[str, Dict[str, str]]:
    """``undertow stap -v SCRIPT``: the activity once ``Pass 5: starting run.`` is printed."""
    argv = [sys.executable, "-m", "undertow", "stap", "-v"] + script
    if ends:
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=300).stdout, {}
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    try:
        err = []
        while True:
            line = p.stderr.readline()  # type: ignore[union-attr]
            if not line:
                raise RuntimeError("undertow stap ended before running: %s" % "".join(err))
            err.append(line)
            if line.startswith("Pass 5: starting run."):
                break
        subs = (activity() if activity else None) or {}
        time.sleep(settle)
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=120)
        return out, subs
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def compare(res: Dict) -> Tuple[int, int, List[str]]:
    """In the guest: (agree, differ, report lines) for each seed that was built."""
    agree = differ = 0
    lines = []
    for name, s in sorted(res.get("seeds", {}).items()):
        base = name.split("-")[0]
        if not s.get("ko") or base not in ACTIVITY:
            continue
        act, ends = ACTIVITY[base]
        script = [os.path.join(FIX, base + ".stp")] + s.get("args", [])
        try:
            want = _normalise(*run_staprun(s["ko"], act, ends))
            got = _normalise(*run_undertow(script, act, ends))
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
            differ += 1
            lines.append("stap-oracle: %-13s ERROR %s" % (name, e))
            continue
        if want == got:
            agree += 1
            lines.append("stap-oracle: %-13s agree: %s" % (name, " | ".join(want) or "(no lines)"))
        else:
            differ += 1
            lines.append("stap-oracle: %-13s DIFFER" % name)
            lines += ["    stap:     " + ln for ln in want] or ["    stap:     (no lines)"]
            lines += ["    undertow: " + ln for ln in got] or ["    undertow: (no lines)"]
    return agree, differ, lines


def cmd_guest(args: argparse.Namespace) -> int:
    res = _load(os.path.join(_cache(), os.uname().release))
    if not res:
        print("stap-oracle: no builds.json for %s (build on the host first)" % os.uname().release)
        return 77
    for ln in describe(res):
        print(ln)
    if not any(s.get("ko") for s in res.get("seeds", {}).values()):
        print("0 passed, 0 failed, 1 skipped: SystemTap built no module for %s" % res["release"])
        return 0
    agree, differ, lines = compare(res)
    for ln in lines:
        print(ln)
    print("%d passed, %d failed" % (agree, differ))
    return 1 if differ else 0


def _built(args: argparse.Namespace) -> Iterator[Tuple[Any, Dict[str, Any]]]:
    """Per kernel series asked for: the prepared kernel and what SystemTap built for it
    (a kernel the lab cannot get is reported and left out)."""
    import lab  # noqa: E402

    for s in lab._kernels_arg(args.kernel):
        try:
            k = lab.prepare_kernel(s, args.package, None, log=lab._log)
        except lab.LabUnavailable as e:
            print("stap-oracle: %s: skipped: %s" % (s, e))
            continue
        yield k, build_all(k.release, log=lab._log)


def cmd_build(args: argparse.Namespace) -> int:
    for _k, res in _built(args):
        for ln in describe(res):
            print(ln)
    return 0


def guest_argv() -> List[str]:
    return [os.path.realpath(sys.executable), os.path.join("tests", "lab", "stap_oracle.py"), "guest"]


def cmd_run(args: argparse.Namespace) -> int:
    import lab  # noqa: E402

    rc = 0
    for k, res in _built(args):
        if not any(x.get("ko") for x in res.get("seeds", {}).values()):
            for ln in describe(res):
                print(ln)
            continue
        r = lab.run(k, guest_argv(), cwd=REPO, env={"PYTHONPATH": os.path.join(REPO, "src")},
                    timeout=args.timeout, stream=lab._stdout_stream)
        lab.report(r, args.allow_splat, "stap oracle")
        code = r.exit_code(args.allow_splat)
        rc = rc or code
    return rc


def main(argv: Optional[List[str]] = None) -> int:
    sys.path.insert(0, HERE)
    ap = argparse.ArgumentParser(prog="stap_oracle.py", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd")
    for name, fn in (("build", cmd_build), ("run", cmd_run)):
        p = sub.add_parser(name)
        p.add_argument("--kernel", default="6.1")
        p.add_argument("--package", default=None, help="exact linux-image package")
        p.add_argument("--timeout", type=float, default=900.0)
        p.add_argument("--allow-splat", action="store_true",
                       help="a SystemTap module taints the kernel; do not fail on its warnings")
        p.set_defaults(func=fn)
    p = sub.add_parser("guest", help="inside a lab guest: staprun each module, compare")
    p.set_defaults(func=cmd_guest)
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
