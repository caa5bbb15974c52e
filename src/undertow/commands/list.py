"""``undertow list [-v] PATTERN``: what can be probed, bpftrace-style.

Probe specs: ``tracepoint:GROUP:EVENT`` (alias ``t:``), ``rawtracepoint:NAME``,
``kprobe:FUNC`` (alias ``k:``; also ``kretprobe:``, ``fentry:``/``kfunc:``),
``uprobe:PATH:SYMBOL`` (alias ``u:``), and ``struct NAME`` / ``union NAME`` /
``enum NAME`` for type layouts. ``*`` and ``?`` are wildcards. A bare pattern
without a kind searches tracepoints and kernel functions.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import List, Optional, TextIO, Tuple

from ..errors import UndertowError, UsageError
from ..kernel import Kernel

KIND_ALIASES = {
    "t": "tracepoint", "tracepoint": "tracepoint",
    "rawtracepoint": "rawtracepoint", "rt": "rawtracepoint",
    "k": "kprobe", "kprobe": "kprobe",
    "kr": "kretprobe", "kretprobe": "kretprobe",
    "f": "fentry", "fentry": "fentry", "kfunc": "fentry",
    "fr": "fexit", "fexit": "fexit", "kretfunc": "fexit",
    "u": "uprobe", "uprobe": "uprobe", "ur": "uretprobe", "uretprobe": "uretprobe",
    "U": "usdt", "usdt": "usdt",
}
TYPE_KINDS = ("struct", "union", "enum")


def register(sub: "argparse._SubParsersAction", common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "list",
        parents=[common],
        help="list probes (tracepoints, kernel functions, uprobe symbols) and kernel types",
        description="List what can be probed, bpftrace-style. Wildcards: * and ?.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  undertow list 'tracepoint:syscalls:sys_enter_open*'\n"
        "  undertow list -v tracepoint:sched:sched_process_exec   # fields with types\n"
        "  undertow list -v 'kprobe:tcp_connect'                  # arguments from BTF\n"
        "  undertow list -v 'struct task_struct'                  # members, offsets, sizes\n"
        "  undertow list 'uprobe:libc:getaddr*'                   # symbols of a library\n"
        "  undertow list '*openat*'                               # tracepoints and functions",
    )
    p.add_argument("pattern", nargs="?", default="*", help="probe spec or 'struct NAME' (default: every tracepoint)")
    # `-v` (the common --verbose) means "show details" here, as in bpftrace's `-lv`.
    p.set_defaults(func=run, attaches=False)  # creates nothing: SIGINT/SIGTERM end it at once (cli.main)
    return p


def run(args: argparse.Namespace) -> int:
    verbose = bool(args.verbose)
    kernel = Kernel()
    out = sys.stdout
    n = list_pattern(kernel, args.pattern, verbose, out, pid=getattr(args, "pid", None))
    if n == 0:
        raise UndertowError(f"nothing matches {args.pattern!r}",
                            hints=["patterns look like tracepoint:GROUP:EVENT, kprobe:FUNC, "
                                   "uprobe:PATH:SYMBOL or 'struct NAME'; * and ? are wildcards"])
    return 0


def split_spec(pattern: str) -> Tuple[Optional[str], str]:
    """``(kind, rest)``; ``kind`` is None for a bare pattern, or a TYPE_KINDS word."""
    p = pattern.strip()
    first = p.split(None, 1)
    if len(first) == 2 and first[0] in TYPE_KINDS:
        return first[0], first[1].strip()
    if ":" in p:
        head, rest = p.split(":", 1)
        if head in KIND_ALIASES:
            return KIND_ALIASES[head], rest
        if head and not head.startswith("/") and "*" not in head and "?" not in head:
            raise UsageError(f"unknown probe kind {head!r} in {pattern!r}",
                             hints=["kinds: tracepoint (t), rawtracepoint, kprobe (k), kretprobe, "
                                    "fentry (kfunc), fexit, uprobe (u), uretprobe; or 'struct NAME'"])
    return None, p


def list_pattern(kernel: Kernel, pattern: str, verbose: bool, out: TextIO, pid: Optional[int] = None) -> int:
    """Print every probe or type matching ``pattern``; return how many. ``pid``: the
    process whose user-space probes are listed too (``-l -p PID``)."""
    kind, rest = split_spec(pattern)
    if kind in TYPE_KINDS:
        return _list_types(kernel, kind, rest, out, verbose)
    n = 0
    if kind in (None, "tracepoint"):
        n += _list_tracepoints(kernel, rest if kind else _bare_tp(rest), verbose, out, quiet=kind is None)
    if kind in ("rawtracepoint",):
        n += _list_raw_tracepoints(kernel, rest, out)
    if kind in (None, "kprobe", "kretprobe", "fentry", "fexit"):
        n += _list_functions(kernel, kind or "kprobe", rest, verbose, out, quiet=kind is None)
    if kind in ("uprobe", "uretprobe", "usdt"):
        from .list_user import list_user

        n += list_user(kind, rest, pid, out, verbose)
    if kind is None:
        from .list_user import list_user_wildcard

        n += list_user_wildcard(rest, pid, out)
    return n


def _bare_tp(pat: str) -> str:
    return pat if ":" in pat or "/" in pat else f"*:{pat}"


def _list_tracepoints(kernel: Kernel, pat: str, verbose: bool, out: TextIO, quiet: bool) -> int:
    try:
        tfs = kernel.tracefs()
    except UndertowError:
        if quiet:
            return 0
        raise
    pat = pat.replace("/", ":")
    if ":" not in pat:
        pat = f"{pat}:*"
    n = 0
    for group, event in tfs.events(pat):
        out.write(f"tracepoint:{group}:{event}\n")
        n += 1
        if verbose:
            try:
                fmt = tfs.event_format(group, event)
            except UndertowError as e:
                out.write(f"    (format unreadable: {e.message})\n")
                continue
            for f in fmt.fields:
                if f.is_common:
                    continue
                out.write(f"    {_field_decl(f)}\n")
    return n


def _field_decl(f) -> str:  # type: ignore[no-untyped-def]
    """The field as the format file declares it (``char comm[16]``, ``__data_loc char[] filename``)."""
    if getattr(f, "decl", ""):
        return f.decl
    return _decl(f.type.strip(), f.name)


def _list_raw_tracepoints(kernel: Kernel, pat: str, out: TextIO) -> int:
    """Raw tracepoints: BTF typedefs ``btf_trace_<name>``."""
    btf = kernel.btf()
    n = 0
    for name in sorted(btf.names("typedef")):
        if name.startswith("btf_trace_") and fnmatch.fnmatchcase(name[10:], pat):
            out.write(f"rawtracepoint:{name[10:]}\n")
            n += 1
    return n


def _kernel_functions(kernel: Kernel) -> Tuple[List[str], str]:
    """Traceable kernel function names and where they came from.

    ``available_filter_functions`` lists what ftrace can attach to; it is
    unreadable on some kernels (EPERM here under lockdown), then BTF FUNC
    entries are the best approximation (they include functions that are
    inlined or notrace, hence the note).
    """
    try:
        text = kernel.tracefs().read("available_filter_functions")
        names = sorted({line.split()[0] for line in text.splitlines() if line.strip()})
        if names:
            return names, "available_filter_functions"
    except (UndertowError, OSError):
        pass
    btf = kernel.btf()
    return sorted(set(btf.names("func"))), "BTF"


def _list_functions(kernel: Kernel, kind: str, pat: str, verbose: bool, out: TextIO, quiet: bool) -> int:
    try:
        names, source = _kernel_functions(kernel)
    except UndertowError:
        if quiet:
            return 0
        raise
    matched = [n for n in names if fnmatch.fnmatchcase(n, pat)]
    if matched and source == "BTF" and not quiet:
        print("undertow list: available_filter_functions is not readable; listing BTF functions "
              "(some may be inlined or not traceable)", file=sys.stderr)
    for name in matched:
        out.write(f"{kind}:{name}\n")
        if verbose:
            for line in _func_args(kernel, name, kind):
                out.write(f"    {line}\n")
    return len(matched)


def _func_args(kernel: Kernel, name: str, kind: str) -> List[str]:
    try:
        btf = kernel.btf()
        sig = btf.func_proto(name)
    except UndertowError as e:
        return [f"(no BTF prototype: {e.message})"]
    lines = []
    for pname, ptype in sig.params:
        lines.append(_decl(btf.type_str(ptype), pname or "?"))
    if kind in ("kretprobe", "fexit"):
        lines.append(_decl(btf.type_str(sig.ret), "retval"))
    return lines


def _decl(type_text: str, name: str) -> str:
    """C declaration of ``name`` with ``type_text``: ``char comm[16]``, ``struct sock *sk``."""
    import re

    m = re.match(r"^(.*?)((?:\[\d*\])+)$", type_text)
    if m:
        base, dims = m.group(1), m.group(2)
        sep = "" if base.endswith("*") else " "
        return f"{base}{sep}{name}{dims}"
    sep = "" if type_text.endswith("*") else " "
    return f"{type_text}{sep}{name}"


def _list_uprobes(kind: str, rest: str, out: TextIO) -> int:
    from ..kernel.elffile import ELFFile
    from ..kernel.libraries import resolve_object

    if ":" in rest:
        obj, pat = rest.rsplit(":", 1)
    else:
        obj, pat = rest, "*"
    path = resolve_object(obj)
    elf = ELFFile(path)
    names = sorted({s.name for s in elf.symbols() if s.defined and s.type == "FUNC" and s.name})
    n = 0
    for name in names:
        if fnmatch.fnmatchcase(name, pat):
            out.write(f"{kind}:{path}:{name}\n")
            n += 1
    return n


def _list_types(kernel: Kernel, kind: str, pat: str, out: TextIO, verbose: bool) -> int:
    btf = kernel.btf()
    if not any(c in pat for c in "*?["):
        t = btf.find(pat, kind)
        _print_type(btf, kind, pat, t, out)
        return 1
    n = 0
    for name in sorted(set(btf.names(kind))):
        if fnmatch.fnmatchcase(name, pat):
            if verbose:
                _print_type(btf, kind, name, btf.find(name, kind), out)
            else:
                out.write(f"{kind} {name}\n")
            n += 1
    return n


def _print_type(btf, kind: str, name: str, t, out: TextIO) -> None:  # type: ignore[no-untyped-def]
    if kind == "enum":
        out.write(f"enum {name} {{\n")
        for k, v in btf.enum_values(t).items():
            out.write(f"    {k} = {v},\n")
        out.write("};\n")
        return
    size = btf.sizeof(t)
    out.write(f"{kind} {name} {{{' ' * 1}/* size {size} */\n")
    rows = []
    for m in btf.members(t):
        decl = _decl(btf.type_str(m.type), m.name) if m.name else btf.type_str(m.type)
        bits = getattr(m, "bitfield_size", 0) or 0
        if bits:
            decl += f":{bits}"
            where = f"/* {m.bit_offset // 8:5d}:{m.bit_offset % 8:<2d} {bits:>3d} bits */"
        else:
            msize = _safe_sizeof(btf, m.type)
            where = f"/* {m.bit_offset // 8:5d} {msize:5d} */"
        rows.append((decl + ";", where, getattr(m, "depth", 0)))
    width = min(60, max((len(r[0]) + 4 * r[2] for r in rows), default=0))
    for decl, where, depth in rows:
        text = "    " * (depth + 1) + decl
        out.write(f"{text:<{width + 4}} {where}\n")
    out.write("};\n")


def _safe_sizeof(btf, t) -> int:  # type: ignore[no-untyped-def]
    try:
        return int(btf.sizeof(t))
    except UndertowError:
        return 0
