"""``undertow stap``: SystemTap scripts without SystemTap (no compiler, no module, no debuginfo).

The script is parsed (pass 1), elaborated through undertow's tapsets into the IR the
bpftrace front end builds (pass 2), compiled to BPF by undertow's own code generator
(pass 3) and run. See docs/stap.md for the language, the tapsets and what each
realisation sees.
"""

from __future__ import annotations

import argparse
import sys
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, List, Optional, TextIO

from ..errors import UndertowError, UsageError

__all__ = ["register", "run"]


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``stap`` subcommand and its options (SystemTap's names: -e -x -c -o -l -L -p -v -g)."""
    from .. import options

    p = sub.add_parser(
        "stap", parents=[common],
        help="run a SystemTap script (.stp) on undertow's BPF backend",
        description="Run a SystemTap script: probe points through undertow's tapsets (tracepoints where the "
                    "kernel has no kprobes), globals, arrays, statistics, printf. No compiler, no kernel module, "
                    "no debuginfo.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  undertow stap -e 'probe begin { printf("Hello, World\\n"); exit() }'
  undertow stap -e 'probe syscall.open { printf("%s open %s\\n", execname(), user_string($filename)) }'
  undertow stap inodewatch.stp 253 0 36398378
  undertow stap -L 'syscall.connect'
  undertow stap -p 2 script.stp        # show where each probe point attaches

See docs/stap.md for the language, the tapsets and the differences from SystemTap.""",
    )
    p.add_argument("file", nargs="?", metavar="FILE", help="the script (- for stdin)")
    p.add_argument("params", nargs="*", metavar="ARG", help="the script's arguments $1, $2 ... (@1: as strings)")
    p.add_argument("-e", dest="script", metavar="SCRIPT", help="the script text")
    p.add_argument("-x", dest="target_pid", type=options.pid, metavar="PID", help="target() is PID")
    p.add_argument("-c", dest="cmd", type=options.command, metavar="CMD",
                   help="run CMD (split like a shell would, never run by one); target() is its pid; "
                        "the script ends when it exits")
    p.add_argument("-o", dest="output", type=options.output_file, metavar="FILE",
                   help="write the script's output to FILE (not through a symbolic link)")
    p.add_argument("-l", dest="list", metavar="PATTERN", help="list the probe points matching PATTERN")
    p.add_argument("-L", dest="list_vars", metavar="PATTERN",
                   help="list the probe points matching PATTERN and their variables")
    p.add_argument("-p", dest="passes", type=int, choices=[1, 2, 3, 4, 5], metavar="N",
                   help="stop after pass N: 1 parse, 2 elaborate (show the probe points' realisations), "
                        "3 the generated BPF programs")
    p.add_argument("-g", dest="guru", action="store_true", help="guru mode (refused: undertow runs no C)")
    p.add_argument("--duration", type=options.duration, metavar="SECONDS", help="stop after SECONDS (> 0)")
    p.set_defaults(func=run, attaches=lambda a: not (a.list or a.list_vars or a.passes))
    return p


def _read_script(args: argparse.Namespace) -> "tuple":
    if args.script is not None:
        params = ([args.file] if args.file is not None else []) + list(args.params)
        return args.script, "-e", params
    if args.file is None:
        raise UsageError("no script", hints=["undertow stap -e 'probe begin { printf(\"hello\\n\"); exit() }'",
                                             "undertow stap FILE.stp [ARG...]"])
    if args.file == "-":
        text = sys.stdin.read((16 << 20) + 1)
        origin = "<stdin>"
    else:
        try:
            with open(args.file, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read((16 << 20) + 1)
        except OSError as e:
            raise UsageError(f"cannot read {args.file!r}: {e.strerror}",
                             hints=["give a readable .stp file, or the script with -e"]) from None
        origin = args.file
    if len(text) > 16 << 20:
        raise UsageError(f"{origin} is larger than 16 MiB: not a script")
    return text, origin, list(args.params)


def run(args: argparse.Namespace) -> int:
    """``undertow stap``: list, or parse/elaborate/compile (``-p``), or run the script."""
    if args.guru:
        raise UsageError("-g (guru mode) is refused: it runs embedded C in a kernel module, and undertow "
                         "loads no module",
                         hints=["drop -g; a script with %{ embedded C %} cannot run here"])
    if args.list or args.list_vars:
        return _list(args.list or args.list_vars, bool(args.list_vars))
    if args.passes in (4, 5):
        raise UsageError(f"-p {args.passes}: undertow builds no kernel module",
                         hints=["-p 3 shows the BPF programs undertow generates; without -p the script runs"])
    from ..lang.stap import Options, TracefsEnv, elaborate, parse_script

    text, origin, params = _read_script(args)
    script = parse_script(text, origin, params=params)
    if args.passes == 1:
        _show_parse(script)
        return 0
    from ..kernel import Kernel

    kernel = Kernel()
    prog = elaborate(script, TracefsEnv(kernel), Options(params, args.target_pid, bool(args.cmd)))
    verbose = getattr(args, "verbose", 0) or 0
    if args.passes == 2 or verbose:
        out = sys.stdout if args.passes == 2 else sys.stderr
        _show_elaborated(prog, out)
        if args.passes == 2:
            return 0
    from ..bpfrun import BpfRun

    bpf = BpfRun(program=prog, kernel=kernel, origin=origin, strict_kprobes=args.passes != 3)
    if args.passes == 3:
        bpf.compile()
        sys.stdout.write(bpf.listing())
        return 0
    return _run(args, bpf, prog)


def _run(args: argparse.Namespace, bpf: Any, prog: Any) -> int:
    from ..output.bt import BtRenderer
    from .run import _Child

    out: "TextIO" = sys.stdout
    if args.output:
        from ..options import open_output

        out = open_output(args.output, "-o")
    child = _Child(args.cmd) if args.cmd else None
    try:
        if child is not None:
            bpf.set_cpid(child.pid, child.name)
        bpf.compile()
        for line in bpf.warnings:
            print(line.replace("undertow run:", "undertow stap:"), file=sys.stderr)
        session = bpf.start()
        r = BtRenderer(session, bpf.kernel, False, on_error=lambda line: print(line, file=sys.stderr, flush=True))
        if child is not None:
            child.release()
        if getattr(args, "verbose", 0):  # as stap -v says it; tests wait for this line
            print("Pass 5: starting run.", file=sys.stderr, flush=True)
        quiet = argparse.Namespace(program_text=prog.source, program_origin=prog.origin)
        user = _UserSide(bpf, prog, out, args)
        exited = not user.run("begin")

        def until() -> "Optional[str]":
            if not user.timers():
                return "exit"
            return "child" if child is not None and child.done() else None

        if not exited:
            for recs in bpf.batches(duration=args.duration, poll_every=0.02, until=until):
                if _show_records(recs, r, out, quiet):
                    bpf.finish("exit")
        printed, maps = bpf.end(empty=False)
        _show_records(printed, r, out, quiet)
        user.run("end")
        _autoprint(maps, prog, out)
        out.flush()
        for line in session.stats.loss_report("undertow stap"):
            print(line, file=sys.stderr)
        return 0
    finally:
        bpf.close()
        if child is not None:
            child.kill()
        if out is not sys.stdout:
            out.close()


def _show_records(recs: "List[Any]", r: Any, out: "TextIO", ns: argparse.Namespace) -> bool:
    """Records shown in order as ``undertow run`` shows them, except histograms, which are
    drawn as SystemTap draws them (``value |@@@ count``). True when exit() was called."""
    from ..backends.bpf.runtime import MapPrint
    from .run import _emit

    stop = False
    chunk: "List[Any]" = []
    for rec in recs:
        if isinstance(rec, MapPrint) and rec.spec.agg in ("hist", "lhist"):
            stop = _emit(chunk, r, out, False, ns) or stop
            chunk = []
            out.write(_hist_text(rec))
            continue
        chunk.append(rec)
    return _emit(chunk, r, out, False, ns) or stop


class _UserSide:
    """The handlers that run in this process (begin/end/timer handlers with foreach:
    lang/stap/userspace.py), over the session's maps."""

    def __init__(self, bpf: Any, prog: Any, out: "TextIO", args: argparse.Namespace) -> None:
        import time

        self.handlers = list(prog.setting("stap_user", []) or [])
        self.bpf, self.out = bpf, out
        if not self.handlers:
            return
        from ..lang.stap.userspace import Interpreter, Store

        specs = {spec.name: spec for spec in bpf.compiled.maps.values()}
        session = bpf.session

        class _Maps(Store):
            def entries(self, name: str) -> "List[Any]":
                spec = specs.get(name)
                return session.read_map(spec) if spec is not None else []

            def clear(self, name: str) -> None:
                if name in specs:
                    session.clear_map(specs[name])

            def set(self, name: str, key: tuple, value: "Any") -> bool:
                if name not in specs:
                    return False
                session.write_map(specs[name], key, value)
                return True

            def delete(self, name: str, key: tuple) -> bool:
                if name not in specs:
                    return False
                session.delete_key(specs[name], key)
                return True

            def hist(self, name: str, key: "Optional[tuple]" = None) -> str:
                from ..backends.bpf.runtime import MapPrint

                spec = specs.get(name)
                if spec is None:
                    return "value |-------------------------------------------------- count\n\n"
                entries = session.read_map(spec)
                if key is not None:
                    entries = [(k, v) for k, v in entries if tuple(_plain(x) for x in k) == key]
                return _hist_text(MapPrint(spec, entries))

        target = args.target_pid or 0
        from ..output.values import escape

        self.interp = Interpreter(prog.setting("stap_script"), _Maps(), out.write, prog.setting("stap_params", []),
                                  target, prog.setting("stap_gtypes", {}), prog.setting("stap_constants", {}),
                                  escape=escape, ksym=_ksym(bpf.kernel))
        now = time.monotonic_ns()
        for h in self.handlers:
            h.next_ns = now + h.period_ns

    def run(self, when: str) -> bool:
        """Run the ``when`` handlers; False when one called exit()."""
        ok = True
        for h in self.handlers:
            if h.when == when and ok:
                ok = self.interp.run(h)
                self.out.flush()
        return ok

    def timers(self) -> bool:
        """Run the timer handlers that are due; False when one called exit()."""
        import time

        now = time.monotonic_ns()
        for h in self.handlers:
            if h.when == "timer" and now >= h.next_ns:
                h.next_ns = now + h.period_ns
                if not self.interp.run(h):
                    self.bpf.finish("exit")
                    return False
                self.out.flush()
        return True


def _ksym(kernel: Any) -> Any:
    """Kernel addresses to symbols (``symname()``/``symdata()`` in handlers run here), or None."""
    try:
        ks = kernel.kallsyms()
    except Exception:  # noqa: BLE001 - kallsyms unreadable: addresses are shown in hex
        return None
    return ks.symbolize


def _hist_text(rec: Any) -> str:
    """A histogram as SystemTap prints ``@hist_log``/``@hist_linear``: a header, one line per
    bucket from the first to the last non-empty one (and one empty bucket on each side)."""
    buckets = {}
    for key, value in rec.entries:
        if isinstance(value, dict):
            buckets.update(value)
        elif isinstance(value, (list, tuple)):
            for i, c in enumerate(value):
                if c:
                    buckets[i] = c
    rows = _hist_rows(rec, buckets)
    if not rows:
        return "value |-------------------------------------------------- count\n\n"
    width = max(5, max(len(str(v)) for v, _c in rows))
    top = max(c for _v, c in rows) or 1
    lines = [f"{'value':>{width}} |-------------------------------------------------- count"]
    i = 0
    while i < len(rows):
        v, c = rows[i]
        j = i
        while j < len(rows) and rows[j][1] == 0:
            j += 1
        if j - i > 3 and i > 0 and j < len(rows):  # a long run of empty buckets: first, ~, last
            lines.append(f"{rows[i][0]:>{width}} |{'':<50} 0")
            lines.append(f"{'~':>{width}}")
            lines.append(f"{rows[j - 1][0]:>{width}} |{'':<50} 0")
            i = j
            continue
        bar = "@" * (c * 50 // top) if c else ""
        lines.append(f"{v:>{width}} |{bar:<50} {c}")
        i += 1
    return "\n".join(lines) + "\n\n"


def _hist_rows(rec: Any, buckets: Any) -> "List[tuple]":
    spec = rec.spec
    rows = []
    if not buckets:
        return rows
    first, last = min(buckets), max(buckets)
    lo, _hi, step = (list(spec.lhist or ()) + [0, 0, 1])[:3]
    # SystemTap shows every bucket from the first to the last non-empty one, and one empty
    # bucket on each side
    for idx in range(max(0, first - 1), last + 2):
        c = buckets.get(idx, 0)
        if spec.agg == "hist":  # log2 buckets: 0 -> negative, 1 -> 0, k -> [2^(k-2), 2^(k-1))
            low = -1 if idx == 0 else (0 if idx == 1 else 1 << (idx - 2))
        else:
            low = lo + (idx - 1) * step if idx else lo - step
        rows.append((low, c))
    return rows


def _autoprint(maps: "List[Any]", prog: Any, out: "TextIO") -> None:
    """SystemTap prints, at the end, every global the script wrote and never read."""
    names = {"@" + g for g in prog.setting("stap_autoprint", [])}
    for mp in maps:
        name = mp.spec.name
        if name not in names:
            continue
        bare = name[1:]
        for key, value in mp.entries:
            if key in ((), None) or key == ("",):
                out.write(f"{bare}={_show(value)}\n")
            else:
                ks = key if isinstance(key, tuple) else (key,)
                out.write(f"{bare}[{','.join(_show(k) for k in ks)}]={_show(value)}\n")


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.split(b"\0", 1)[0].decode("utf-8", "replace")
    return v


def _show(v: Any) -> str:
    """A value printed at the end: strings (which traced processes control) quoted and escaped."""
    from ..output.values import escape

    if isinstance(v, bytes):
        v = v.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    if isinstance(v, str):
        return '"' + escape(v) + '"'
    return str(v)


def _show_parse(script: Any) -> None:
    for g in script.globals.values():
        print(f"global {g.name}")
    for f in script.functions.values():
        print(f"function {f.name}({', '.join(p for p, _t in f.params)})")
    for p in script.probes:
        print("probe " + ", ".join(pp.text() + ("?" if pp.optional else "") for pp in p.points))
    for a in script.aliases:
        print("probe " + ", ".join(n.text() for n in a.names) + " = " + ", ".join(pp.text() for pp in a.points))


def _show_elaborated(prog: Any, out: "TextIO") -> None:
    for note in prog.setting("stap_notes", []):
        out.write(f"# {note}\n")
    for p in prog.probes:
        where = ", ".join(ap.describe() for ap in p.attach)
        out.write(f"{where}\n")
    out.flush()


def _list(pattern: str, with_vars: bool) -> int:
    from ..kernel import Kernel
    from ..lang.stap import TracefsEnv, list_points

    env = TracefsEnv(Kernel())
    try:
        points = list_points(env, pattern)
    except UndertowError:
        raise
    for name, vs in points:
        if with_vars:
            print(name + "".join(f" {v}:{t}" for v, t in vs))
        else:
            print(name)
    if not points:
        print(f"undertow stap: no probe point matches {pattern!r} (kernel.function and kernel.trace points: "
              "undertow list)", file=sys.stderr)
        return 1
    return 0
