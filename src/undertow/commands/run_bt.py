"""``undertow run`` under the name ``bpftrace``: bpftrace 0.17's command-line conventions.

A link (or a small script) named ``bpftrace`` that runs ``undertow run`` — as the compat
harness makes one (tests/compat/bpftrace_suite.py), or a user who wants bpftrace's scripts
and wrappers to run unchanged — gets what bpftrace's own command line prints around the
program's output:

- a usage text headed ``USAGE:`` on stderr for ``-h`` (status 0) and for an unknown option
  or a missing argument (status 1), instead of argparse's ``usage:`` and status 2;
- errors as ``ERROR: message`` lines, and errors in the program as
  ``stdin:LINE:COL-END: ERROR: message``, the line, and ``~`` under the place;
- warnings as ``WARNING: ...`` lines.

The options, the program's output, the notices (``Attaching N probes...``,
``__BPFTRACE_NOTIFY_PROBES_ATTACHED``) are ``undertow run``'s whatever the name; only the
wording of usage, errors and warnings changes here. Nothing here is imported unless the
name is ``bpftrace``.
"""

from __future__ import annotations

import argparse
import os
import sys
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, List, NoReturn, Optional, Sequence, Tuple

from ..errors import SourceError, UndertowError, render_caret

__all__ = ["persona", "install", "render_error", "render_warning", "render_located", "USAGE"]

USAGE = """USAGE:
    bpftrace [options] filename
    bpftrace [options] - <stdin input>
    bpftrace [options] -e 'program'

(bpftrace here is undertow run: bpftrace 0.17's language on undertow's own BPF compiler)

OPTIONS:
    -B MODE        output buffering mode ('line', 'full', 'none'; accepted)
    -f FORMAT      output format ('text', 'json')
    -o file        redirect the program's output to file
    -e 'program'   execute this program
    -h, --help     show this help message
    -I DIR         add the directory to the include search path
    --include FILE add an #include file before preprocessing
    -l [search]    list probes
    -p PID         only this process (and its USDT probes and uprobes)
    -c 'CMD'       run CMD (split like a shell would, never run by one), set cpid, end with it
    --unsafe       allow unsafe builtin functions (system(), signal())
    -q             keep messages quiet
    --info         print what this kernel offers to BPF (and what undertow uses)
    -k             emit a warning when a bpf helper returns an error (except read functions)
    -kk            check all bpf helper functions
    -V, --version  the version
    --no-warnings  disable all warning messages

TROUBLESHOOTING OPTIONS:
    -v             verbose messages
    -d             (dry run) the BPF listings, nothing attached

ENVIRONMENT:
    BPFTRACE_STRLEN             [default: 64] bytes read by str()
    BPFTRACE_MAP_KEYS_MAX       [default: 4096] max keys in a map
    BPFTRACE_CAT_BYTES_MAX      [default: 10k] maximum bytes read by cat builtin

EXAMPLES:
bpftrace -l '*sleep*'
    list probes containing "sleep"
bpftrace -e 'tracepoint:syscalls:sys_enter_nanosleep { printf("PID %d sleeping...\\n", pid); }'
    trace processes calling sleep
bpftrace -e 'tracepoint:raw_syscalls:sys_enter { @[comm] = count(); }'
    count syscalls by process name
"""


def persona(argv0: Optional[str] = None) -> bool:
    """Whether this process was started under the name ``bpftrace``."""
    name = sys.argv[0] if argv0 is None else argv0
    return os.path.basename(name or "") == "bpftrace"


def usage() -> None:
    """bpftrace's usage text, on stderr as bpftrace prints it."""
    sys.stderr.write(USAGE)
    sys.stderr.flush()


def install(p: argparse.ArgumentParser) -> None:
    """Give the ``run`` parser bpftrace's reactions: ``-h`` prints :data:`USAGE` (status 0);
    an unknown option, a missing argument or anything left over prints it too (status 1);
    a bad option value is one ``ERROR:`` line (status 1)."""

    def print_help(file: Any = None) -> None:
        usage()

    def error(message: str) -> "NoReturn":
        # "argument -p: pid 'x' is not ..." is a value bpftrace checks itself: one line;
        # -f and -B values are checked by bpftrace too, in its own words;
        # anything else (unknown option, missing argument) is a usage error
        choice = _bad_choice(message)
        if choice is not None:
            sys.stderr.write(choice)
        elif message.startswith("argument ") and ": " in message and "expected" not in message \
                and "invalid choice" not in message:
            sys.stderr.write(f"ERROR: {message.split(': ', 1)[1]}\n")
        else:
            usage()
        sys.exit(1)

    orig = p.parse_known_args

    def parse_known_args(args: Optional[Sequence[str]] = None,
                         namespace: Optional[argparse.Namespace] = None) -> "Tuple[argparse.Namespace, List[str]]":
        ns, extra = orig(args, namespace)
        if extra:
            error(f"unrecognized arguments: {' '.join(extra)}")
        return ns, extra

    p.print_help = print_help  # type: ignore[method-assign]
    p.error = error  # type: ignore[method-assign]
    p.parse_known_args = parse_known_args  # type: ignore[method-assign]
    p.set_defaults(render_error=render_error, render_warning=render_warning, render_located=render_located)


def _bad_choice(message: str) -> Optional[str]:
    """bpftrace's words for argparse's ``argument -f: invalid choice: 'x' (choose from ...)``
    (for -f and -B, the options whose values bpftrace checks itself), or None."""
    head, sep, rest = message.partition(": invalid choice: ")
    if not sep or not head.startswith("argument "):
        return None
    value = rest.rsplit(" (choose from", 1)[0]
    if len(value) >= 2 and value[0] == value[-1] == "'":
        value = value[1:-1]
    option = head[len("argument "):].split("/", 1)[0]
    if option == "-f":
        return f'ERROR: Invalid output format "{value}"\nValid formats: \'text\', \'json\'\n'
    if option == "-B":
        return "ERROR: USAGE: -B must be either 'line', 'full', or 'none'.\n"
    return None


def _origin(origin: str) -> str:
    return "stdin" if origin in ("-e", "-", "<stdin>", "") else origin


def render_error(e: UndertowError) -> str:
    """``ERROR: message`` (and undertow's hints), or for a place in the program
    ``stdin:LINE:COL-END: ERROR: message``, the line, and ``~`` under the place; an error
    bpftrace words otherwise (``e.bpftrace_text``) as ``ERROR: text``."""
    if e.bpftrace_text is not None:  # bpftrace's own words for it, e.g. a banned kretprobe
        return f"ERROR: {e.bpftrace_text}"
    hints = [f"HINT: {h}" for h in e.hints]
    if isinstance(e, SourceError) and e.span is not None and e.source:
        return _located(e.source, e.span, f"ERROR: {e.message}", e.origin, hints)
    return "\n".join([f"ERROR: {e.message}", *hints])


def render_warning(line: str) -> str:
    """An ``undertow run: warning: ...`` line as bpftrace words it (``WARNING: ...``)."""
    for prefix in ("undertow run: warning: ", "warning: "):
        if line.startswith(prefix):
            return "WARNING: " + line[len(prefix):]
    return line


def render_located(source: str, span: Any, level: str, message: str, origin: str) -> str:
    """A warning (``level`` "warning") or error at a place of the program, as bpftrace
    prints it: ``stdin:1:22-34: WARNING: message``, the line, ``~`` under the place."""
    return _located(source, span, f"{level.upper()}: {message}", origin, [])


def _located(source: str, span: Any, headline: str, origin: str, hints: List[str]) -> str:
    caret = render_caret(source, span, headline, origin=_origin(origin)).split("\n")
    # render_caret: "origin:L:C: headline", "  line", "  ^~~" -> bpftrace's "origin:L:C-E: ...", "line", "~~~"
    first, shown, marks = caret[0], caret[1][2:], caret[2][2:].replace("^", "~")
    place, _, rest = first.partition(f": {headline}")
    width = max(1, len(marks.strip()))
    col = int(place.rsplit(":", 1)[1])
    return "\n".join([f"{place}-{col + width}: {headline}{rest}", shown, marks, *hints])
