"""``undertow trace``: surftrace-style probe lines on the running kernel."""

from __future__ import annotations

import argparse
import sys
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, List, Optional

from ..errors import UndertowError, UsageError


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from .. import options

    p = sub.add_parser(
        "trace",
        parents=[common],
        help="trace probe lines: tracepoints, kprobes, uprobes (surftrace syntax)",
        description="Trace surftrace-style probe lines. One line per argument (quote each).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""probe lines:
  p SYMBOL[+OFF] [NAME=EXPR ...] [f:FILTER]    kprobe (function entry)
  r SYMBOL [NAME=EXPR ...] [f:FILTER]          kretprobe ($retval)
  e GROUP/EVENT [f:FILTER]                     tracepoint (wildcards allowed: e sched/*)
  P OBJ:SYMBOL[+OFF] [NAME=EXPR ...]           uprobe (OBJ: path, command, or libc/libssl)
  R OBJ:SYMBOL [NAME=EXPR ...]                 uretprobe

examples:
  undertow trace 'e syscalls/sys_enter_openat f:comm=="cat"'
  undertow trace 'e sched/sched_process_exec' --json --duration 10
  undertow trace 'P libc:getaddrinfo host=+0(%di):string'
  undertow trace -S 'p tcp_connect daddr=sk->__sk_common.skc_daddr'     # show, don't run
  undertow trace 'p _do_fork comm=%0->comm users=S%0->mm->mm_users f:comm==systemd'
  undertow trace -c 'cat /etc/hostname' 'e syscalls/sys_enter_openat' 'e syscalls/sys_exit_openat'
                                          # ptrace: no root needed (docs/ptrace.md)

See docs/probe-lines.md for the expression language.""",
    )
    p.add_argument("lines", nargs="*", metavar="LINE", help="probe line")
    p.add_argument("-f", "--file", action="append", default=[], metavar="FILE",
                   help="read probe lines from FILE (one per line, # comments)")
    p.add_argument("-S", "--show", action="store_true",
                   help="print the exact tracefs lines and filters, attach nothing (works offline)")
    p.add_argument("-o", "--output-script", metavar="FILE", type=options.output_file,
                   help="write a standalone POSIX shell script reproducing the session (not through a "
                        "symbolic link, nor over another user's file)")
    p.add_argument("-s", "--stack", action="store_true", help="kernel stack with every event")
    p.add_argument("-a", "--arch", choices=["x86_64", "aarch64"], help="target architecture for -S/-o")
    p.add_argument("--btf", metavar="FILE",
                   help="the target kernel's types: its BTF (/sys/kernel/btf/vmlinux there) or its vmlinux "
                        "(ELF with .BTF); for -S/-o for another kernel (default: this kernel's BTF)")
    p.add_argument("-p", "--pid", type=options.pid, help="only events of this process (it must exist)")
    p.add_argument("-c", dest="cmd", metavar="CMD", type=options.command,
                   help="start CMD (split into words, no shell) and trace its syscalls and its children's "
                        "with the ptrace backend; undertow ends when CMD does")
    p.add_argument("--json", action="store_true", help="one JSON object per event per line")
    p.add_argument("--duration", type=options.duration, metavar="SECONDS", help="stop after SECONDS (> 0)")
    p.add_argument("--count", type=options.count, metavar="N", help="stop after N events (>= 1)")
    p.add_argument("--backend", default="auto", choices=["auto", "ftrace", "bpf", "ptrace"],
                   help="tracing mechanism (default: auto; ptrace, for syscall lines with -p or -c, is chosen "
                        "by itself for -c and where tracefs and BPF are not permitted)")
    p.add_argument("--drain", action="store_true",
                   help="on a stop (Ctrl-C, SIGTERM, --duration, --count), show everything recorded before "
                        "it, however long that takes (default: at most 0.4 s more; the rest is counted: "
                        "'not drained' in the summary)")
    p.add_argument("--no-summary", action="store_true", help="no exit summary on stderr")
    from ..fleet.options import add_output_options

    add_output_options(p)  # --output URL --create --run-id: the events to NATS/ClickHouse (docs/fleet.md)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..api import trace
    from ..output.text import TextWriter, summary

    if not args.lines and not args.file:
        raise UsageError("no probe lines given", hints=["e.g. undertow trace 'e sched/sched_process_exec'"])
    offline = bool(args.show or args.output_script)
    cmd = getattr(args, "cmd", None)
    if cmd is not None and args.pid is not None:
        raise UsageError("-p and -c exclude each other", hints=["-p PID attaches to a process; -c CMD starts one"])
    argv = None
    if cmd is not None:
        import shlex

        argv = shlex.split(cmd)
    kernel = target_kernel(getattr(args, "btf", None), args.arch)
    tracer = trace(*args.lines, files=args.file, backend=args.backend, pid=args.pid, stack=args.stack,
                   arch=args.arch, offline=offline, duration=args.duration, count=args.count,
                   drain=args.drain, kernel=kernel, cmd=argv)
    for line in diagnostic_lines(tracer.program.warnings, bool(args.verbose)):
        print(line, file=sys.stderr)
    if tracer.backend.name == "ptrace" and args.output_script:
        raise UsageError("-o writes a shell script for tracefs; the ptrace backend has none",
                         hints=["use -S to see what it would trace"])
    if tracer.backend.name == "ptrace" and args.backend == "auto" and not args.verbose:
        # said even without -v: the user asked for no backend and gets the one for non-root use
        print(f"undertow trace: backend ptrace ({tracer.backend_why})", file=sys.stderr)
    if args.verbose:
        why = f" ({tracer.backend_why})" if tracer.backend_why else ""
        print(f"undertow trace: backend {tracer.backend.name}{why}", file=sys.stderr)
    if args.show:
        sys.stdout.write(tracer.show())
        return 0
    if args.output_script:
        from ..backends.ftrace.script import write_script
        from ..options import open_output

        with open_output(args.output_script, "-o", 0o755) as f:
            write_script(tracer.plan, f)
        print(f"undertow trace: wrote {args.output_script}", file=sys.stderr)
        return 0
    if args.json:
        from ..output.jsonl import JsonWriter  # json costs ~2.5 ms to import: only for --json

        writer: Any = JsonWriter(sys.stdout)
    else:
        writer = TextWriter(sys.stdout)
    from ..events import Event

    # SIGINT/SIGTERM/SIGHUP end the loop through undertow.stop (cli.main); the tracer
    # stops producing, shows what it had for at most 0.4 s (--drain: all), counts the rest
    with tracer:
        if args.verbose:
            # probes are attached now: a script may start what it wants traced
            n = len(tracer.program.probes)  # after wildcards: one per event
            print(f"undertow trace: attached {n} probe{'s' if n != 1 else ''}", file=sys.stderr, flush=True)
        try:
            if args.json:
                event, lost = writer.event, writer.lost

                def write(batch: List[Any]) -> None:
                    for rec in batch:
                        if rec.__class__ is Event:
                            event(rec)
                        else:
                            lost(rec)
            else:
                # fixed-size events come as ready lines (no Event built), the rest as
                # Events; a batch is written at once
                tracer.render_lines(writer)
                write = writer.batch
            for batch in tracer.batches():
                write(batch)
                # one flush per read of the kernel buffers: prompt when events are rare,
                # one write per batch under load
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass  # a second Ctrl-C while --drain showed a long backlog
        finally:
            sys.stdout.flush()
    if not args.no_summary:
        # --count ends in the middle of a read: the stats count every event decoded
        read = tracer.stats.total_events
        shown = args.count if args.count is not None and read > args.count else None
        if args.json:
            writer.summary(tracer.stats, shown)
        else:
            sys.stderr.write(summary(tracer.stats, shown))
    return 0


def diagnostic_lines(warnings: "List[Any]", verbose: bool, who: str = "undertow trace") -> "List[str]":
    """The resolver's warnings and notes (``severity == "note"``: what undertow chose for
    the user, e.g. a compiler-made copy of a function) as stderr text: a warning with
    its place and caret; a note in one line (``verbose``: with its place and caret too)."""
    from ..errors import SourceError, render_caret

    out = []
    for w in warnings:
        kind = getattr(w, "severity", "warning")
        located = isinstance(w, SourceError) and w.span is not None and w.source
        if located and (kind != "note" or verbose):
            out.append(f"{who}: " + render_caret(w.source, w.span, f"{kind}: {w.message}", w.hints, w.origin))
        else:
            out.append(f"{who}: {kind}: {getattr(w, 'message', w)}")
    return out


def target_kernel(btf: "Optional[str]", arch: "Optional[str]") -> "Any":
    """The kernel the lines are for: with ``btf`` (``--btf FILE``) one whose types come from
    that file (raw BTF, or an ELF vmlinux's ``.BTF``; checked now, so a bad file is an error
    before anything runs) and that is not this machine's (kallsyms is not consulted); else
    None (the running kernel). Without ``btf``, an ``arch`` (``-a``) other than this
    machine's gets a warning: struct offsets come from this machine's BTF then."""
    from ..kernel import Kernel, Roots
    from ..kernel.arch import current_arch

    here = current_arch().name
    if not btf:
        if arch and arch != here:
            print(f"undertow trace: warning: -a {arch}: struct offsets and argument types come from this "
                  f"machine's BTF ({here}, /sys/kernel/btf/vmlinux), not the target's; give the target kernel's "
                  "BTF or vmlinux with --btf FILE", file=sys.stderr)
        return None
    import os

    from ..errors import OptionError

    if not os.path.isfile(btf):
        raise OptionError(f"argument --btf: {btf} is not a file",
                          hints=["give a BTF file (/sys/kernel/btf/vmlinux of the target) or a vmlinux with .BTF"])
    with open(btf, "rb") as f:
        head = f.read(20)
    if head[:4] == b"\x7fELF":
        from ..kernel.elffile import ELFFile

        elf_arch = ELFFile(btf).arch
        want = arch or here
        if elf_arch is not None and elf_arch != want:
            raise OptionError(f"argument --btf: {btf} is an {elf_arch} kernel, but the lines are for {want}",
                              hints=[f"add -a {elf_arch}" if not arch else "give the BTF of an " + want + " kernel"])
    kernel = Kernel(Roots.from_env().replace(btf=os.path.abspath(btf)))
    kernel.foreign = True
    from ..errors import BTFError

    try:
        kernel.btf()  # a file that is no BTF fails here, with its reason
    except BTFError as e:
        raise OptionError(f"argument --btf: {btf}: {e.message}", hints=e.hints) from None
    return kernel
