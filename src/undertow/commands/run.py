"""``undertow run``: bpftrace programs (``-e 'PROGRAM'`` or ``FILE.bt``) without LLVM."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, TextIO

from ..errors import UndertowError, UsageError

#: bpftrace's attach notice: printed (on stderr) once every probe is attached when this
#: variable is in the environment (bpftrace's runtime tests wait for it).
NOTIFY = "__BPFTRACE_NOTIFY_PROBES_ATTACHED"


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from .. import options

    p = sub.add_parser(
        "run", parents=[common],
        help="run a bpftrace program (-e 'PROGRAM' or FILE.bt) on undertow's BPF backend",
        description="Run a program in the bpftrace language: probes, filters, maps, printf, histograms. "
                    "BPF is generated in Python and loaded with bpf(2): no LLVM, no clang, no kernel headers.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  undertow run -e 'tracepoint:syscalls:sys_enter_openat { printf("%s %s\\n", comm, str(args.filename)); }'
  undertow run -e 'tracepoint:raw_syscalls:sys_enter { @[comm] = count(); }'
  undertow run -e 'tracepoint:syscalls:sys_exit_read /args.ret > 0/ { @bytes = hist(args.ret); }'
  undertow run -e 'profile:hz:99 { @[kstack] = count(); }'
  undertow run execsnoop.bt
  undertow run -d -e 'BEGIN { printf("hi\\n"); exit(); }'        # show the BPF, attach nothing
  undertow run -c 'ls /tmp' -e 'tracepoint:syscalls:sys_enter_openat /pid == cpid/ { @[str(args.filename)] = count(); }'

A script may start with: #!/usr/bin/env -S undertow run
See docs/bpftrace.md for the language and the differences from bpftrace 0.17.""",
    )
    p.add_argument("file", nargs="?", metavar="FILE", help="a .bt program (or, with -l, a probe pattern)")
    p.add_argument("params", nargs="*", metavar="ARG", help="positional parameters $1, $2, ...")
    p.add_argument("-e", dest="program", metavar="PROGRAM", help="the program text")
    p.add_argument("-f", dest="format", choices=["text", "json"], default="text", help="output format")
    p.add_argument("--json", action="store_true", help="same as -f json")
    p.add_argument("-o", dest="output", metavar="FILE", type=options.output_file,
                   help="write the program's output to FILE (not through a symbolic link, nor over "
                        "another user's file)")
    p.add_argument("-p", dest="pid", type=options.pid, metavar="PID",
                   help="only this process (and uprobes in it); it must exist")
    p.add_argument("-c", dest="cmd", metavar="CMD", type=options.command,
                   help="run CMD (split like a shell would, never run by one), set cpid, end with it")
    p.add_argument("-l", dest="list", action="store_true", help="list probes (same as undertow list)")
    p.add_argument("-d", "--dry-run", action="count", default=0, help="show the resolved probes and BPF listings")
    p.add_argument("-q", dest="quiet", action="store_true", help="keep messages quiet (no \"Attaching N probes...\")")
    p.add_argument("-k", dest="helper_check", action="count", default=0,
                   help="warn when a map helper fails (-k: updates and deletes; -kk: lookups too)")
    p.add_argument("-I", dest="include_dirs", action="append", default=[], metavar="DIR",
                   help="a directory searched for #include <FILE> (undertow reads no headers: types come "
                        "from BTF, but an #include found nowhere is reported)")
    p.add_argument("--include", dest="include_files", action="append", default=[], metavar="FILE",
                   help="#include FILE before the program (as bpftrace; checked as -I's)")
    p.add_argument("--no-warnings", action="store_true", help="do not print warnings")
    p.add_argument("-B", dest="buffering", choices=["line", "full", "none"], default="line",
                   help="output buffering: line (default), full, none")
    p.add_argument("--info", action="store_true",
                   help="what this kernel offers to BPF, in bpftrace --info's layout (and what undertow uses)")
    p.add_argument("-V", "--version", action="version", version=version_line(),
                   help="undertow's version and the bpftrace version whose language it runs")
    p.add_argument("--unsafe", action="store_true", help="allow system() and signal()")
    p.add_argument("--usdt-file-activation", action="store_true",
                   help="count up USDT semaphores in every process that maps the file (always done: the "
                        "kernel counts them for undertow's uprobes, Linux 4.20+)")
    p.add_argument("--no-cache", action="store_true",
                   help="compile the program even if this boot already compiled the same script "
                        "(compiled programs are kept per boot: docs/bpftrace.md)")
    p.add_argument("--duration", type=options.duration, metavar="SECONDS", help="stop after SECONDS (> 0)")
    p.add_argument("--drain", action="store_true",
                   help="on a stop (Ctrl-C, SIGTERM, --duration), show everything recorded before it, however "
                        "long that takes (default: at most 0.4 s more; the rest is counted and reported)")
    p.add_argument("--buffer-mb", type=options.buffer_mb, default=0, metavar="MB",
                   help="ring buffer size in MiB, a power of two from 1 to 2048 (default: 16, or less on "
                        "machines with under 512 MiB of RAM; a fuller ring is moved to user memory, so a larger one "
                        "only helps when the reader stalls, e.g. on a blocked terminal)")
    from ..fleet.options import add_output_options

    add_output_options(p)  # --output URL --create --run-id: the events to NATS/ClickHouse (docs/fleet.md)
    # -l and --info create nothing: SIGINT/SIGTERM end them at once (cli.main), as `undertow list`
    p.set_defaults(func=run, attaches=lambda a: not (a.list or getattr(a, "info", False)))
    if os.path.basename(sys.argv[0] or "") == "bpftrace":  # run_bt.persona(), without importing it
        from . import run_bt

        run_bt.install(p)
    return p


#: The bpftrace release whose language (and command line) ``undertow run`` follows.
BPFTRACE_LANGUAGE = "v0.17.0"


def version_line() -> str:
    """``undertow run --version``: undertow's version and the bpftrace language it runs."""
    from ..version import __version__

    return f"undertow {__version__} (the language of bpftrace {BPFTRACE_LANGUAGE})"


def run(args: argparse.Namespace) -> int:  # noqa: C901 - the command's flow, top to bottom
    if args.info:
        from .run_info import info

        return info()
    if args.list:
        return _list(args)
    ring = None
    if not args.dry_run and (args.program is not None or args.file is not None):
        from ..backends.bpf.ringprefetch import RingPrefetch, default_buffer_mb

        mb = args.buffer_mb or default_buffer_mb()
        if mb <= 0 or mb & (mb - 1):
            raise UsageError(f"--buffer-mb {mb}: the ring buffer size must be a power of two")
        if os.geteuid() == 0:
            ring = RingPrefetch(mb << 20)  # created by the kernel while we compile
    try:
        return _prepare(args, ring)
    finally:
        if ring is not None:
            ring.discard()


def _prepare(args: argparse.Namespace, ring: Any) -> int:
    from ..bpfrun import BpfRun

    if args.program is not None:
        text, origin = args.program, "-e"
        params = ([args.file] if args.file is not None else []) + list(args.params)
    elif args.file == "-":  # the program on stdin, as bpftrace reads it
        text = sys.stdin.read((16 << 20) + 1)
        if len(text) > 16 << 20:
            raise UsageError("the program on stdin is larger than 16 MiB: not a program")
        origin, params = "stdin", list(args.params)
    elif args.file is not None:
        try:
            with open(args.file, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read((16 << 20) + 1)  # bounded: `undertow run /dev/zero` must not eat the memory
        except OSError as e:
            raise UsageError(f"failed to open file {_quoted(args.file)}: {e.strerror}",
                             hints=["give a program with -e 'PROGRAM' or a readable .bt file"]) from None
        if len(text) > 16 << 20:
            raise UsageError(f"{args.file} is larger than 16 MiB: not a program")
        origin, params = args.file, list(args.params)
    else:
        raise UsageError("no program", hints=["undertow run -e 'BEGIN { printf(\"hello\\n\"); exit(); }'",
                                              "undertow run FILE.bt"])
    # a compiled program kept by an earlier run of this script on this boot is used, unless the
    # run depends on a pid (-p, -c) or only shows the listing
    settings = bpftrace_env()
    if args.helper_check:
        settings["helper_check"] = min(args.helper_check, 2)
    cat_max = settings.pop("cat_bytes_max", None)
    settings = settings or None  # type: ignore[assignment]
    bpf = BpfRun(text, origin=origin, params=params, pid=args.pid, unsafe=args.unsafe, settings=settings,
                 cache=not (args.dry_run or args.pid or args.cmd or args.no_cache or settings),
                 strict_kprobes=not args.dry_run)
    json_mode = args.json or args.format == "json"
    args.program_text, args.program_origin = text, origin  # for places in warnings (-k)
    args.cat_bytes_max = cat_max
    if args.output:
        from ..options import open_output

        out: TextIO = open_output(args.output, "-o")
    else:
        out = sys.stdout
    child = _Child(args.cmd) if args.cmd else None
    try:
        if child is not None:
            bpf.set_cpid(child.pid, child.name)
        return _run(args, bpf, out, json_mode, child, ring)
    finally:
        bpf.close()
        if child is not None:
            child.kill()
        if out is not sys.stdout:
            out.close()


def _run(args: argparse.Namespace, bpf: Any, out: TextIO, json_mode: bool, child: Optional["_Child"],
         ring: Any = None) -> int:
    """Compile (or take this boot's cached programs), then attach and print until the end.

    Ctrl-C, SIGTERM and SIGHUP only raise a flag (undertow.stop, installed by cli.main): a
    signal that lands between two steps (say, right after "Attaching") still ends with the
    maps printed, as bpftrace does; records made after it are not shown (backends/loop.py)."""
    from ..output.bt import BtRenderer

    bpf.compile()
    if not args.no_warnings:
        shown = getattr(args, "render_warning", None) or (lambda w: w)
        for line in bpf.warnings + include_warnings(bpf.text, args.include_dirs, args.include_files):
            print(shown(line), file=sys.stderr)
    if args.verbose:
        if bpf.from_cache:
            print("undertow run: compiled programs from this boot's cache (--no-cache compiles again)",
                  file=sys.stderr)
        elif bpf.not_kept and not (args.dry_run or args.no_cache):
            print(f"undertow run: compiled programs not cached: {bpf.not_kept}", file=sys.stderr)
    if args.dry_run:
        out.write(bpf.listing())
        return 0
    usr1 = _PrintMapsSignal()  # before attaching: a SIGUSR1 from then on prints the maps
    session = bpf.start(args.buffer_mb, ring=ring)
    r = BtRenderer(session, bpf.kernel, json_mode, on_error=lambda line: print(line, file=sys.stderr, flush=True))
    if getattr(args, "cat_bytes_max", None):
        r.cat_bytes_max = args.cat_bytes_max  # checked when the run started
    n = bpf.probe_count()
    if args.quiet:
        pass
    elif json_mode:
        out.write(f'{{"type": "attached_probes", "data": {{"probes": {n}}}}}\n')
    else:
        out.write(f"Attaching {n} probe{'s' if n != 1 else ''}...\n")
    out.flush()
    if args.verbose:
        for cp in bpf.compiled.probes:
            note = f"; {cp.note}" if cp.note else ""
            print(f"undertow run: {cp.name}: {cp.prog_type} program ({len(cp.program)} insns){note}", file=sys.stderr)
    if child is not None:
        child.release()
    if NOTIFY in os.environ:
        # bpftrace's notice once every probe is attached (and -c's command started), on
        # stderr as bpftrace writes it: its test engine starts a case's AFTER command then
        print(NOTIFY, file=sys.stderr, flush=True)
    # records are submitted without wake-ups; a 20 ms timer keeps printf output prompt
    # (a first event within ~20 ms of attaching, as bpftrace shows it: bench/bt_startup.py)
    # at ~50 cheap wake-ups per second; with -c the run ends with the command
    def until() -> Optional[str]:
        if usr1.take():  # SIGUSR1: every map, as now (bpftrace's print_maps), and on
            for mp in bpf.session.final_maps():
                out.write(r.map(mp))
            out.flush()
        return "child" if child is not None and child.done() else None

    try:
        for recs in bpf.batches(duration=args.duration, drain=args.drain, poll_every=0.02, until=until):
            if _emit(recs, r, out, json_mode, args):
                # what was read after exit()'s record is not shown (bpftrace 0.17 ignores it):
                # no drain; the probes go on until END (bpf/runtime.py run_end)
                bpf.finish("exit")
            until()
    except KeyboardInterrupt:
        pass  # a second Ctrl-C while --drain showed a long backlog: on to the maps
    finally:
        usr1.restore()
    printed, maps = bpf.end(empty=not json_mode)
    _emit(printed, r, out, json_mode, args)
    if not json_mode:
        out.write("\n\n")  # as bpftrace 0.17 does before the maps, even when there are none
    for mp in maps:
        out.write(r.map(mp))
    out.flush()
    if bpf.keep() and args.verbose:  # it attached: worth keeping for the next run of this script
        print("undertow run: compiled programs kept for the next run of this script on this boot", file=sys.stderr)
    for line in session.stats.loss_report("undertow run"):
        print(line, file=sys.stderr)
    if session.read_faults:
        print(f"undertow run: {session.read_faults} string reads failed (user page not present at the "
              "probe, e.g. at syscall entry): they printed as \"\"", file=sys.stderr)
    return 0


#: bpftrace's environment variables undertow honours: (variable, setting, largest value).
BPFTRACE_ENV = (("BPFTRACE_STRLEN", "strlen", 200), ("BPFTRACE_MAP_KEYS_MAX", "map_keys_max", 1 << 24),
                ("BPFTRACE_CAT_BYTES_MAX", "cat_bytes_max", 1 << 30))


def bpftrace_env(environ: Optional[Dict[str, str]] = None) -> Dict[str, int]:
    """The program settings bpftrace's environment variables ask for (``BPFTRACE_STRLEN``:
    bytes str() reads, at most 200 as in bpftrace; ``BPFTRACE_MAP_KEYS_MAX``: entries per
    map; ``BPFTRACE_CAT_BYTES_MAX``: bytes cat() shows); a value that is not a positive
    integer is an error, worded as bpftrace's."""
    env = os.environ if environ is None else environ
    out: Dict[str, int] = {}
    for var, name, most in BPFTRACE_ENV:
        text = env.get(var)
        if text is None:
            continue
        if not (text.isascii() and text.isdigit()) or int(text) == 0:
            raise UsageError(f"Env var '{var}' did not contain a valid uint64_t, or was zero-valued.")
        if int(text) > most:
            raise UsageError(f"'{var}' {text} exceeds the current maximum of {most}"
                             + (" bytes." if name == "strlen" else "."))
        out[name] = int(text)
    return out


def _quoted(name: str) -> str:
    """A file name in single quotes for a message (control characters escaped)."""
    return "'" + "".join(c if c.isprintable() else f"\\x{ord(c) & 0xFF:02x}" for c in name) + "'"


def include_warnings(text: str, dirs: List[str], files: List[str]) -> List[str]:
    """``#include`` files (in the program or ``--include``) found in no include directory.

    undertow reads no C headers (types come from BTF), so a header that is missing does
    not stop the run as it stops bpftrace's clang; it is still worth a line: the program
    may count on a macro of it."""
    if "#include" not in text and not files:
        return []
    from ..lang.bt.preprocess import preprocess

    try:
        names = [n.strip() for n in preprocess(text).includes] + [f"<{f}>" for f in files]
    except UndertowError:
        return []  # the parser has reported it
    search = list(dirs) + ["/usr/local/include", "/usr/include", f"/usr/include/{os.uname().machine}-linux-gnu"]
    out = []
    for name in names:
        inner = name[1:-1] if len(name) > 1 and name[0] in "<\"" else name
        here = [inner] if name.startswith('"') or os.path.isabs(inner) else []
        if not inner or any(os.path.exists(c) for c in here + [os.path.join(d, inner) for d in search]):
            continue
        out.append(f"undertow run: warning: {_quoted(inner)} file not found (#include {name}; undertow "
                   "reads no C headers, types come from BTF: a macro of it is unknown)")
    return out


def _emit(recs: List[Any], r: Any, out: TextIO, json_mode: bool, args: argparse.Namespace) -> bool:
    from ..backends.bpf.runtime import ExitRequest, MapPrint, Notice, Printed
    from ..events import Event, Lost

    stop = False
    buf: List[str] = []
    for rec in recs:
        if isinstance(rec, Printed) and rec.action.kind == "printf":
            buf.append(r.printed(rec))  # written in one go below
            continue
        if buf:
            out.write("".join(buf))
            buf = []
        if isinstance(rec, Printed):
            if rec.action.kind == "system":
                _system(rec, r, out)
            elif rec.action.kind == "helper_error":
                _helper_error(rec, out, json_mode, args)
            else:
                out.write(r.printed(rec))
        elif isinstance(rec, MapPrint):
            out.write(r.map(rec))
        elif isinstance(rec, ExitRequest):
            stop = True
        elif isinstance(rec, Notice):
            if json_mode:
                import json

                out.write(json.dumps({"type": "lost_events", "data": rec.text}) + "\n")
            else:
                out.write(rec.text + "\n")
        elif isinstance(rec, Lost):
            if json_mode:
                out.write(f'{{"type": "lost_events", "data": {{"events": {rec.count}}}}}\n')
            else:
                out.write(f"Lost {rec.count} events\n")
        elif isinstance(rec, Event):
            out.write(f"{rec.probe} {rec.fields}\n")
    if buf:
        out.write("".join(buf))
    if recs:
        out.flush()
    return stop


def _helper_error(rec: Any, out: TextIO, json_mode: bool, args: argparse.Namespace) -> None:
    """``-k``/``-kk``: a helper failed (or a lookup found nothing) at a place of the program:
    a warning there on stderr, or a ``helper_error`` JSON line (as bpftrace reports them)."""
    act = rec.action
    code = int(rec.values[0]) if rec.values else 0
    helper = str(act.extra.get("helper", "?"))
    source, origin = getattr(args, "program_text", ""), getattr(args, "program_origin", "-e")
    line = col = 0
    if act.span is not None and source:
        start = min(act.span.start, len(source))
        line = source.count("\n", 0, start) + 1
        col = start - (source.rfind("\n", 0, start) + 1) + 1
    if json_mode:
        import json

        out.write(json.dumps({"type": "helper_error", "helper": helper, "retcode": code, "line": line,
                              "col": col}) + "\n")
        return
    msg = f"Failed to {helper}: " + (f"{os.strerror(-code)} ({code})" if code < 0 else str(code))
    located = getattr(args, "render_located", None)
    if act.span is None or not source:
        text = f"undertow run: warning: {msg}" if located is None else f"WARNING: {msg}"
    elif located is not None:
        text = located(source, act.span, "warning", msg, origin)
    else:
        from ..errors import render_caret

        text = "undertow run: " + render_caret(source, act.span, f"warning: {msg}", origin=origin)
    out.flush()
    print(text, file=sys.stderr, flush=True)


#: After a stop signal, system() commands still run for this long (the read loop's own
#: drain time), then the rest are not run: each is a fork and exec, and a program calling
#: system() on every sched_switch makes thousands of them faster than they run.
SYSTEM_AFTER_STOP_NS = 400_000_000


def _system(rec: Any, r: Any, out: TextIO) -> None:
    """``system("cmd %d", x)`` (only with --unsafe): the command is split into words and
    ``|`` pipelines (:mod:`undertow.pipeline`), never given to a shell; its output as it is
    (``-f json``: a ``"syscall"`` line). After a stop (Ctrl-C, SIGTERM), commands run for
    SYSTEM_AFTER_STOP_NS more, then a command still running is ended and no more are run."""
    import subprocess

    from .. import stop
    from ..output.bt import format_printf
    from ..pipeline import Pipeline, split_pipeline

    def stopped_long_ago() -> bool:
        # what was recorded before a stop is still shown for a while (the drain), its
        # commands with it; after that, none (a storm of them must not delay the end)
        return stop.requested() > 0 and time.monotonic_ns() - stop.stopped_at_ns() > SYSTEM_AFTER_STOP_NS

    if stopped_long_ago():
        return
    act = rec.action
    cmd = format_printf(act.fmt, rec.values, [s.kind for _o, s in act.args], r.show)
    try:
        pipe = Pipeline(split_pipeline(cmd))
    except (OSError, ValueError) as e:
        out.write(r.syscall(f"system: {cmd}: {e}\n"))
        return
    text = ""
    try:
        for _ in range(100):  # 10 s at most, a stop noticed within 0.1 s
            try:
                text = pipe.communicate(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                if stopped_long_ago():
                    break
    finally:
        pipe.kill()
    out.write(r.syscall(text))


class _PrintMapsSignal:
    """SIGUSR1 while a program runs: a flag (and the wake-up byte Python writes for any
    handled signal), so the read loop prints every map at its next turn, as bpftrace does;
    without it SIGUSR1 would end undertow."""

    def __init__(self) -> None:
        self.fired = False
        try:
            self._old: Any = signal.signal(signal.SIGUSR1, self._handler)
        except ValueError:  # not the main thread (a library caller's): left as it is
            self._old = None

    def _handler(self, signum: int, frame: Any) -> None:
        self.fired = True

    def take(self) -> bool:
        fired, self.fired = self.fired, False
        return fired

    def restore(self) -> None:
        if self._old is not None:
            signal.signal(signal.SIGUSR1, self._old)
            self._old = None


class _Child:
    """``-c CMD``: forked at once (so ``cpid`` is known when compiling), exec'd once attached.

    A failed exec is reported by :meth:`release` (``run`` ends with status 1; bpftrace's
    is 255): the child writes the errno into a close-on-exec pipe, which a successful
    exec closes empty."""

    def __init__(self, command: str) -> None:
        import shlex

        try:
            argv = shlex.split(command)  # options.command checked it splits and names a program
        except ValueError as e:  # No closing quotation, No escaped character (an API caller)
            raise UsageError(f"-c {command!r}: {e}", hints=["quote the command as a shell would"]) from None
        if not argv:
            raise UsageError("-c needs a command")
        rfd, wfd = os.pipe()
        efr, efw = os.pipe()  # both ends close-on-exec (PEP 446)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.close(wfd)
                os.close(efr)
                go = os.read(rfd, 1)
                os.close(rfd)
                if not go:  # undertow gave up before attaching: run nothing
                    os._exit(0)
                os.execvp(argv[0], argv)
            except BaseException as e:  # noqa: B902 - the child must never return into undertow
                os.write(efw, str(getattr(e, "errno", None) or 0).encode())
            finally:
                os._exit(127)
        os.close(rfd)
        os.close(efw)
        self.pid, self._wfd, self._efd, self._status = pid, wfd, efr, None  # type: Any
        self.name = argv[0]

    def release(self) -> None:
        """Let the child exec the command; raise :class:`UndertowError` if it could not."""
        if self._wfd >= 0:
            os.write(self._wfd, b"x")
            os.close(self._wfd)
            self._wfd = -1
        if self._efd >= 0:
            try:
                data = os.read(self._efd, 32)  # empty: the exec closed it
            finally:
                os.close(self._efd)
                self._efd = -1
            if data:
                err = int(data)
                raise UndertowError(f"-c: cannot run {self.name}: {os.strerror(err) if err else 'exec failed'}")

    def done(self) -> bool:
        if self._status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self._status = st
        return self._status is not None

    def kill(self) -> None:
        if self._wfd >= 0:
            os.close(self._wfd)  # the child reads EOF and exits without running the command
            self._wfd = -1
        if self._efd >= 0:
            os.close(self._efd)
            self._efd = -1
        if not self.done():
            # SIGTERM, and SIGKILL if it is still there after half a second: a command that
            # ignores SIGTERM must not keep undertow from ending (a stop takes a second at most)
            try:
                os.kill(self.pid, signal.SIGTERM)
                for _ in range(50):
                    if self.done():
                        return
                    time.sleep(0.01)
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def _list(args: argparse.Namespace) -> int:
    from . import list as list_cmd

    ns = argparse.Namespace(**vars(args))
    ns.pattern = args.file or "*"   # -l PATTERN, as bpftrace -l; -lv is -l -v
    ns.bpftrace_listing = True
    return int(list_cmd.run(ns) or 0)
