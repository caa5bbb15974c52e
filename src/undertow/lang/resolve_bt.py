"""Resolve programs written in the bpftrace language (``lang/bt/``).

The shared base (:mod:`undertow.lang.typeinfo`, :mod:`undertow.lang.attach`,
:mod:`undertow.lang.resolve_expr`) knows kernel types, tracepoint formats, uprobe
offsets and the type check of members, casts and indexes; bpftrace programs add
scratch variables, maps, control flow, many builtins and functions, and
bpftrace's own typing rules:

- ``argN`` on kprobe/uprobe/rawtracepoint is a raw ``u64`` (cast it to use
  members: ``((struct file *)arg0)->f_pos``); ``args.NAME`` on kfunc/fentry and
  tracepoints is typed from BTF or the format file;
- ``retval`` is a signed 64-bit value at kretprobe/uretprobe, the BTF return
  type at kretfunc;
- ``probe`` and ``func`` are known per attach point and become string constants;
- a map has one key signature and one value type across the whole program;
  ``@m[k] = count()`` etc. read as integers; a ``hist``/``lhist``/``stats``
  map cannot be read as a value.

Every probe block with several attach points (or a wildcard) becomes one
:class:`ir.Probe` per attach point, each with its own copy of the actions.
"""

from __future__ import annotations

import fnmatch
import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import AttachUnavailableError, ResolveError, SourceError, Span, TypeCheckError, UndertowError, did_you_mean
from . import ir
from .attach import check_kprobes
from .iterators import ITER_FEATURES, check_iter_probe, context_type, iter_member
from .resolve_expr import ExprResolver, show
from .watchpoints import WATCH_SETUP_CALL, setup_probe, watch_name, watch_target
from .typeinfo import DeclTypes, FuncSig, LayeredTypes, TypeInfo
from .types import (
    align_of, COMM, INET, S64, U8, U16, U32, U64, ArrayTy, BufTy, EnumTy, IntTy, OpaqueTy, PtrTy, RecordTy, StackTy,
    StrTy, TupleTy, Ty, VoidTy,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..kernel import Kernel
    from ..kernel.arch import Arch

__all__ = ["BtResolver", "bt_resolver", "bt_probe_name", "SCALAR_AGGS", "script_types"]

#: The largest whole struct a variable, map key or value, tuple or print() holds (its bytes
#: go through the 512-byte BPF stack).
MAX_HELD = 256

#: Aggregations whose map reads as a 64-bit integer.
SCALAR_AGGS = ("count", "sum", "min", "max", "avg")

_TYPE_PREFIX = {"tracepoint": "tracepoint", "raw_tracepoint": "rawtracepoint", "tp_btf": "tp_btf", "kprobe": "kprobe",
                "kretprobe": "kretprobe", "fentry": "kfunc", "fexit": "kretfunc", "uprobe": "uprobe",
                "uretprobe": "uretprobe", "usdt": "usdt", "profile": "profile", "interval": "interval",
                "software": "software", "hardware": "hardware"}


def bt_probe_name(ap: ir.AttachPoint) -> str:
    """The name bpftrace prints for one attach point (``probe`` builtin)."""
    if ap.kind == "begin":
        return "BEGIN"
    if ap.kind == "end":
        return "END"
    if ap.kind == "watchpoint":
        return watch_name(ap)
    prefix = _TYPE_PREFIX.get(ap.kind, ap.kind)
    if ap.kind == "usdt":
        t = f"{ap.obj or ap.path}:{ap.target}"  # the file as written (or as -p found it)
    elif ap.kind in ("uprobe", "uretprobe"):
        t = f"{ap.path or ap.obj}:{ap.target}"
    else:
        t = ap.target
    if ap.offset and ap.kind in ("kprobe", "uprobe"):
        t += f"+{ap.offset}"
    return f"{prefix}:{t}"

_BUILTIN_TYPES: Dict[str, Ty] = {
    "pid": U32, "tid": U32, "uid": U32, "gid": U32, "cpu": U32, "numaid": U32, "rand": U32,
    "nsecs": U64, "elapsed": U64, "cgroup": U64, "jiffies": U64, "cpid": U32, "comm": COMM,
    "kstack": StackTy("kernel"), "ustack": StackTy("user"), "username": OpaqueTy("username", 8),
    "ctx": U64,
}

#: attach kinds whose wildcards can share one multi link, and the feature that says so
_MULTI_FEATURE = {"uprobe": "bpf_uprobe_multi", "uretprobe": "bpf_uprobe_multi",
                  "kprobe": "bpf_kprobe_multi", "kretprobe": "bpf_kprobe_multi"}


def _walk_actions(actions: List[ir.Action]) -> Iterator[ir.Action]:
    for a in actions:
        yield a
        if isinstance(a, ir.If):
            yield from _walk_actions(a.then)
            yield from _walk_actions(a.other)
        elif isinstance(a, ir.While):
            yield from _walk_actions(a.body)


def _walk_probe(probe: ir.Probe) -> Iterator[ir.Expr]:
    """Every expression of a probe: its filter and its actions', nested ones included."""
    if probe.filter is not None:
        yield from probe.filter.walk()
    for a in _walk_actions(probe.actions):
        for e in a.exprs():
            yield from e.walk()


def _deepcopy(x: Any) -> Any:
    return ir.clone(x)


def bt_resolver(program: ir.Program, kernel: "Kernel", arch: "Arch", strict: bool,
                types: Optional[TypeInfo]) -> "BtResolver":
    """The resolver for bpftrace ``program``, having learnt every map's value type.

    Two passes: the first learns every map's value type (a map may be read in a probe
    that comes before the one that assigns it), the second resolves for real (only when
    some probe reads a map: a deep copy and a second pass cost ~4 ms).
    """
    r = BtResolver(kernel, arch, strict, types, program)
    if _reads_maps(program.probes):
        pre = r
        for probe in ir.clone(program.probes):
            try:
                pre.probe(probe)
            except SourceError:
                break
        r = BtResolver(kernel, arch, strict, pre._types, program)
        r.map_values = dict(pre.map_values)
    return r


def _reads_maps(probes: Sequence[ir.Probe]) -> bool:
    """Whether any probe reads a map's value or operates on a map (``delete``, ``clear``...)."""
    def ops(actions: Sequence[ir.Action]) -> bool:
        for a in actions:
            if isinstance(a, ir.MapOp):
                return True
            if isinstance(a, ir.If) and (ops(a.then) or ops(a.other)):
                return True
            if isinstance(a, ir.While) and ops(a.body):
                return True
        return False

    return any(ops(p.actions) or any(isinstance(e, ir.MapRead) for e in p.exprs()) for p in probes)


class BtResolver(ExprResolver):
    """:class:`ExprResolver` with bpftrace's variables, maps, builtins and functions."""

    language = "bpftrace programs"

    def __init__(self, kernel: "Kernel", arch: "Arch", strict: bool, types: Optional[TypeInfo],
                 program: ir.Program) -> None:
        super().__init__(kernel, arch, strict, types)
        self.program = program
        self.pid = program.setting("pid")
        self._script_done = types is not None
        self.map_values: Dict[str, Ty] = {}
        self.map_keys: Dict[str, Tuple[Ty, ...]] = {}
        self.vars: Dict[str, Ty] = {}
        self.loop_depth = 0
        self._watch_ids = 0  # function watchpoints numbered so far (lang/watchpoints.py)
        self.iter_ctx: Optional[PtrTy] = None  # an iterator's ctx type (_iterator)

    @property
    def types(self) -> TypeInfo:
        t = super().types
        if not self._script_done:
            self._script_done = True
            structs = self.program.setting("c_structs") or {}
            if structs and isinstance(t, LayeredTypes) and isinstance(t.fallback, DeclTypes):
                self._types = t = LayeredTypes(t.primary, script_types(structs, t), prefer=set(structs))
        return t

    # -- probes
    def probe(self, probe: ir.Probe) -> List[ir.Probe]:
        """One probe per attach point. As in bpftrace, an attach point of a block with several
        (or of a wildcard) that cannot exist here is skipped with a warning, not an error."""
        self.probe_ = probe
        out: List[ir.Probe] = []
        if any(ap.kind == "iter" for ap in probe.attach):
            why = check_iter_probe(self.program, probe, bt_probe_name)
            if why is not None:
                raise self.err(ResolveError, why[0], why[1], why[2])
        # a block reading `probe` is expanded as a wildcard is, in bpftrace: a kernel function
        # that is not there then matches nothing and is skipped, not an error
        many = len(probe.attach) > 1 or any(ap.wildcard for ap in probe.attach) or (
            any(ap.kind in ("kprobe", "kretprobe") for ap in probe.attach)
            and any(isinstance(e, ir.Builtin) and e.name == "probe" for e in _walk_probe(probe)))
        for ap in probe.attach:
            first = len(out)
            expanded = self._expand_ap(probe, ap)
            if ap.kind == "watchpoint":
                out.extend(self._watchpoints(probe, expanded))
                continue
            for one in expanded:
                # a probe with one attach point is resolved in place (the deep copy of its
                # IR cost ~0.4 ms per probe)
                p2 = probe if len(probe.attach) == 1 and len(expanded) == 1 else _deepcopy(probe)
                p2.attach = [one]
                p2.name = bt_probe_name(one)
                self.quiet = many
                try:
                    out.append(self._one(p2, one))
                except (AttachUnavailableError, ResolveError) as e:
                    # bpftrace skips what cannot attach in a multi-probe block: a missing
                    # kernel feature, a function or library symbol this system lacks
                    if not many or not (isinstance(e, AttachUnavailableError) or
                                        one.kind in ("uprobe", "uretprobe") and "symbol" in e.message):
                        raise
                    e.skipped = p2.name  # type: ignore[attr-defined]
                    self.warnings.append(e)
            if ap.wildcard and ap.kind in _MULTI_FEATURE and len(out) - first >= 2:
                merged = self._merge_wildcard(ap, out[first:])
                if merged is not None:
                    out[first:] = [merged]
        self.quiet = False
        if many and not out:
            self.warnings.append(self.err(ResolveError,
                                          "none of this block's probes can attach here: the block is skipped",
                                          probe.span))
        return out

    def _watchpoints(self, probe: ir.Probe, aps: List[ir.AttachPoint]) -> List[ir.Probe]:
        """Each watchpoint's probe; a function watchpoint's set-up uprobe after it
        (lang/watchpoints.py), numbered in the program's order."""
        out: List[ir.Probe] = []
        for one in aps:
            p2 = probe if len(probe.attach) == 1 and len(aps) == 1 else _deepcopy(probe)
            p2.attach = [one]
            p2.name = bt_probe_name(one)
            out.append(self._one(p2, one))
            if one.target:
                setup = setup_probe(probe, one, with_cpid=bool(self.program.setting("cpid")))
                out.append(self._one(setup, setup.attach[0]))
        return out

    def _watch_expand(self, ap: ir.AttachPoint) -> List[ir.AttachPoint]:
        """A watchpoint's process (``ap.pid``) and, for FUNC+argN, its binary (``obj`` as
        bpftrace names it, ``path``) and functions (a wildcard: one watchpoint each)."""
        import copy  # imported on first use (start-up)

        w = dict(ap.watch or {})
        target = watch_target(self.pid, self.program.setting("cpid"), self.program.setting("cmd_path"))
        if not ap.target:
            ap.watch = w
            ap.pid = target[0] if target else None
            return [ap]
        if target is None:
            raise self.err(ResolveError, "-p PID or -c CMD required for watchpoint", ap.span,
                           "the watchpoint is set in that process when it calls the function")
        ap.pid, ap.obj = target
        names = self._user_functions(ap) if ap.wildcard else [ap.target]
        out = []
        for n in names:
            a2 = copy.copy(ap)
            a2.target, a2.wildcard = n, False
            a2.watch = dict(w, id=self._watch_ids)
            self._watch_ids += 1
            out.append(a2)
        return out

    def _expand_ap(self, probe: ir.Probe, ap: ir.AttachPoint) -> List[ir.AttachPoint]:
        if ap.kind == "watchpoint":
            return self._watch_expand(ap)
        if ap.kind == "usdt":
            return self.expand_usdt(ap, self.pid)
        if not ap.wildcard:
            return [ap]
        import copy  # imported on first use (start-up)

        if ap.kind == "tracepoint":
            out = []
            for g, e in self.expand_tracepoints(ap):
                a2 = copy.copy(ap)
                a2.target, a2.wildcard = f"{g}:{e}", False
                out.append(a2)
            return out
        if ap.kind in ("kprobe", "kretprobe", "fentry", "fexit"):
            names = self._kernel_functions(ap)
            out = []
            for n in names:
                a2 = copy.copy(ap)
                a2.target, a2.wildcard = n, False
                out.append(a2)
            return out
        if ap.kind in ("uprobe", "uretprobe") and ap.obj:
            out = []
            for n in self._user_functions(ap):
                a2 = copy.copy(ap)
                a2.target, a2.wildcard = n, False
                out.append(a2)
            return out
        raise self.err(ResolveError, f"wildcards are not supported for {ap.kind} probes yet", ap.span)

    def _user_functions(self, ap: ir.AttachPoint) -> List[str]:
        """Functions of ``ap.obj`` whose names match ``ap.target`` (``.symtab`` and
        ``.dynsym``, defined ``FUNC`` symbols). ``GNU_IFUNC`` symbols are left out with a
        warning: their address is the resolver that picks an implementation, not the
        function (``strlen`` -> ``__strlen_avx2``), which bpftrace probes silently."""
        from ..errors import ELFError
        from ..kernel.elf import ELFFile

        try:
            path = self.object_path(ap.obj)
            with ELFFile(path) as f:
                syms = [x for x in f.symbols() if x.defined and x.value and fnmatch.fnmatchcase(x.name, ap.target)]
        except (ELFError, LookupError, ValueError) as e:
            raise self.err(ResolveError, getattr(e, "message", str(e)), ap.span,
                           *getattr(e, "hints", [])) from None
        names = sorted({x.name for x in syms if x.type == "FUNC"})
        ifuncs = sorted({x.name for x in syms if x.type == "GNU_IFUNC"} - set(names))
        shown = ", ".join(ifuncs[:5]) + (f" and {len(ifuncs) - 5} more" if len(ifuncs) > 5 else "")
        if ifuncs and not names:
            raise self.err(ResolveError, f"only GNU_IFUNC resolvers of {path} match {ap.target} ({shown}): "
                           "their address is not the function's", ap.span,
                           "probe the implementation the resolver picks, e.g. __strlen_avx2 for strlen")
        if ifuncs:
            self.warnings.append(self.err(
                ResolveError, f"{len(ifuncs)} matching symbols of {path} are GNU_IFUNC resolvers, not "
                f"functions: not probed ({shown})", ap.span,
                "probe the implementation the resolver picks, e.g. __strlen_avx2 for strlen"))
        if not names:
            raise self.err(ResolveError, f"no function of {path} matches {ap.target}", ap.span,
                           f"list them with: undertow list 'uprobe:{ap.obj}:*'")
        if len(names) > 1024:
            raise self.err(ResolveError, f"{ap.target} matches {len(names)} functions of {path} (limit 1024)",
                           ap.span, "narrow the pattern")
        return names

    def _kernel_functions(self, ap: ir.AttachPoint) -> List[str]:
        names: List[str] = []
        if ap.kind in ("kprobe", "kretprobe"):
            # kallsyms also lists what BTF leaves out (static clones: lookup_fast.constprop.0)
            try:
                names = sorted({s.name for s in self.kernel.kallsyms().match(ap.target) if s.is_text})
            except (UndertowError, OSError, AttributeError):
                names = []
        if not names:
            try:
                btf = self.kernel.btf()
                names = sorted(n for n in btf.names("func") if fnmatch.fnmatchcase(n, ap.target))
            except (UndertowError, OSError):
                names = []
        if not names:
            raise self.err(ResolveError, f"no kernel function matches {ap.target}", ap.span,
                           "list them with: undertow list 'kprobe:*'")
        if len(names) > 512:
            raise self.err(ResolveError, f"{ap.target} matches {len(names)} functions (limit 512)", ap.span,
                           "narrow the pattern")
        return names

    def _merge_wildcard(self, ap: ir.AttachPoint, group: List[ir.Probe]) -> Optional[ir.Probe]:
        """The probes of one uprobe (kprobe) wildcard as one program on one ``uprobe_multi``
        (``kprobe_multi``) link, Linux 6.6+ (5.18+ with CONFIG_FPROBE): attaching and
        detaching N functions costs about one (measured here, 60 libc functions: detach
        0.03 s instead of 6.8 s through 60 perf events).

        The probes differ only in ``probe``/``func``, resolved to string constants marked
        ``cookie_name``; in the merged program the compiler reads them from a table indexed
        by the link's cookie (``bpf_get_attach_cookie``). Merged only where each such
        constant is a whole printf argument, map key element or assigned value (not
        compared or nested, where the compiler would fold the first probe's text), and
        only when the kernel has uprobe_multi; otherwise the probes stay apart."""
        import copy  # imported on first use (start-up)

        first = group[0]
        if os.environ.get("UNDERTOW_MULTI_LINKS") == "0" or not self._mergeable(first):
            return None
        if ap.kind in ("kprobe", "kretprobe"):
            # a kprobe's arguments and return value are typed from each function's BTF
            # prototype: one program cannot serve them all; kprobe_multi has no offsets
            if ap.offset or any(isinstance(e, (ir.Arg, ir.Retval)) or
                                isinstance(e, ir.Field) for e in _walk_probe(first)):
                return None
        if any(isinstance(e, ir.Arg) and e.name for e in _walk_probe(first)):
            return None  # args->NAME: each function's own parameters (DWARF)
        try:
            f = self.kernel.features().get(_MULTI_FEATURE[ap.kind])
        except (UndertowError, OSError, AttributeError):
            return None
        if f is None or not f.available:
            return None
        aps = [p.attach[0] for p in group]
        m = copy.copy(aps[0])
        m.target = ap.target
        m.multi = [(a.target, int(a.file_offset or 0)) for a in aps]
        sizes = {"probe": max(len(ir.text_bytes(bt_probe_name(a))) for a in aps) + 1,
                 "func": max(len(ir.text_bytes(a.target)) for a in aps) + 1}
        for e in _walk_probe(first):
            name = getattr(e, "cookie_name", None)
            if name:
                e.type = StrTy(sizes[name])
        first.attach = [m]
        first.name = bt_probe_name(m)
        return first

    def _mergeable(self, probe: ir.Probe) -> bool:
        top = set()
        for act in _walk_actions(probe.actions):
            if isinstance(act, (ir.Printf, ir.MapUpdate, ir.Assign, ir.PrintValue)):
                top.update(id(x) for x in act.exprs())
        for e in _walk_probe(probe):
            if getattr(e, "cookie_name", None) and id(e) not in top:
                return False
        return True

    def _one(self, probe: ir.Probe, ap: ir.AttachPoint) -> ir.Probe:
        self.probe_, self.ap = probe, ap
        self.sig, self.fmt = None, None
        self.vars = {}
        if ap.kind in ("kprobe", "kretprobe"):
            if self.strict:
                check_kprobes(self.kernel, probe, ap)
                self._kernel_function_exists(ap)
            self.sig = self.types.func(ap.target)
        elif ap.kind in ("fentry", "fexit"):
            self.sig = self.types.func(ap.target)
            if self.sig is None:
                raise self.err(ResolveError, f"BTF does not describe {ap.target}(): kfunc needs it", ap.span,
                               "use kprobe:" + ap.target)
            ap.nargs = len(self.sig.params)  # fexit: retval follows the args
        elif ap.kind == "tracepoint":
            self.load_tracepoint(probe, ap)
        elif ap.kind == "tp_btf":
            self.sig = self._tp_btf_sig(ap)
        elif ap.kind == "iter":
            self._iterator(ap)
        elif ap.kind in ("uprobe", "uretprobe"):
            self._uprobe_bt(ap)
            saved = self._dwarf(probe, ap)
            if saved is not None:
                try:
                    return self._body(probe)
                finally:
                    self._types = saved
        elif ap.kind == "hardware":
            raise self.err(ResolveError, "hardware events are not supported by undertow yet", ap.span,
                           "use software:cpu-clock or profile:hz:N")
        return self._body(probe)

    def _body(self, probe: ir.Probe) -> ir.Probe:
        if probe.filter is not None:
            probe.filter = self.expr(probe.filter)
        self.block(probe.actions)
        return probe

    def _dwarf(self, probe: ir.Probe, ap: ir.AttachPoint) -> Optional[TypeInfo]:
        """A uprobe whose probe names arguments (``args->n``) or casts (``(struct Foo *)``)
        gets its binary's DWARF, when it has some: the function's parameters as
        ``self.sig`` and its types under the script's and the kernel's for this probe.
        Returns the types to restore after the probe (None: nothing changed)."""
        if not ap.path or not any(isinstance(e, (ir.Field, ir.Cast)) for e in _walk_probe(probe)):
            return None
        from .dwarftypes import dwarf_types, function_sig

        if ap.target and not ap.target.startswith("0x") and ap.kind == "uprobe":
            self.sig = function_sig(ap.path, ap.target)
        base = self.types
        t = dwarf_types(ap.path, base)
        if t is None:
            return None
        self._types = t
        return base

    def _kernel_function_exists(self, ap: ir.AttachPoint) -> None:
        """A kprobe on a function the kernel does not have (renamed, inlined, in a module not
        loaded: swap_readpage became swap_read_folio in 6.x) fails here, not at attach time."""
        try:
            ks = self.kernel.kallsyms()
            if not ks.text or ks.lookup(ap.target) is not None:
                return
        except (UndertowError, OSError, AttributeError):
            return
        close = sorted({sym.name for sym in ks.match("*" + ap.target.strip("_")[:12] + "*") if sym.is_text})
        p = self.probe_
        assert p is not None
        hints = [did_you_mean(ap.target, close[:2000]),
                 "renamed, inlined, or in a module that is not loaded (see /proc/kallsyms)"]
        raise AttachUnavailableError("kernel function", f"no kernel function {ap.target} on this kernel",
                                     source=p.source, span=ap.span or p.span, origin=p.origin,
                                     hints=[h for h in hints if h])

    def _tp_btf_sig(self, ap: ir.AttachPoint) -> FuncSig:
        """The typed arguments of raw tracepoint ``ap.target``: BTF's ``btf_trace_<name>``
        typedef is a pointer to ``void (*)(void *__data, ARGS...)`` (include/trace/bpf_probe.h)."""
        t = self.types
        primary = getattr(t, "primary", None)
        btf = getattr(primary, "btf", None)
        proto = None
        if btf is not None:
            try:
                td = btf.find("btf_trace_" + ap.target, "typedef")
                target = btf.strip(td)
                proto = btf.strip(target.target) if getattr(target, "target", None) is not None else None
            except (LookupError, UndertowError, AttributeError):
                proto = None
        if proto is None or not hasattr(proto, "params"):
            raise self.err(ResolveError, f"BTF has no typed raw tracepoint {ap.target}", ap.span,
                           "list raw tracepoints with: undertow list 'rawtracepoint:*'",
                           f"use rawtracepoint:{ap.target} (untyped arg0, arg1, ...)")
        params = [(pn or f"arg{i}", primary.to_ty(pt)) for i, (pn, pt) in enumerate(proto.params)][1:]
        # the typedef's prototype has no parameter names; the __bpf_trace_<name> function
        # the kernel generates for the same tracepoint has them
        named = t.func("__bpf_trace_" + ap.target)
        if named is not None and len(named.params) == len(params) + 1:
            params = [(n, ty) for (n, _t), (_n, ty) in zip(named.params[1:], params)]
        ap.nargs = len(params)
        return FuncSig(ap.target, params, VoidTy())

    def _iterator(self, ap: ir.AttachPoint) -> None:
        """``iter:NAME``: the type of ``ctx`` (``struct bpf_iter__NAME *`` from BTF, in
        ``self.iter_ctx``); when strict, the kernel's iterator (its feature probe)."""
        try:
            self.iter_ctx = context_type(self.types, ap)
        except LookupError as e:
            raise self.err(ResolveError, f"iter {ap.target} needs kernel BTF: {e.args[0] if e.args else e}",
                           ap.span, "BPF iterators need Linux 5.8+ with CONFIG_DEBUG_INFO_BTF") from None
        if not self.strict:
            return
        try:
            f = self.kernel.features().get(ITER_FEATURES[ap.target])
        except (UndertowError, OSError, AttributeError):
            return
        if f is not None and f.available is False:
            p = self.probe_
            assert p is not None
            # bpftrace 0.17's words, then the kernel's reason
            raise AttachUnavailableError(ITER_FEATURES[ap.target],
                                         f"iter {ap.target} not available for your kernel version: {f.reason}",
                                         source=p.source, span=ap.span, origin=p.origin,
                                         hints=["'undertow doctor' lists what this kernel offers"])

    def _uprobe_bt(self, ap: ir.AttachPoint) -> None:
        """``uprobe:PATH:SYMBOL`` or ``uprobe:PATH:0xADDRESS`` (a virtual address in the file)."""
        if ap.target:
            self.locate_uprobe(ap)
            return
        from ..kernel.elf import ELFFile
        from ..errors import ELFError

        try:
            ap.path = self.object_path(ap.obj)
        except (ELFError, LookupError, ValueError) as e:
            raise self.err(ResolveError, getattr(e, "message", str(e)), ap.span,
                           *getattr(e, "hints", [])) from None
        try:
            f = ELFFile(ap.path)
            if f.symbol_containing(ap.offset) is None:
                # bpftrace 0.17 probes an address only inside a known symbol (an instruction
                # boundary it can check); so does undertow
                raise ELFError(f"{ap.path}: no symbol holds address {ap.offset:#x}")
            ap.file_offset = f.code_file_offset(ap.offset)
            ap.target = hex(ap.offset)
        except (ELFError, LookupError, ValueError) as e:
            if isinstance(e, ELFError) and "no loadable" not in e.message:
                # bpftrace 0.17's words for an address no segment of the file holds
                raise self.err(ResolveError, f"Could not resolve address: {ap.obj}:{ap.offset:#x}", ap.span,
                               e.message, "give a virtual address of the file's code (see objdump -d), "
                               "or a symbol") from None
            raise self.err(ResolveError, getattr(e, "message", str(e)), ap.span,
                           *getattr(e, "hints", [])) from None

    # -- statements
    def block(self, actions: List[ir.Action]) -> None:
        for a in actions:
            self.stmt(a)

    def stmt(self, a: ir.Action) -> None:
        if isinstance(a, ir.Assign):
            a.value = self.expr(a.value)
            t = a.value.type
            if isinstance(t, VoidTy) or t is None:
                raise self.err(TypeCheckError, f"{show(a.value)} has no value to assign", a.value.span)
            self._storable(a.value, "a variable's value")
            t = a.value.type
            old = self.vars.get(a.var)
            if old is not None and _shape(old) != _shape(t):
                raise self.err(TypeCheckError, f"{a.var} holds {old}; it cannot also hold {t}", a.value.span)
            if old is None or (isinstance(t, StrTy) and isinstance(old, StrTy) and t.size > old.size):
                self.vars[a.var] = t
        elif isinstance(a, ir.MapUpdate):
            a.key = [self.expr(k) for k in a.key]
            for k in a.key:
                self._storable(k, "a map key")
            self._check_key(a.map, a.key, a.span)
            if a.value is not None:
                a.value = self.expr(a.value)
            for x in a.agg_args:
                self.expr(x)
            if a.agg == "assign":
                assert a.value is not None
                t = a.value.type
                if isinstance(t, VoidTy) or t is None:
                    raise self.err(TypeCheckError, f"{show(a.value)} has no value to store", a.value.span)
                self._storable(a.value, "a map value")
                t = a.value.type
                old = self.map_values.get(a.map)
                if old is not None and _shape(old) != _shape(t):
                    raise self.err(TypeCheckError, f"{a.map} holds {old}; it cannot also hold {t}", a.value.span,
                                   "use another map for values of another type")
                if old is None or (isinstance(t, StrTy) and isinstance(old, StrTy) and t.size > old.size):
                    self.map_values[a.map] = t
            elif a.value is not None and not isinstance(a.value.type, (IntTy, EnumTy, PtrTy)):
                raise self.err(TypeCheckError, f"{a.agg}() needs an integer, but {show(a.value)} is {a.value.type}",
                               a.value.span)
        elif isinstance(a, ir.Printf):
            a.args = [self.expr(x) for x in a.args]
            self._check_printf("printf", a.fmt, a.args)
        elif isinstance(a, ir.If):
            a.cond = self.expr(a.cond)
            self.block(a.then)
            self.block(a.other)
        elif isinstance(a, ir.While):
            if a.cond is not None:
                a.cond = self.expr(a.cond)
            self.loop_depth += 1
            self.block(a.body)
            self.loop_depth -= 1
        elif isinstance(a, ir.MapOp):
            if a.map not in self.program.maps and a.map not in self.map_values:
                raise self.err(ResolveError, f"unknown map {a.map}", a.span,
                               did_you_mean(a.map, list(self.program.maps)))
            a.key = [self.expr(k) for k in a.key]
            for k in a.key:
                self._storable(k, "a map key")
            a.args = [self.expr(k) for k in a.args]
        elif isinstance(a, ir.PrintValue):
            a.value = self.expr(a.value)
            self._storable(a.value, "printed")
        elif isinstance(a, ir.ExprStmt):
            a.expr = self.expr(a.expr)
            c = a.expr
            if isinstance(c, ir.Call) and c.name in ("system", "cat") and c.args and \
                    isinstance(c.args[0], ir.Const) and isinstance(c.args[0].value, str):
                self._check_printf(c.name, c.args[0].value, c.args[1:])
            if isinstance(c, ir.Call) and c.name == "debugf":
                self._check_debugf(c)
        elif isinstance(a, ir.Emit):
            for f in a.fields:
                f.expr = self.expr(f.expr)

    def _storable(self, e: ir.Expr, what: str) -> None:
        """``e`` can be held as ``what`` (a map key, a variable...): a value of known layout.
        A whole struct is held as its bytes; its type gets its members listed (for output)."""
        bad = _no_layout(e.type)
        if bad is None:
            e.type = self._held(e.type)
            return
        if isinstance(bad, RecordTy):
            why = "its layout is unknown" if bad.size <= 0 else \
                f"{bad.size} bytes, more than a value can hold here ({MAX_HELD} bytes)"
            raise self.err(TypeCheckError, f"a whole {bad} cannot be {what} ({show(e)}): {why}",
                           e.span, "use one of its members (x.member, p->member), or keep the pointer")
        raise self.err(TypeCheckError, f"{show(e)} has no value to use as {what}", e.span)

    def _held(self, t: Optional[Ty], depth: int = 0) -> Optional[Ty]:
        """``t`` with the members of every record it holds by value listed (RecordTy.fields)."""
        if depth > 8:
            return t
        if isinstance(t, TupleTy):
            return TupleTy(tuple(self._held(x, depth + 1) for x in t.elems))  # type: ignore[misc]
        if isinstance(t, ArrayTy):
            return ArrayTy(self._held(t.elem, depth + 1), t.count)
        if isinstance(t, RecordTy) and not t.fields:
            rec = self.types.complete(t)
            fields = []
            for name in self.types.member_names(rec):
                mi = self.types.member(rec, name)
                if mi is not None:
                    fields.append((name, mi.offset, self._held(mi.type, depth + 1), mi.bit_offset, mi.bit_size))
            return rec.with_fields(tuple(fields))
        return t

    def _check_printf(self, fname: str, fmt: str, args: List[ir.Expr]) -> None:
        """Each argument's type against its conversion (the parser checked their number):
        ``printf("%d", "str")`` is an error with the caret under ``"str"``."""
        from .printf import conversions

        i = 0
        for _s, _e, _flags, width, prec, conv in conversions(fmt, star=True, required=False):
            if conv == "%" or not conv:
                continue
            wanted = ["integer"] * ((width == "*") + (prec == "*")) + [_CONV_TYPES.get(conv, "integer")]
            for n, want in enumerate(wanted):
                if i >= len(args):
                    return
                arg = args[i]
                i += 1
                got = _printf_kind(arg.type)
                if got != want:
                    what = f"%{conv} specifier" if n == len(wanted) - 1 else f"'*' of %{conv}"
                    hint = {("string", "integer"): "text behind a pointer is read with str(): str(ptr)",
                            ("integer", "string"): "print a string with %s",
                            ("string", "buffer"): "print a buffer with %r",
                            ("buffer", "string"): "print a string with %s"}.get((want, got), "")
                    raise self.err(TypeCheckError, f"{fname}: {what} expects a value of type {want} "
                                   f"({got} supplied)", arg.span, hint)

    def _check_debugf(self, c: ir.Call) -> None:
        """``debugf(fmt, ...)`` as bpftrace 0.17 checks it (bpf_trace_printk: at most 3
        arguments, its own conversions), in bpftrace's words; and its warning."""
        fmt = c.args[0].value if c.args and isinstance(c.args[0], ir.Const) else None
        if not isinstance(fmt, str):
            raise self.err(TypeCheckError, "debugf() needs a string literal as its first argument", c.span)
        problem = debugf_problem(fmt, [_printf_kind(a.type) for a in c.args[1:]])
        if problem:
            raise self.err(TypeCheckError, problem, c.span)
        self.warnings.append(self.err(ResolveError, "The debugf() builtin is not recommended for production use. "
                                      "For more information see bpf_trace_printk in bpf-helpers(7).", c.span))

    def _check_key(self, name: str, key: List[ir.Expr], span: Optional[Span]) -> None:
        types = tuple(k.type for k in key)  # type: ignore[misc]
        old = self.map_keys.get(name)
        if old is None:
            self.map_keys[name] = types  # type: ignore[assignment]
            return
        if len(old) != len(types) or any(_kind(a) != _kind(b) for a, b in zip(old, types)):
            shown = ", ".join(str(t) for t in old) or "no key"
            raise self.err(TypeCheckError, f"{name} was used with key [{shown}]; keys must agree", span)

    # -- expressions
    def _e_Const(self, e: ir.Const) -> None:
        if isinstance(e.value, int):
            e.type = S64 if -(1 << 63) <= e.value < (1 << 63) else U64
        elif isinstance(e.value, bytes):
            e.type = BufTy(len(e.value))
        else:
            e.type = StrTy(len(ir.text_bytes(e.value)) + 1)

    def _e_Var(self, e: ir.Var) -> None:
        t = self.vars.get(e.name)
        if t is None:
            raise self.err(ResolveError, f"{e.name} is used before it is assigned", e.span,
                           did_you_mean(e.name, list(self.vars)))
        e.type = t

    def _e_MapRead(self, e: ir.MapRead) -> None:
        e.key = [self.expr(k) for k in e.key]
        for k in e.key:
            self._storable(k, "a map key")
        self._check_key(e.map, e.key, e.span)
        decl = self.program.maps.get(e.map)
        agg = decl.agg if decl is not None else "assign"
        if agg in ("hist", "lhist", "stats"):
            raise self.err(TypeCheckError, f"{e.map} holds a {agg}(); it cannot be read as a value", e.span,
                           f"print it: print({e.map})")
        if agg in SCALAR_AGGS:
            e.type = S64
            return
        t = self.map_values.get(e.map)
        if t is None:
            if decl is None and e.map not in self.map_values:
                raise self.err(ResolveError, f"unknown map {e.map}", e.span,
                               did_you_mean(e.map, list(self.program.maps)))
            t = S64
        e.type = t

    def _e_Builtin(self, e: ir.Builtin) -> Optional[ir.Expr]:
        ap = self.ap
        assert ap is not None
        if e.name in ("probe", "func"):
            if e.name == "func" and ap.kind not in ("kprobe", "kretprobe", "fentry", "fexit", "uprobe", "uretprobe"):
                raise self.err(TypeCheckError, f"func is not available at {ap.kind} probes", e.span)
            c = ir.Const(bt_probe_name(ap) if e.name == "probe" else ap.target).at(e.span)
            c.type = StrTy(len(ir.text_bytes(str(c.value))) + 1)
            c.cookie_name = e.name  # see _merge_wildcard
            return c
        if e.name.startswith("sarg"):
            # a stack argument (bpftrace 0.17: sarg0..sarg9 at kprobes and uprobes)
            if len(e.name) != 5 or not e.name[4].isdigit():
                raise self.err(TypeCheckError, f"unknown builtin {e.name}", e.span, "stack arguments are sarg0..sarg9")
            if ap.kind not in ("kprobe", "uprobe"):
                raise self.err(TypeCheckError, f"The {e.name} builtin can only be used with 'kprobes' and 'uprobes' "
                               "probes", e.span)
            e.type = U64
            return None
        if e.name == "ctx" and ap.kind == "iter":
            e.type = self.iter_ctx  # struct bpf_iter__NAME *
            return None
        if e.name == "curtask":
            try:
                e.type = self.types.parse_type("struct task_struct *")
            except LookupError:
                e.type = U64
            return None
        if e.name == "args":
            raise self.err(TypeCheckError, "args is a record: use args.FIELD", e.span, self._field_hint())
        if e.name == "retval":
            return self.expr(ir.Retval().at(e.span))
        if e.name == "cpid" and self.program.setting("cpid") is None:
            raise self.err(TypeCheckError, "cpid cannot be used without child command", e.span,
                           "start the command with -c CMD: cpid is its pid")
        t = _BUILTIN_TYPES.get(e.name)
        if t is None:
            raise self.err(TypeCheckError, f"the builtin {e.name} is not supported by undertow yet", e.span)
        e.type = t
        return None

    def _e_Arg(self, e: ir.Arg) -> Optional[ir.Expr]:
        ap = self.ap
        assert ap is not None
        if e.index is None:  # by name (no front end makes these: bpftrace writes args.NAME)
            return self.expr(ir.Field(e.name or "").at(e.span))
        if ap.kind == "usdt" and ap.usdt is not None and e.index >= len(ap.usdt.arguments):
            n = len(ap.usdt.arguments)
            raise self.err(TypeCheckError, f"arg{e.index}: the USDT probe {bt_probe_name(ap)} has "
                           f"{n} argument{'s' if n != 1 else ''}", e.span,
                           f"use arg0..arg{n - 1}" if n else "")
        if ap.kind in ("kprobe", "uprobe", "raw_tracepoint", "usdt", "tp_btf"):
            e.type = U64
            return None
        if ap.kind in ("kretprobe", "uretprobe"):
            raise self.err(TypeCheckError, f"arg{e.index} is not available at a return probe", e.span,
                           "save it at entry: kprobe:f { @a[tid] = arg0 } kretprobe:f { ... @a[tid] ... }")
        if ap.kind in ("fentry", "fexit"):
            raise self.err(TypeCheckError, f"{ap.kind} probes name their arguments: use args.NAME", e.span,
                           self._sig_hint())
        raise self.err(TypeCheckError, f"arg{e.index} is not available at {ap.kind} probes", e.span,
                       "tracepoints have args.FIELD" if ap.kind == "tracepoint" else "")

    def _e_Field(self, e: ir.Field) -> ir.Expr:
        ap = self.ap
        assert ap is not None
        if ap.kind == "tracepoint":
            out = super()._e_Field(e)
            ff = e.fmt_field
            t = out.type
            if ff is not None and isinstance(t, PtrTy) and isinstance(t.target, VoidTy) and \
                    "struct" in (ff.type or ""):
                # the format says "struct __kernel_timespec * rqtp": type it from BTF
                try:
                    pt = self.types.parse_type(ff.type.replace("const ", ""))
                    user = self.fmt is not None and self.fmt.group == "syscalls"
                    if isinstance(pt, PtrTy):
                        out.type = PtrTy(pt.target, "user" if user else "kernel")
                except LookupError:
                    pass
            return out
        if ap.kind in ("fentry", "fexit", "tp_btf", "uprobe") and self.sig is not None:
            names = [n for n, _ in self.sig.params]
            if e.name == "ret" and ap.kind == "fexit":
                return self.expr(ir.Retval().at(e.span))
            if e.name not in names:
                raise self.err(ResolveError, f"{ap.target}() has no argument named '{e.name}'", e.span,
                               did_you_mean(e.name, names), self._sig_hint())
            a = ir.Arg(names.index(e.name), e.name).at(e.span)
            a.type = self.sig.params[names.index(e.name)][1]
            return a
        raise self.err(TypeCheckError, f"args.{e.name}: {ap.kind} probes have no args record", e.span,
                       "use arg0, arg1... (raw 64-bit values)" if ap.kind in ("kprobe", "uprobe") else
                       f"an iterator's context is ctx: ctx->{e.name}" if ap.kind == "iter" else "")

    def _e_Member(self, e: ir.Member) -> ir.Expr:
        ap = self.ap
        if ap is not None and ap.kind == "iter" and e.arrow and isinstance(e.base, ir.Builtin) and \
                e.base.name == "ctx":
            assert self.iter_ctx is not None
            a = iter_member(self.types, self.iter_ctx, e)  # ctx->task: the context's argument slot
            if a is not None:
                return a
        return super()._e_Member(e)

    def _sig_hint(self) -> str:
        sig: Optional[FuncSig] = self.sig
        if sig is None:
            return ""
        return f"{sig.name}({', '.join(f'{t} {n}' for n, t in sig.params)})"

    def _e_Retval(self, e: ir.Retval) -> None:
        ap = self.ap
        assert ap is not None
        if ap.kind in ("kretprobe", "uretprobe"):
            e.type = S64
            return
        if ap.kind == "fexit" and self.sig is not None:
            e.type = self.sig.ret if not isinstance(self.sig.ret, VoidTy) else S64
            return
        raise self.err(TypeCheckError, f"retval exists only at return probes, not at {ap.kind}", e.span)

    def _e_Ident(self, e: ir.Ident) -> ir.Expr:
        hit = None
        try:
            hit = self.kernel.btf().enum_constant(e.name)
        except (UndertowError, OSError, AttributeError):
            hit = None
        if hit is None:
            raise self.err(ResolveError, f"unknown identifier '{e.name}'", e.span,
                           "not an enum value in kernel BTF; #define it in the script")
        c = ir.Const(int(hit[0])).at(e.span)
        c.type = S64
        return c

    def _e_TupleExpr(self, e: ir.TupleExpr) -> None:
        e.elems = [self.expr(x) for x in e.elems]
        for x in e.elems:
            self._storable(x, "a tuple element")
        e.type = TupleTy(tuple(x.type for x in e.elems))  # type: ignore[misc]

    def _e_IncDec(self, e: ir.IncDec) -> None:
        e.target = self.expr(e.target)
        t = e.target.type
        if not isinstance(t, (IntTy, EnumTy, PtrTy)):
            raise self.err(TypeCheckError, f"'{e.op * 2}' needs a number, but {show(e.target)} is {t}", e.span)
        if isinstance(e.target, ir.MapRead):
            self.map_values.setdefault(e.target.map, t)
        e.type = t

    def _e_TupleIndex(self, e: ir.TupleIndex) -> None:
        e.base = self.expr(e.base)
        t = e.base.type
        if not isinstance(t, TupleTy):
            raise self.err(TypeCheckError, f"{show(e.base)} is not a tuple", e.span)
        if not 0 <= e.index < len(t.elems):
            raise self.err(TypeCheckError, f"tuple index {e.index} is out of range (size {len(t.elems)})", e.span)
        e.type = t.elems[e.index]

    def _e_Binary(self, e: ir.Binary) -> ir.Expr:
        e.left = self.expr(e.left)
        e.right = self.expr(e.right)
        if e.op in ("&&", "||", "==", "!=", "<", "<=", ">", ">="):
            ls, rs = _stringish(e.left.type), _stringish(e.right.type)
            if ls != rs:
                raise self.err(TypeCheckError, f"cannot compare {e.left.type} with {e.right.type}", e.span)
            if ls and e.op not in ("==", "!="):
                raise self.err(TypeCheckError, f"strings compare with == or !=, not {e.op}", e.span)
            e.type = S64
            return e
        self._need_int(e.left, e.op)
        self._need_int(e.right, e.op)
        lt, rt = e.left.type, e.right.type
        if isinstance(lt, PtrTy) and e.op in ("+", "-") and isinstance(rt, (IntTy, EnumTy)):
            e.type = lt
            return e
        signed = getattr(lt, "signed", False) or getattr(rt, "signed", False)
        e.type = S64 if signed else U64
        return e

    def _e_Unary(self, e: ir.Unary) -> ir.Expr:
        e.expr = self.expr(e.expr)
        if e.op == "!":
            e.type = S64
        else:
            self._need_int(e.expr, e.op)
            e.type = S64 if e.op == "-" else U64
        return e

    def _e_Ternary(self, e: ir.Ternary) -> ir.Expr:
        e.cond, e.then, e.other = self.expr(e.cond), self.expr(e.then), self.expr(e.other)
        a, b = e.then.type, e.other.type
        if _kind(a) != _kind(b) and not isinstance(a, VoidTy) and not isinstance(b, VoidTy):
            raise self.err(TypeCheckError, f"the branches of ?: differ: {a} and {b}", e.span)
        if isinstance(a, StrTy) and isinstance(b, StrTy):
            e.type = StrTy(max(a.size, b.size))
        else:
            e.type = a
        return e

    def _e_Deref(self, e: ir.Deref) -> ir.Expr:
        """``*expr``; bpftrace also dereferences a 64-bit integer (``*kaddr("avenrun")``) as a u64."""
        e.expr = self.expr(e.expr)
        t = e.expr.type
        if isinstance(t, IntTy) and t.size == 8:
            c = ir.Cast("u64 *", e.expr).at(e.expr.span)
            c.type = PtrTy(U64, "user" if self.ap is not None and self.ap.kind in ("uprobe", "uretprobe")
                           else "kernel")
            e.expr = c
            e.type = U64
            return e
        return super()._e_Deref(e)

    def _e_Cast(self, e: ir.Cast) -> ir.Expr:
        e.expr = self.expr(e.expr)
        span = getattr(e, "type_span", None) or e.span
        t = self._parse_type(e.type_text, span)
        if isinstance(t, RecordTy):
            raise self.err(TypeCheckError, f"cannot cast to a whole {t}", span, f"cast to a pointer: ({t} *)")
        src = e.expr.type
        if isinstance(src, (RecordTy, TupleTy)) or isinstance(src, VoidTy):
            what = f"a whole {src}" if isinstance(src, RecordTy) else f"a tuple {src}" \
                if isinstance(src, TupleTy) else "nothing"
            raise self.err(TypeCheckError, f"cannot cast {what} to {t}", e.span,
                           "cast a pointer to it, or one of its members" if isinstance(src, RecordTy) else "")
        user_src = isinstance(src, PtrTy) and src.space == "user"
        in_user_probe = self.ap is not None and self.ap.kind in ("uprobe", "uretprobe", "usdt")
        if isinstance(t, PtrTy) and (user_src or in_user_probe and not ir.kernel_rooted(e.expr)):
            # a cast keeps the address space: (struct sockaddr_in *)args.uservaddr is user memory
            t = PtrTy(t.target, "user")
        e.type = t
        return e

    def _e_Call(self, e: ir.Call) -> Optional[ir.Expr]:  # noqa: C901 - one table of functions
        n = e.name
        if n in ("sizeof", "offsetof"):
            return self._sizeof(e)
        if n in ("kaddr", "uaddr", "cgroupid", "reg", "time", "strftime", "cat", "system", "pton"):
            return self._const_call(e)
        e.args = [self.expr(a) for a in e.args]
        args = e.args
        for i in _INT_ARGS.get(n, ()):
            if i < len(args) and _printf_kind(args[i].type) != "integer":
                raise self.err(TypeCheckError, f"{n}() needs an integer, but {show(args[i])} is {args[i].type}",
                               args[i].span)
        if n == "str":
            size = int(self.program.setting("strlen", 64) or 64)
            if len(args) == 2 and isinstance(args[1], ir.Const) and isinstance(args[1].value, int):
                size = max(1, min(size, int(args[1].value) + 1)) if args[1].value >= 0 else size
            src = args[0].type
            if not isinstance(src, (PtrTy, IntTy, StrTy, ArrayTy)):
                raise self.err(TypeCheckError, f"str() needs a pointer, but {show(args[0])} is {src}",
                               args[0].span)
            if isinstance(src, StrTy):
                size = src.size
            e.type = StrTy(size)
        elif n == "buf":
            # a computed length reads at most "bufsize" bytes (default 64, like strings)
            size = int(self.program.setting("bufsize", 64) or 64)
            if len(args) == 2 and isinstance(args[1], ir.Const) and isinstance(args[1].value, int):
                size = max(1, min(int(args[1].value), 4096))
            elif isinstance(args[0].type, ArrayTy):
                size = args[0].type.size
            e.type = BufTy(size)
        elif n == "ntop":
            e.type = INET
        elif n == "ksym":
            e.type = OpaqueTy("ksym", 8)
        elif n == "usym":
            e.type = OpaqueTy("usym", 16)
        elif n == "strerror":
            e.type = OpaqueTy("strerror", 8)
        elif n == "cgroup_path":
            pat = "*"
            if len(args) == 2:
                if not (isinstance(args[1], ir.Const) and isinstance(args[1].value, str)):
                    raise self.err(TypeCheckError, "cgroup_path()'s second argument must be a string literal",
                                   args[1].span, 'cgroup_path(cgroup, "unified")')
                pat = args[1].value
                e.args = args = args[:1]
            e.type = OpaqueTy("cgroup_path", 8, fmt=pat)  # the id; user space finds the paths
        elif n == "macaddr":
            e.type = OpaqueTy("mac", 8)
        elif n in ("kstack", "ustack"):
            e.type = StackTy("kernel" if n == "kstack" else "user")
        elif n == "strncmp":
            e.type = S64
        elif n == "strcontains":
            for x in args:
                if not isinstance(x.type, StrTy) and not (isinstance(x.type, ArrayTy) and
                                                          isinstance(x.type.elem, IntTy) and x.type.elem.size == 1):
                    raise self.err(TypeCheckError, f"strcontains() needs strings, but {show(x)} is {x.type}", x.span)
            if all(isinstance(x, ir.Const) and isinstance(x.value, str) for x in args):
                c = ir.Const(int(args[1].value in args[0].value)).at(e.span)
                c.type = S64
                return c
            e.type = S64
        elif n == "cmdline_str":  # SystemTap's (lang/stap): arg_start, arg_end of the task's mm
            e.type = StrTy(int(self.program.setting("strlen", 64) or 64))
        elif n == "regex_match":  # SystemTap's =~ (lang/stap): a string and an ERE literal
            x = args[0]
            if not isinstance(x.type, StrTy) and not (isinstance(x.type, ArrayTy) and
                                                      isinstance(x.type.elem, IntTy) and x.type.elem.size == 1):
                raise self.err(TypeCheckError, f"=~ needs a string, but {show(x)} is {x.type}", x.span)
            e.type = S64
        elif n == "bswap":
            e.type = args[0].type
        elif n == "signal":
            if self.ap is not None and self.ap.kind == "iter":
                # the program runs in undertow's own read(2): the signal would be undertow's
                raise self.err(TypeCheckError, 'signal can not be used with "iter" probes', e.span,
                               "an iterator's program runs in undertow's own process")
            a0 = args[0]
            if isinstance(a0, ir.Const) and isinstance(a0.value, str):
                import signal as _signal

                name = a0.value.upper()
                name = name if name.startswith("SIG") else "SIG" + name
                num = getattr(_signal, name, None)
                if num is None:
                    raise self.err(TypeCheckError, f"unknown signal {a0.value!r}", a0.span, "e.g. KILL, TERM, 9")
                c = ir.Const(int(num)).at(a0.span)
                c.type = S64
                e.args[0] = c
            e.type = VoidTy()
        elif n in ("uptr", "kptr"):
            # mark the address space: an integer becomes a pointer to bytes in that space
            t = args[0].type
            target = t.target if isinstance(t, PtrTy) else IntTy(1, False, "u8")
            e.type = PtrTy(target, "user" if n == "uptr" else "kernel")
        elif n in ("printf", "join", "exit", "signal", "override", "print", "delete", "clear", "zero",
                   "unwatch", WATCH_SETUP_CALL, "debugf", "delete_slice"):
            e.type = VoidTy()
        else:
            raise self.err(TypeCheckError, f"{n}() is not supported by undertow yet", e.span)
        return None

    def _const_call(self, e: ir.Call) -> Optional[ir.Expr]:
        n = e.name
        lit = e.args[0].value if e.args and isinstance(e.args[0], ir.Const) else None
        if n in ("time", "strftime", "cat", "system"):
            e.args = [self.expr(a) for a in e.args]
            if n == "strftime":
                if not e.args or not isinstance(e.args[0], ir.Const) or not isinstance(e.args[0].value, str):
                    raise self.err(TypeCheckError, "strftime() needs a format string literal first",
                                   e.args[0].span if e.args else e.span,
                                   'strftime("%H:%M:%S", nsecs)')
                e.type = OpaqueTy("timestamp", 16, fmt=e.args[0].value)
            else:
                e.type = VoidTy()
            return None
        if n == "reg":
            if self.ap is not None and self.ap.kind == "iter":
                raise self.err(TypeCheckError, 'reg can not be used with "iter" probes', e.span,
                               "an iterator's program has no registers: its context is ctx")
            r = ir.Register(str(lit)).at(e.span)
            return self.expr(r)
        if n == "kaddr":
            self.program.settings["volatile"] = "kaddr()"  # kptr_restrict can hide addresses later
            try:
                sym = self.kernel.kallsyms().lookup(str(lit))
            except (UndertowError, OSError) as ex:
                raise self.err(ResolveError, f"kaddr(\"{lit}\"): {getattr(ex, 'message', ex)}", e.span) from None
            if sym is None or not getattr(sym, "address", 0):
                raise self.err(ResolveError, f"Failed to resolve kernel symbol: {lit} (kaddr(): no such symbol, "
                               "or addresses hidden)", e.span)
            c = ir.Const(int(sym.address)).at(e.span)
            c.type = U64
            return c
        if n == "uaddr":
            self.program.settings["volatile"] = "uaddr()"  # a process's mappings
            return self._uaddr(e, str(lit))
        if n == "cgroupid":
            self.program.settings["volatile"] = "cgroupid()"  # cgroups come and go
            try:
                ino = os.stat(str(lit)).st_ino
            except OSError as ex:
                raise self.err(ResolveError, f"cgroupid(\"{lit}\"): {ex.strerror}", e.span) from None
            c = ir.Const(int(ino)).at(e.span)
            c.type = U64
            return c
        if n == "pton":
            import ipaddress

            try:
                raw = ipaddress.ip_address(str(lit)).packed
            except ValueError:
                raise self.err(TypeCheckError, f"pton(\"{lit}\"): not an IP address", e.span) from None
            if len(raw) == 16:  # bpftrace's uint8[16], in network order
                c = ir.Const(bytes(raw)).at(e.span)
                c.type = ArrayTy(IntTy(1, False, "u8"), 16)
                return c
            c = ir.Const(int.from_bytes(raw, "little")).at(e.span)
            c.type = U32
            return c
        raise self.err(TypeCheckError, f"{n}() is not supported by undertow yet", e.span)

    def _uaddr(self, e: ir.Call, name: str) -> ir.Expr:
        """``uaddr("sym")``: the run-time address of a symbol of the probed binary, as a
        user pointer sized by the symbol (``uint8_t *`` .. ``uint64_t *``, bpftrace's rule).

        A non-PIE executable's symbols sit at their link-time address. A PIE or a shared
        library loads wherever the loader puts it, different in each process: bpftrace
        then silently returns an address that is wrong; here the address is computed in
        the process given with ``-p PID`` (from its /proc/PID/maps), else refused."""
        from ..kernel.elf import ELFFile

        ap = self.ap
        if ap is None or ap.kind not in ("uprobe", "uretprobe") or not ap.path:
            raise self.err(TypeCheckError, "uaddr() works in uprobe and uretprobe probes only", e.span,
                           "the symbol is looked up in the probed binary")
        try:
            with ELFFile(ap.path) as f:
                sym = f.find_symbol(name)
                if not sym.defined:
                    raise self.err(ResolveError, f"uaddr(\"{name}\"): {ap.path} uses {name} but does not define it",
                                   e.span, "probe the library that defines it")
                addr = sym.value
                if f.e_type == 3:  # ET_DYN: PIE executable or shared library
                    addr = self._runtime_address(e, name, ap.path, f.vaddr_to_file_offset(sym.value))
        except UndertowError as ex:
            if isinstance(ex, SourceError):
                raise
            raise self.err(ResolveError, f"uaddr(\"{name}\"): {getattr(ex, 'message', ex)}", e.span,
                           *(getattr(ex, "hints", None) or [])) from None
        elem = {1: U8, 2: U16, 4: U32}.get(int(sym.size), U64)
        c = ir.Const(int(addr)).at(e.span)
        c.type = PtrTy(elem, "user")
        return c

    def _runtime_address(self, e: ir.Call, name: str, path: str, file_off: int) -> int:
        pid = self.program.setting("pid")
        if not pid:
            raise self.err(ResolveError, f"uaddr(\"{name}\"): {path} is position-independent: {name} is at a "
                           "different address in each process", e.span,
                           "give the process: undertow run -p PID ...")
        real = os.path.realpath(path)
        try:
            with open(f"/proc/{pid}/maps") as fh:
                for line in fh:
                    parts = line.split(None, 5)
                    if len(parts) < 6 or os.path.realpath(parts[5].strip()) != real:
                        continue
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    off = int(parts[2], 16)
                    if off <= file_off < off + (hi - lo):
                        return lo + file_off - off
        except OSError as ex:
            raise self.err(ResolveError, f"uaddr(\"{name}\"): cannot read /proc/{pid}/maps: {ex.strerror}",
                           e.span) from None
        raise self.err(ResolveError, f"uaddr(\"{name}\"): process {pid} has not mapped {path}", e.span,
                       "-p must name a process that runs this binary or has loaded this library")

    def _sizeof(self, e: ir.Call) -> ir.Expr:
        if e.name == "sizeof":
            a = e.args[0]
            if isinstance(a, ir.TypeName):
                t = self._parse_type(a.type_text, a.span)
            else:
                t = self.expr(a).type
            size = t.size if t is not None else 0
        else:
            tn = e.args[0]
            assert isinstance(tn, ir.TypeName)
            t = self._parse_type(tn.type_text, tn.span)
            path = e.args[1]
            names = str(path.name if isinstance(path, (ir.Ident, ir.Var)) else getattr(path, "value", path))
            size = 0
            rec = t
            for part in names.split("."):
                if not isinstance(rec, RecordTy):
                    raise self.err(TypeCheckError, f"offsetof: {rec} has no members", path.span)
                mi = self.types.member(rec, part)
                if mi is None:
                    raise self.err(ResolveError, f"{rec} has no member '{part}'", path.span,
                                   did_you_mean(part, self.types.member_names(rec)))
                size += mi.offset
                rec = mi.type
        c = ir.Const(int(size)).at(e.span)
        c.type = U64
        return c


def _stringish(t: Optional[Ty]) -> bool:
    if isinstance(t, StrTy):
        return True
    return isinstance(t, ArrayTy) and isinstance(t.elem, IntTy) and t.elem.is_char


#: functions whose arguments (by position) must be integers (or pointers)
_INT_ARGS = {"ksym": (0,), "usym": (0,), "strerror": (0,), "bswap": (0,), "kptr": (0,), "uptr": (0,),
             "strncmp": (2,), "cgroup_path": (0,), "unwatch": (0,)}

#: what a printf conversion takes (bpftrace 0.17's printf_format_types): %s a string,
#: %r a buffer, every other conversion an integer
_CONV_TYPES = {"s": "string", "r": "buffer"}

#: bpf_trace_printk's conversions (bpftrace 0.17's debugf() takes these only), and
#: printf's, longest first: a token is the longest of them after ``%-?[0-9]*(.[0-9]+)?``.
_PRINTK_CONVS = ("lld", "llu", "llx", "ld", "lu", "lx", "d", "u", "x", "p", "s")
_PRINTF_CONVS = tuple(sorted({p + c for p in ("", "hh", "h", "l", "ll", "j", "z", "t") for c in "duoxXp"}
                             | {"s", "r", "rx", "rh", "c"}, key=len, reverse=True))
_DEBUGF_MAX_ARGS = 3


def debugf_problem(fmt: str, kinds: List[str]) -> str:
    """What bpftrace 0.17 says of ``debugf(fmt, args)`` (``kinds``: each argument's printf
    kind, "integer", "string"...), or "" when it is fine."""
    import re

    tokens = []
    for m in re.finditer(r"%-?[0-9]*(?:\.[0-9]+)?", fmt):
        rest = fmt[m.end():]
        conv = next((c for c in _PRINTF_CONVS if rest.startswith(c)), None)
        if conv is not None:
            tokens.append(conv)
    if len(kinds) < len(tokens):
        return f"debugf: Not enough arguments for format string ({len(kinds)} supplied, {len(tokens)} expected)"
    if len(kinds) > len(tokens):
        return f"debugf: Too many arguments for format string ({len(kinds)} supplied, {len(tokens)} expected)"
    if len(kinds) > _DEBUGF_MAX_ARGS:
        return f"debugf: Cannot use more than {_DEBUGF_MAX_ARGS} conversion specifiers"
    for conv, kind in zip(tokens, kinds):
        if conv not in _PRINTK_CONVS:
            return f"debugf: Unknown format string token: %{conv}"
        want = "string" if conv == "s" else "integer"
        if kind != want:
            return f"debugf: %{conv} specifier expects a value of type {want} ({kind} supplied)"
    return ""


def _printf_kind(t: Optional[Ty]) -> str:
    """The bpftrace type name a printf argument counts as: pointers and enums print as
    integers, and what user space renders (ksym, usym, ntop, username, stacks, strftime...)
    as strings, as bpftrace's FormatString::check decides."""
    if isinstance(t, (IntTy, EnumTy, PtrTy)):
        return "integer"
    if _stringish(t) or isinstance(t, (OpaqueTy, StackTy)):
        return "string"
    if isinstance(t, BufTy):
        return "buffer"
    if isinstance(t, TupleTy):
        return "tuple"
    if isinstance(t, RecordTy):
        return "record"
    if isinstance(t, ArrayTy):
        return "array"
    return "none"


def _no_layout(t: Optional[Ty]) -> Optional[Ty]:
    """The part of ``t`` a value cannot be held as (a whole struct, nothing), else ``None``:
    map keys and values, variables, tuples and print() need bytes of a known layout."""
    if isinstance(t, TupleTy):
        for x in t.elems:
            bad = _no_layout(x)
            if bad is not None:
                return bad
        return None
    if isinstance(t, RecordTy):
        return t if t.size <= 0 or t.size > MAX_HELD else None
    return t if isinstance(t, VoidTy) or t is None else None


def _shape(t: Optional[Ty]) -> object:
    """:func:`_kind`, element by element for tuples: what must agree between two values
    one variable or map holds."""
    if isinstance(t, TupleTy):
        return ("tuple",) + tuple(_shape(x) for x in t.elems)
    return _kind(t)


def _kind(t: Optional[Ty]) -> str:
    if isinstance(t, (IntTy, EnumTy, PtrTy)):
        return "int"
    if _stringish(t):
        return "str"
    return type(t).__name__


def script_types(structs: Dict[str, object], base: TypeInfo) -> DeclTypes:
    """Structs the script defines (``struct Foo { int x; char c; }``) laid out with C's rules
    (the System V ABI: each member at its alignment, bitfields packed into units of their
    type without crossing one, the whole padded to its largest alignment).

    They serve when kernel BTF does not have the type (BTF wins for kernel types).
    Member types are parsed with ``base`` (BTF, uapi headers) or earlier script structs.
    """
    assert isinstance(base, LayeredTypes) and isinstance(base.fallback, DeclTypes)
    decl = DeclTypes(dict(base.fallback.records), dict(base.fallback.funcs), dict(base.fallback.typedefs),
                     dict(base.fallback.variables))
    decl.aligns.update(base.fallback.aligns)
    both = LayeredTypes(base.primary, decl, prefer=set(structs))
    for key in structs:  # placeholders: a member may point to a struct defined later (or itself)
        decl.records.setdefault(key, (0, []))
    for key, sd in structs.items():
        members: List[tuple] = []
        bit = 0  # the next free bit
        align = 1
        union = getattr(sd, "kind", "struct") == "union"
        usize = 0
        for m in getattr(sd, "members", ()):
            try:
                t = both.parse_type(m.type_text)
            except LookupError:
                t = U64
            for d in reversed(getattr(m, "dims", ()) or ()):
                t = ArrayTy(t, int(d))
            size = t.size or 1
            a = min(8, align_of(t))
            align = max(align, a)
            bits = getattr(m, "bits", None)
            if union:
                bit = 0
            if bits is not None:
                unit = size * 8
                if bits == 0 or (bit % unit) + bits > unit:
                    bit = (bit + unit - 1) // unit * unit  # a bitfield never crosses a unit of its type
                byte = bit // unit * size
                members.append((m.name, byte, t, bit - byte * 8, bits))
                bit += bits
            else:
                byte = (bit + 8 * a - 1) // (8 * a) * a
                members.append((m.name, byte, t))
                bit = (byte + size) * 8
            usize = max(usize, (bit + 7) // 8)
        end = usize if union else (bit + 7) // 8
        total = (end + align - 1) // align * align
        decl.records[key] = (total, members)
        decl.aligns[key] = align
    return decl
