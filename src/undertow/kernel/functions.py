"""Which kernel function a name attaches to: renamed functions and compiler-made copies.

A kprobe names a text symbol of ``/proc/kallsyms``. Three things make a name the user
knows miss it:

- **renames**: ``_do_fork`` became ``kernel_clone`` in 5.10 (commit cad6967ac108), the
  allocators gained ``_noprof`` in 6.10 (memory allocation profiling, commit
  7bd230a26648); :data:`RENAMES` holds the well-known ones, offered when present;
- **compiler-made copies** of static functions: GCC's interprocedural passes emit
  ``foo.constprop.N`` (constant propagation), ``foo.isra.N`` (scalar replacement of
  aggregates), ``foo.part.N`` (partial inlining: the outlined rest of the body) and
  clang ThinLTO ``foo.llvm.N``, often instead of ``foo`` (on 6.x,
  ``__netif_receive_skb_core`` exists only as ``__netif_receive_skb_core.constprop.0``).
  A copy is an entry point, so a name whose only symbol is one such copy attaches to it
  (:func:`attachable_function`, with a note saying so). ``foo.cold`` is not: it is the
  unlikely tail GCC moved out of ``foo`` (``-freorder-blocks-and-partition``), entered by
  a jump from the middle of ``foo``, never called;
- **inlining**: BTF may describe a function (a FUNC record) that has no symbol at all
  because every call was inlined; nothing can attach to it.

A copy's parameters may differ from the source function's (``.isra`` drops or splits
them, ``.constprop`` removes those it fixed to a constant), so BTF's prototype of
``foo`` does not describe ``foo.constprop.0``: callers leave its arguments untyped
(read them as registers or cast them) unless they know better: :data:`CLONE_PROTOTYPES`
lists the few copies whose parameters were checked (:func:`clone_param`).

Also here: a function's size from kallsyms (:func:`function_size`: the distance to the
next symbol, as the kernel's ``kallsyms_lookup_size_offset()`` computes it; a kprobe
offset at or past it lands in another function) and near names for "did you mean"
(:func:`near_function_names`).
"""

from __future__ import annotations

import os
import re
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Tuple

from ..errors import UndertowError, closest

if TYPE_CHECKING:  # pragma: no cover
    from .kallsyms import Kallsyms

__all__ = ["RENAMES", "CLONE_PROTOTYPES", "FunctionName", "base_name", "clone_param", "NoSuchFunctionError", "attachable_function", "clone_suffix",
           "function_size", "near_function_names", "renamed_to"]

#: Old kernel function name -> ``(new names, when)``: offered ("renamed ...") when the old
#: name is absent and a new one is present. Only renames whose callers are the same.
RENAMES: Dict[str, Tuple[Tuple[str, ...], str]] = {
    "_do_fork": (("kernel_clone",), "Linux 5.10"),
    "do_fork": (("kernel_clone", "_do_fork"), "_do_fork in Linux 4.x, kernel_clone in 5.10"),
    "__kmalloc": (("__kmalloc_noprof",), "Linux 6.10, memory allocation profiling"),
    "kmem_cache_alloc": (("kmem_cache_alloc_noprof",), "Linux 6.10, memory allocation profiling"),
    "__alloc_pages_nodemask": (("__alloc_pages_noprof", "__alloc_pages"), "Linux 5.13 and 6.10"),
    "__alloc_pages": (("__alloc_pages_noprof",), "Linux 6.10, memory allocation profiling"),
    "alloc_pages_current": (("alloc_pages_noprof", "alloc_pages"), "Linux 5.13 and 6.10"),
    "alloc_pages": (("alloc_pages_noprof",), "Linux 6.10, memory allocation profiling"),
    "__send_signal": (("__send_signal_locked",), "Linux 6.1"),
    "generic_make_request": (("submit_bio_noacct",), "Linux 5.9"),
    "do_mmap_pgoff": (("do_mmap",), "Linux 5.9"),
    "__vfs_read": (("vfs_read",), "Linux 5.8"),
    "__vfs_write": (("vfs_write",), "Linux 5.8"),
    "do_page_fault": (("exc_page_fault",), "x86, Linux 5.8"),
    "__do_page_fault": (("do_user_addr_fault",), "x86, Linux 5.8"),
    "__close_fd": (("close_fd",), "Linux 5.11"),
    "kfree_skb": (("sk_skb_reason_drop", "kfree_skb_reason"), "an inline wrapper since Linux 5.17"),
    "swap_readpage": (("swap_read_folio",), "Linux 6.9"),
    "__lock_page": (("__folio_lock",), "Linux 5.16"),
    "add_to_page_cache_lru": (("filemap_add_folio",), "Linux 5.18"),
    "account_page_dirtied": (("folio_account_dirtied",), "Linux 5.16"),
}

#: System call entry points: ``sys_open``/``SyS_open`` are ``__x64_sys_open`` (x86_64)
#: or ``__arm64_sys_open`` since Linux 4.17 (the pt_regs syscall wrappers).
_SYSCALL_WRAPPERS = ("__x64_sys_", "__arm64_sys_", "__ia32_sys_", "__se_sys_", "__do_sys_")

#: One compiler-made copy suffix step; a name may chain them (``.constprop.0.isra.0``).
_CLONE_STEP = r"\.(?:constprop|isra|part|llvm)\.\d+"
_CLONE_RE = re.compile(rf"(?:{_CLONE_STEP})+")
_CLONE_TAIL = re.compile(rf"(?:{_CLONE_STEP})+$")

#: Copies whose parameters were checked against the kernel sources and the lab's Debian
#: kernels: name -> ((major, minor) of the first release with these parameters, parameter
#: types). pahole leaves copies out of BTF; this says what their kept parameters are.
CLONE_PROTOTYPES: Dict[str, Tuple[Tuple[int, int], Tuple[str, ...]]] = {
    # net/core/dev.c, "__netif_receive_skb_core: pass skb by reference" (c0bbbdc32feb,
    # v5.7; also in 4.19.126 and 5.4.44, which a distribution's release string does not
    # show: those kernels are not matched). GCC emits it as .constprop.0 (6.1, 6.12, 6.18).
    "__netif_receive_skb_core": ((5, 7), ("struct sk_buff **", "bool", "struct packet_type **")),
}


def base_name(symbol: str) -> str:
    """``symbol`` without its compiler-copy suffixes (``.constprop.0``, ``.isra.0``...)."""
    return _CLONE_TAIL.sub("", symbol)


def clone_param(symbol: str, index: int, release: Optional[str] = None) -> Optional[str]:
    """The C type of parameter ``index`` of ``symbol`` (a copy or its base name) from
    :data:`CLONE_PROTOTYPES` on kernel ``release`` (default: the running one), or None."""
    entry = CLONE_PROTOTYPES.get(base_name(symbol))
    if entry is None:
        return None
    since, params = entry
    nums = re.match(r"(\d+)\.(\d+)", release or os.uname().release)
    if nums is None or (int(nums.group(1)), int(nums.group(2))) < since or index >= len(params):
        return None
    return params[index]

#: Symbols that are no function a user names (the 16-byte padding before each function
#: with CONFIG_FUNCTION_PADDING_BYTES, kCFI preambles, static-call trampolines).
_NOT_FUNCTIONS = ("__pfx_", "__cfi_", "__SCT__", "__pi_")


class FunctionName:
    """What the name ``asked`` attaches to: ``symbol`` (the kallsyms name to give
    ``kprobe_events`` or a perf kprobe), ``clone`` (``""``, or the compiler's suffix
    ``.constprop.0`` when ``symbol`` is a copy of ``asked``) and ``note`` (``""``, or a
    sentence for the user saying what was chosen and why)."""

    __slots__ = ("asked", "symbol", "clone", "note")

    def __init__(self, asked: str, symbol: str, clone: str = "", note: str = "") -> None:
        self.asked, self.symbol, self.clone, self.note = asked, symbol, clone, note

    def __repr__(self) -> str:
        return f"FunctionName({self.asked!r} -> {self.symbol!r})"


class NoSuchFunctionError(UndertowError, LookupError):
    """A kernel function name no probe can attach to in this kernel. ``name`` is the name,
    ``candidates`` the attachable names offered instead (renames first)."""

    def __init__(self, message: str, name: str, candidates: "List[str]", hints: "List[str]") -> None:
        super().__init__(message, hints=hints)
        self.name, self.candidates = name, candidates


def clone_suffix(symbol: str, base: str) -> str:
    """The compiler-copy suffix of ``symbol`` over ``base`` (``".constprop.0"``), or ``""``
    when ``symbol`` is not ``base`` plus one or more ``.constprop.N``/``.isra.N``/
    ``.part.N``/``.llvm.N`` steps (``.cold`` and anything else: ``""``)."""
    if not symbol.startswith(base + ".") or not base:
        return ""
    rest = symbol[len(base):]
    return rest if _CLONE_RE.fullmatch(rest) else ""


def _text_names_starting(ks: "Kallsyms", prefix: str) -> List[Tuple[str, str]]:
    """``[(name, type)]`` of the symbols whose name starts with ``prefix`` (one scan of
    the text, no index)."""
    text = ks.text
    out = []
    needle = " " + prefix
    pos = text.find(needle)
    while pos >= 0:
        # the match must be the NAME field: preceded by " T" (type letter)
        if pos >= 2 and text[pos - 2] == " ":
            end = pos + 1
            while end < len(text) and text[end] not in "\n\t ":
                end += 1
            out.append((text[pos + 1:end], text[pos - 1]))
        pos = text.find(needle, pos + 1)
    return out


def renamed_to(name: str, present: "Callable[[str], bool]") -> Tuple[List[str], str]:
    """``(new names present, when)`` for a renamed function (``_do_fork`` ->
    ``(["kernel_clone"], "Linux 5.10")``); system calls by their old names (``sys_open``,
    ``SyS_open``) map to the wrapper this kernel has (``__x64_sys_open``)."""
    hit = RENAMES.get(name)
    if hit is not None:
        return [n for n in hit[0] if present(n)], hit[1]
    for old in ("sys_", "SyS_"):
        if name.startswith(old) and len(name) > len(old):
            call = name[len(old):]
            return [w + call for w in _SYSCALL_WRAPPERS if present(w + call)][:1], "Linux 4.17, syscall wrappers"
    return [], ""


def attachable_function(name: str, ks: "Kallsyms", *,
                        in_btf: "Optional[Callable[[str], bool]]" = None) -> FunctionName:
    """The symbol a probe on kernel function ``name`` attaches to, from kallsyms ``ks``.

    - ``name`` is a text symbol: itself;
    - it is not, and exactly one compiler-made copy ``name.constprop.N`` / ``.isra.N`` /
      ``.part.N`` / ``.llvm.N`` (chains too; never ``.cold``) is: that copy, with a note
      (its arguments may differ from BTF's prototype of ``name``: see the module doc);
    - else :class:`NoSuchFunctionError`: "no function NAME in this kernel", with the
      renamed function (:data:`RENAMES`), copies when there are several, and near names
      as candidates and hints. A data symbol of that name says so; ``in_btf`` (does BTF
      describe a function of that name?) turns the hint into "inlined everywhere".
    """
    hit = ks.lookup(name)
    if hit is not None and hit.is_text:
        return FunctionName(name, name)
    clones = sorted({n for n, t in _text_names_starting(ks, name + ".") if t in "tTwW" and clone_suffix(n, name)})
    if len(clones) == 1:
        sym = clones[0]
        suffix = clone_suffix(sym, name)
        typed = ("only header views of its arguments are typed, from undertow's table of checked copies; "
                 "the rest have no type unless cast") if name in CLONE_PROTOTYPES else "they have no type unless cast"
        note = (f"{name} is {sym} in this kernel (a copy the compiler made, {_clone_kinds(suffix)}); "
                f"probing it: its arguments may differ from {name}'s, so {typed}")
        return FunctionName(name, sym, suffix, note)

    def present(n: str) -> bool:
        s = ks.lookup(n)
        return s is not None and s.is_text

    if clones:
        hints = ["probe one of them (each is a separate entry point): " + ", ".join(clones[:6])
                 + (f" and {len(clones) - 6} more" if len(clones) > 6 else "")]
        raise NoSuchFunctionError(f"no function {name} in this kernel: the compiler made {len(clones)} copies "
                                  "of it instead", name, clones, hints)
    new, when = renamed_to(name, present)
    hints = []
    if new:
        hints.append(f"{name} became {' or '.join(new)} ({when})")
    near = [n for n in near_function_names(name, ks) if n not in new]
    cands = new + near
    if near:
        hints.append("did you mean " + (", ".join(near[:-1]) + " or " + near[-1] if len(near) > 1 else near[0]) + "?")
    if hit is not None:
        what = f"kallsyms type '{hit.type}': " + ("data" if hit.type in "dDbBrRgGsS" else "not code")
        message = f"{name} is no function in this kernel ({what})"
    else:
        message = f"no function {name} in this kernel"
        if in_btf is not None and in_btf(name):
            hints.append(f"BTF describes {name} but no symbol has its name: the compiler inlined every call "
                         "of it; probe a caller")
        elif not cands:
            hints.append("functions are the text symbols of /proc/kallsyms (a module's appear once it is loaded); "
                         "list them with: undertow list 'kprobe:PATTERN'")
    raise NoSuchFunctionError(message, name, cands, hints)


def _clone_kinds(suffix: str) -> str:
    words = {"constprop": "constants propagated", "isra": "arguments rewritten", "part": "partly inlined",
             "llvm": "LTO-local"}
    kinds = [words[s] for s in re.findall(r"\.(constprop|isra|part|llvm)\.", suffix + ".")]
    return ", ".join(dict.fromkeys(kinds))


def _base_name(symbol: str) -> str:
    m = re.search(rf"(?:{_CLONE_STEP})+$", symbol)
    return symbol[:m.start()] if m else symbol


def near_function_names(name: str, ks: "Kallsyms", n: int = 3) -> List[str]:
    """Up to ``n`` text symbols of ``ks`` near ``name``: the same name with other leading
    underscores, longer names starting with it (``do_sys_open`` -> ``do_sys_openat2``),
    then close spellings. Copies count by their base name. One scan of the text plus a
    similarity test of the names sharing a word with ``name`` (fast on 200k symbols)."""
    names = ks.text_names()
    bases = {}
    for s in names:
        if s.startswith(_NOT_FUNCTIONS) or s.endswith(".cold"):
            continue
        b = _base_name(s) if "." in s else s
        bases.setdefault(b, s)
    out: List[str] = []
    core = name.lstrip("_")
    # the same name with other leading underscores
    out += sorted((b for b in bases if b != name and b.lstrip("_") == core), key=len)
    # longer names that start with it
    if len(core) >= 4:
        longer = [b for b in bases if b.startswith(name) and b != name and len(b) - len(name) <= 8]
        out += sorted(longer, key=lambda b: (len(b), b))[:n]
    # close spellings among the names sharing a word of 3+ letters with it
    words = [w for w in core.split("_") if len(w) >= 3] or [core]
    pool = [b for b in bases if abs(len(b) - len(name)) <= 4 and any(w in b for w in words)]
    out += closest(name, pool, n)
    seen: Dict[str, None] = {}
    for b in out:
        if b != name:
            seen.setdefault(b, None)
    return list(seen)[:n]


def function_size(ks: "Kallsyms", symbol: str) -> Optional[int]:
    """Bytes from ``symbol`` to the next symbol above it (the kernel's
    ``kallsyms_lookup_size_offset()``), or None (addresses hidden, unknown symbol, last)."""
    if not ks.addresses_available:
        return None
    s = ks.lookup(symbol)
    if s is None or not s.address:
        return None
    return ks.size_at(s.address)
