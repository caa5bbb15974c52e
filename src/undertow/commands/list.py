"""``undertow list [-v] PATTERN``: what can be probed, bpftrace-style.

Probe specs: ``tracepoint:GROUP:EVENT`` (alias ``t:``), ``rawtracepoint:NAME``,
``kprobe:FUNC`` (alias ``k:``; also ``kretprobe:``, ``fentry:``/``kfunc:``),
``uprobe:PATH:SYMBOL`` (alias ``u:``), ``iter:NAME`` (alias ``it:``), and ``struct NAME`` /
``union NAME`` / ``enum NAME`` for type layouts. ``*`` and ``?`` are wildcards. A bare pattern
without a kind searches tracepoints and kernel functions.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, TextIO, Tuple

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
    "it": "iter", "iter": "iter",
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
    p.add_argument("pattern", nargs="?", default="*", help="probe spec or 'struct NAME' (default: *, every tracepoint, and every kernel "
                        "function as kprobe: when this kernel has kprobes)")
    # `-v` (the common --verbose) means "show details" here, as in bpftrace's `-lv`.
    p.set_defaults(func=run, attaches=False)  # creates nothing: SIGINT/SIGTERM end it at once (cli.main)
    return p


def run(args: argparse.Namespace) -> int:
    verbose = bool(args.verbose)
    kernel = Kernel()
    out = sys.stdout
    # `run -l` lists as bpftrace -l does (every function, whatever the kernel can attach)
    n = list_pattern(kernel, args.pattern, verbose, out, pid=getattr(args, "pid", None),
                     attachable=not getattr(args, "bpftrace_listing", False))
    if n == 0:
        raise UndertowError(f"nothing matches {args.pattern!r}",
                            hints=[PATTERN_HINT])
    return 0


#: What a listing pattern looks like (the hint of an error).
PATTERN_HINT = ("patterns look like tracepoint:GROUP:EVENT, kprobe:FUNC, uprobe:PATH:SYMBOL, "
                "usdt:PATH:[PROVIDER:]NAME, software:EVENT, iter:NAME or 'struct NAME'; * and ? are wildcards")

#: Characters a listing pattern may hold (names, paths, wildcards, 'struct NAME').
_PATTERN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.*?:/+@$[]!,~ ")


def check_pattern(pattern: str) -> None:
    """A listing pattern holds only names, paths and wildcards (bpftrace's wording otherwise)."""
    for ch in pattern:
        if ch not in _PATTERN_CHARS:
            shown = ch if ch.isprintable() else f"\\x{ord(ch) & 0xFF:02x}"
            raise UsageError(f"invalid character '{shown}' in {pattern!r}",
                             hints=[PATTERN_HINT])


def wildcard_kinds(head: str) -> List[str]:
    """The probe kinds a wildcarded kind names (``*ware`` -> hardware, software)."""
    names = [k for k in KIND_ALIASES if len(k) > 2] + ["software", "hardware"]
    return list(dict.fromkeys(KIND_ALIASES.get(k, k) for k in names if fnmatch.fnmatchcase(k, head)))


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
        if head in ("software", "s", "hardware", "h"):
            return ("software" if head[0] == "s" else "hardware"), rest
        if head and not head.startswith("/") and "*" not in head and "?" not in head:
            raise UsageError(f"unknown probe kind {head!r} in {pattern!r}",
                             hints=["kinds: tracepoint (t), rawtracepoint, kprobe (k), kretprobe, "
                                    "fentry (kfunc), fexit, uprobe (u), uretprobe, usdt (U), software (s), "
                                    "hardware (h), iter (it); or 'struct NAME'"])
    return None, p


def list_pattern(kernel: Kernel, pattern: str, verbose: bool, out: TextIO, pid: Optional[int] = None,
                 attachable: bool = False) -> int:
    """Print every probe or type matching ``pattern``; return how many. With ``pid``, the
    uprobes are those of the process's executable and libraries (as bpftrace's ``-l -p``).
    ``attachable`` (``undertow list``): a bare pattern leaves out the kinds this kernel cannot
    attach and an explicit kind it cannot attach is marked, both said on stderr."""
    check_pattern(pattern)
    if pid:
        kind, rest = split_spec(pattern)
        if kind == "usdt":
            from .list_user import list_usdt

            return list_usdt(rest, pid, out)
        if kind is None:  # `-l -p PID`, `-l -p PID '*'`: every function and USDT marker of the process
            from .list_user import list_usdt

            n = _list_uprobes("uprobe", f"*:{rest or '*'}", out, pid=pid, verbose=verbose)
            return n + list_usdt(rest or "*", pid, out)
        if kind not in ("uprobe", "uretprobe"):
            return list_pattern(kernel, pattern, verbose, out, attachable=attachable)
        return _list_uprobes(kind, rest if ":" in rest else f"*:{rest}", out, pid=pid, verbose=verbose)
    head, sep, tail = pattern.strip().partition(":")
    if sep and head and ("*" in head or "?" in head) and not head.startswith("/"):
        n = 0
        for k in wildcard_kinds(head):  # each kind that matches, quietly (a path is no tracepoint)
            try:
                n += _list_kind(kernel, k, tail, verbose, out, attachable)
            except UndertowError:
                continue
        return n
    kind, rest = split_spec(pattern)
    if kind in TYPE_KINDS:
        return _list_types(kernel, kind, rest, out, verbose)
    # bpftrace 0.17 names BTF function probes kfunc:/kretfunc: (fentry/fexit since 0.19):
    # a listing answers in the user's own word
    label = head if head in ("kfunc", "kretfunc") else None
    return _list_kind(kernel, kind, rest, verbose, out, attachable, label)


def _list_kind(kernel: Kernel, kind: Optional[str], rest: str, verbose: bool, out: TextIO,
               attachable: bool = False, label: Optional[str] = None) -> int:
    if kind in ("software", "hardware"):
        return _list_perf_events(kind, rest, out)
    if kind == "iter":
        return _list_iterators(kernel, rest, verbose, out, attachable)
    n = 0
    if kind in (None, "tracepoint"):
        n += _list_tracepoints(kernel, rest if kind else _bare_tp(rest), verbose, out, quiet=kind is None)
    if kind in ("rawtracepoint",):
        n += _list_raw_tracepoints(kernel, rest, out)
    if kind in (None, "kprobe", "kretprobe", "fentry", "fexit"):
        why = unavailable_kind(kernel, kind or "kprobe") if attachable else None
        if kind is None and why is not None:
            # a bare pattern lists what this kernel can attach: functions only with kprobes
            print(f"undertow list: kernel functions (kprobe:) left out, this kernel cannot attach them: {why}; "
                  "'undertow list kprobe:PATTERN' lists them anyway", file=sys.stderr)
        else:
            n += _list_functions(kernel, kind or "kprobe", rest, verbose, out, quiet=kind is None,
                                 label=label)
            if kind is not None and why is not None:
                print(f"undertow list: these {kind}: points cannot be attached on this kernel: {why}",
                      file=sys.stderr)
    if kind in ("uprobe", "uretprobe"):
        n += _list_uprobes(kind, rest, out, verbose=verbose)
    if kind == "usdt":
        from .list_user import list_usdt

        n += list_usdt(rest, None, out)
    return n


#: probe kind -> the feature probe (kernel/featprobes) that says whether it attaches here
_KIND_FEATURES = {"kprobe": "kprobe_events", "kretprobe": "kprobe_events", "fentry": "bpf_fentry",
                  "fexit": "bpf_fexit"}


def unavailable_kind(kernel: Kernel, kind: str) -> Optional[str]:
    """Why probes of ``kind`` cannot attach on this kernel (the feature probe's reason), or
    None when they can or nobody knows (the feature probes could not run)."""
    feature = _KIND_FEATURES.get(kind)
    if feature is None:
        return None
    try:
        f = kernel.features().get(feature)
    except (UndertowError, OSError):
        return None
    if f is None or f.available is not False:
        return None
    return f.reason or f"no {feature}"


def _list_perf_events(kind: str, pat: str, out: TextIO) -> int:
    """``software:EVENT:`` / ``hardware:EVENT:``: perf's events by their canonical names."""
    from ..lang.bt.probes import HARDWARE_EVENTS, SOFTWARE_EVENTS

    table = SOFTWARE_EVENTS if kind == "software" else HARDWARE_EVENTS
    pat = pat.split(":", 1)[0] or "*"
    n = 0
    for name in sorted(set(table.values())):
        if fnmatch.fnmatchcase(name, pat):
            out.write(f"{kind}:{name}:\n")
            n += 1
    return n


def _list_iterators(kernel: Kernel, pat: str, verbose: bool, out: TextIO, attachable: bool) -> int:
    """``iter:NAME``: the iterators bpftrace 0.17 knows (whatever the kernel has, as it lists
    them), with ``-v`` the members of their context; ``attachable`` (``undertow list``): the
    ones this kernel lacks are said on stderr."""
    from ..lang.bt.probes import ITERATORS
    from ..lang.iterators import ITER_FEATURES

    n = 0
    for name, members in ITERATORS.items():
        if not fnmatch.fnmatchcase(name, pat.split(":", 1)[0] or "*"):
            continue
        out.write(f"iter:{name}\n")
        if verbose:
            out.write("".join(f"    {m}\n" for m in members))
        n += 1
        if attachable:
            try:
                f = kernel.features().get(ITER_FEATURES[name])
            except (UndertowError, OSError):
                f = None
            if f is not None and f.available is False:
                print(f"undertow list: iter:{name} cannot run on this kernel: {f.reason}", file=sys.stderr)
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


def _list_functions(kernel: Kernel, kind: str, pat: str, verbose: bool, out: TextIO, quiet: bool,
                    label: Optional[str] = None) -> int:
    """Print ``LABEL:FUNCTION`` (``LABEL`` defaults to ``kind``) for each kernel function
    matching ``pat``; with ``verbose`` its arguments from BTF."""
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
    func_ids: Optional[Dict[str, int]] = None
    if verbose and len(matched) > 100:
        try:  # one pass over BTF instead of one search per function
            func_ids = kernel.btf().ids_by_name("func")
        except UndertowError:
            func_ids = None
    for name in matched:
        out.write(f"{label or kind}:{name}\n")
        if verbose:
            for line in _func_args(kernel, name, kind, func_ids):
                out.write(f"    {line}\n")
    return len(matched)


def _func_args(kernel: Kernel, name: str, kind: str, func_ids: Optional[Dict[str, int]] = None) -> List[str]:
    try:
        btf = kernel.btf()
        if func_ids is not None and name in func_ids:
            sig = btf.func_proto_by_id(func_ids[name])
        else:
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


def _list_uprobes(kind: str, rest: str, out: TextIO, pid: Optional[int] = None, verbose: bool = False) -> int:
    """``uprobe:FILE:PATTERN``; ``verbose`` (``-lv``): each function's parameters from the
    file's DWARF under it (``    int* n``), as bpftrace prints them."""
    from ..kernel.elffile import ELFFile
    from ..kernel.libraries import resolve_object

    if ":" in rest:
        obj, pat = rest.rsplit(":", 1)
    else:
        obj, pat = rest, "*"
    n = 0
    objects = _process_objects(pid, obj) if pid else [(o, None) for o in _objects(obj)]
    for shown, inside in objects:
        # a path stays as the user wrote it (relative stays relative, as bpftrace lists it);
        # a command or library name becomes the file it names; a process's files are named
        # as the process sees them (its mount namespace), read through /proc/PID/root
        try:
            path = inside or resolve_object(shown)
            elf = ELFFile(path)
            syms = elf.symbols()
        except UndertowError:
            if pid:
                continue
            raise
        names = sorted({s.name for s in syms if s.defined and s.type == "FUNC" and s.name})
        where = shown if "/" in shown else path
        for name in names:
            if fnmatch.fnmatchcase(name, pat):
                out.write(f"{kind}:{where}:{name}\n")
                n += 1
                if verbose:
                    from ..lang.dwarftypes import param_lines

                    for line in param_lines(path, name):
                        out.write(f"    {line}\n")
    return n


def _process_objects(pid: int, obj: str) -> List[Tuple[str, Optional[str]]]:
    """``[(path as process PID sees it, path to read it here)]`` of its executable and
    the libraries it maps executable, those matching ``obj`` (a wildcard; ``*``: all)."""
    seen: List[Tuple[str, Optional[str]]] = []
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UndertowError(f"cannot read the mappings of process {pid}: {e.strerror}") from None
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith("/"):
            continue
        path = parts[5]
        if path.endswith(" (deleted)") or any(p == path for p, _ in seen):
            continue
        if fnmatch.fnmatchcase(path, obj) or fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], obj):
            seen.append((path, f"/proc/{pid}/root{path}"))
    return seen


def _objects(obj: str) -> List[str]:
    """The files a uprobe's object part names: itself, or what its wildcards match (ELF
    files only, sorted); a name without ``/`` is left for :func:`resolve_object`."""
    if "/" not in obj or not any(c in obj for c in "*?["):
        return [obj]
    import glob
    import os

    found = []
    for p in sorted(glob.glob(obj)):
        try:
            with open(p, "rb") as f:
                if os.path.isfile(p) and f.read(4) == b"\x7fELF":
                    found.append(p)
        except OSError:
            continue
    return found


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
