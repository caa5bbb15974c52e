"""The ``undertow`` command.

Each subcommand lives in ``undertow/commands/<name>.py`` and provides
``register(subparsers, common) -> argparse.ArgumentParser`` (which must call
``set_defaults(func=run)``) and ``run(args) -> int``. This module only wires
them together and turns :class:`~undertow.errors.UndertowError` into one clear
message with hints (a traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    import contextlib
    from typing import List, Optional, Sequence

from .errors import UndertowError
from .version import __version__

# Subcommand modules, in the order `undertow --help` lists them. A module that
# does not exist yet is skipped, so commands can land one by one.
COMMANDS: List[str] = [
    "doctor",
    "list",
    "trace",
    "run",
    "cleanup",
    "dns",
    "icmp",
    "arp",
    "filewatch",
    "inbound",
    "connect",
    "exec",
    "exit",
    "modules",
    "ssl",
    "rootkit",
    "collect",
]


_COLUMNS: Optional[int] = None


def _help_width() -> int:
    """What ``shutil.get_terminal_size().columns - 2`` gives argparse, computed once: argparse
    makes a formatter per argument it adds, and each imports :mod:`shutil` (for this alone:
    it brings bz2, lzma and fnmatch) and asks the terminal again.

    Kept for a measured gain (issue 15, 2026-12-07, venv install, alternating runs): without
    it `undertow run --no-cache -d` of the 5-tracepoint script took 58.9 ms of CPU instead of
    55.3 (median of 15), `undertow trace -S` 49.0 instead of 45.8, and the parser alone
    (import, build, parse) 13.5 ms instead of 11.4 (median of 40): ~2-3.5 ms of a one-liner's
    ~40 ms start, on top of the ~5 ms that typing and argparse's gettext now cost.
    """
    global _COLUMNS
    if _COLUMNS is None:
        try:
            cols = int(os.environ["COLUMNS"])
        except (KeyError, ValueError):
            cols = 0
        if cols <= 0:
            try:
                cols = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
            except (AttributeError, ValueError, OSError):
                cols = 80
        _COLUMNS = cols
    return _COLUMNS - 2


class _Parser(argparse.ArgumentParser):
    """argparse's parser (subcommand parsers too) with the terminal width asked once."""

    def _get_formatter(self) -> argparse.HelpFormatter:
        return self.formatter_class(prog=self.prog, width=_help_width())  # type: ignore[call-arg]


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand accepts (after the subcommand name too)."""
    p = _Parser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks and internal logs (verifier log, listings)")
    g.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="say which kernel mechanisms were chosen and why")
    return p


def _command_of(argv: Optional[Sequence[str]]) -> Optional[str]:
    """The subcommand ``argv`` names, when it comes before any help request."""
    for a in sys.argv[1:] if argv is None else argv:
        if a in ("--debug", "--verbose", "-v") or (a.startswith("-v") and set(a[1:]) == {"v"}):
            continue
        return a if a in COMMANDS else None
    return None


def build_parser(argv: Optional[Sequence[str]] = None, *, lazy: bool = False) -> argparse.ArgumentParser:
    """The whole parser; with ``lazy``, only the subcommand ``argv`` names is imported and
    registered (the others are left out: a parser per command costs ~0.3 ms, and
    importing every command module and its dependencies ~30 ms of a one-liner's start)."""
    wanted = _command_of(argv) if lazy else None
    common = common_options()
    parser = _Parser(
        prog="undertow",
        description="Ask the running Linux kernel what is happening right now: "
        "tracepoints, uprobes, kprobes and BPF from pure Python.",
        epilog="Run 'undertow doctor' first to see what this kernel offers.",
    )
    parser.add_argument("--version", action="version", version=f"undertow {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and internal logs")
    parser.add_argument("--verbose", action="count", default=0,
                        help="say which kernel mechanisms were chosen and why")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if wanted is not None and name != wanted:
            continue  # argv names its command: the others cannot be parsed or listed here
        try:
            mod = importlib.import_module(f"undertow.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"undertow.commands.{name}":
                continue
            raise
        mod.register(sub, common)
    return parser


def report_cleanup(removed: List[str]) -> None:
    """What a session's start removed of killed sessions (SIGKILL leaves state behind):
    one line on stderr, whatever the verbosity (backends.leftovers_reporter)."""
    print("undertow: removed leftovers of a killed session: " + ", ".join(removed), file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``undertow`` command: parse ``argv``, run the command, turn errors into messages.

    Until the command runs inside :func:`undertow.stop.handling`, SIGINT has its default
    action (end the process, silently): Python's own handler would print a
    KeyboardInterrupt traceback from whatever import or parsing step it lands in, and
    nothing has been created yet that would need removing.
    """
    import signal

    try:
        old = signal.signal(signal.SIGINT, signal.SIG_DFL)
    except ValueError:  # not the main thread (a library user's): signals are not ours to set
        return _main(argv)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGINT, old)


def _main(argv: Optional[Sequence[str]] = None) -> int:
    from . import backends  # the package alone: a docstring and the hook

    backends.leftovers_reporter = report_cleanup
    parser = build_parser(argv, lazy=True)
    args = parser.parse_args(argv)
    args.debug = bool(getattr(args, "debug", False))
    args.verbose = int(getattr(args, "verbose", 0) or 0)
    if os.environ.get("UNDERTOW_DEBUG"):
        args.debug = True
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    from . import stop

    if args.verbose:  # a cache refused (someone else's, writable by others): said once, when met
        from .kernel import cache

        cache.set_reporter(lambda why: print(f"undertow {args.command}: {why}", file=sys.stderr))
    from .output.values import safe_stream

    safe_stream(sys.stdout)  # undecodable bytes of the user's input never raise at print time
    try:
        # SIGINT/SIGTERM/SIGHUP become a stop request (undertow/stop.py): set-up steps and
        # read loops end cleanly, whatever moment the signal lands, and a run started with
        # SIGINT ignored (`cmd &` in a script) still stops on it
        attaches = getattr(args, "attaches", True)
        if not (attaches(args) if callable(attaches) else attaches):
            # list, doctor: nothing to remove, so SIGINT keeps its default action (end now,
            # quietly: set in main) rather than a flag a long listing would not look at
            return int(func(args) or 0)
        with stop.handling(), _outputs(args):
            return int(func(args) or 0)
    except stop.Interrupted as e:
        # asked to stop before anything was traced: quiet, nothing left behind
        if args.verbose:
            print(f"undertow {args.command}: {e.message}", file=sys.stderr)
        return 128 + e.signum
    except UndertowError as e:
        if args.debug:
            import traceback

            traceback.print_exc()
            # a verifier rejection: the whole log and the program's listing (docs/bpf.md)
            for what in ("listing", "log"):
                text = getattr(e, what, "")
                if text:
                    print(f"--- {what} ---\n{text.rstrip()}", file=sys.stderr)
        render = getattr(args, "render_error", None)  # a command's own wording (run as bpftrace)
        print(render(e) if render else f"undertow {args.command}: " + e.render(), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): exit quietly, as coreutils do.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    finally:
        if args.verbose:
            from .kernel import cache

            cache.set_reporter(None)


def _outputs(args: argparse.Namespace) -> "contextlib.AbstractContextManager[None]":
    """``--output URL``: the command's JSON events fanned out to the sinks (undertow.fleet.sinks),
    for every command that emits events; nothing is imported without it."""
    if not getattr(args, "outputs", None):
        import contextlib

        return contextlib.nullcontext()
    from .fleet.sinks import outputs

    return outputs(args, f"undertow {args.command}")


def entry() -> None:  # pragma: no cover - console-script shim
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
