"""Types of a user-space program from its DWARF (:mod:`undertow.kernel.dwarf`), as IR types.

A uprobe on a binary built with ``-g`` gets, as in bpftrace 0.17 built with libdw:

- ``args->NAME`` (``args.NAME``): the function's parameters by name, typed
  (:func:`function_sig`);
- casts to the program's own structs (``(struct Foo *)arg0``) and their members
  (:func:`dwarf_types`: the records layered under the script's own struct definitions,
  which win, as bpftrace's do);
- ``-lv``'s parameter list (:func:`param_lines`).

Pointers from DWARF point into the probed process (``space="user"``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

from .typeinfo import BASE_TYPES, DeclTypes, FuncSig, LayeredTypes, TypeInfo
from .types import ArrayTy, EnumTy, IntTy, PtrTy, RecordTy, Ty, VoidTy

__all__ = ["DwarfConverter", "load_dwarf", "function_sig", "dwarf_types", "param_lines"]

_T_ARRAY, _T_ENUM, _T_PTR, _T_REF, _T_STRUCT, _T_SUBR = 0x01, 0x04, 0x0F, 0x10, 0x13, 0x15
_T_TYPEDEF, _T_UNION, _T_BASE = 0x16, 0x17, 0x24
_QUALS = (0x26, 0x35, 0x37, 0x47)

#: parsed DWARF by path, for one process's run (None: the file has none)
_CACHE: Dict[str, Any] = {}


def load_dwarf(path: str) -> Any:
    """The :class:`undertow.kernel.dwarf.DwarfInfo` of ``path`` (cached), or None when the
    file has no DWARF or it cannot be read."""
    if path not in _CACHE:
        from ..errors import ELFError
        from ..kernel.dwarf import DwarfInfo

        try:
            _CACHE[path] = DwarfInfo.load(path)
        except (ELFError, OSError, ValueError):
            _CACHE[path] = None
    return _CACHE[path]


class DwarfConverter:
    """DWARF type entries -> IR types; the records met on the way in :attr:`records`
    (``"struct Foo"`` -> ``(size, [(name, offset, Ty[, bit offset, bit size])])``,
    :class:`DeclTypes`' layout)."""

    def __init__(self, info: Any) -> None:
        self.info = info
        self.records: Dict[str, Tuple[int, List[tuple]]] = {}
        self._done: Dict[int, Ty] = {}

    def to_ty(self, die: Any, depth: int = 0) -> Ty:  # noqa: C901 - one dispatch over DWARF tags
        """The IR type of type entry ``die`` (None: void)."""
        info = self.info
        if die is None or depth > 64:
            return VoidTy()
        if die.offset in self._done:
            return self._done[die.offset]
        tag = die.tag
        out: Ty
        if tag == _T_BASE:
            size = info.byte_size(die) or 8
            enc = die.attrs.get(0x3E, 7)
            known = BASE_TYPES.get(die.name)
            if isinstance(known, IntTy) and known.size == size:
                out = known
            else:
                out = IntTy(size if size in (1, 2, 4, 8) else 8, enc in (5, 6, 0x0D), die.name,
                            is_char=size == 1 and enc in (6, 8), is_bool=enc == 2)
        elif tag in (_T_PTR, _T_REF):
            out = PtrTy(self.to_ty(info.type_of(die), depth + 1), "user")
        elif tag in _QUALS:
            out = self.to_ty(info.type_of(die), depth + 1)
        elif tag == _T_TYPEDEF:
            out = self.to_ty(info.type_of(die), depth + 1)
            if isinstance(out, IntTy) and die.name:
                out = out.renamed(die.name)
        elif tag in (_T_STRUCT, _T_UNION):
            kind = "struct" if tag == _T_STRUCT else "union"
            name = die.name or f"(anonymous at {die.offset:#x})"
            key = f"{kind} {name}"
            size = info.byte_size(die)
            out = RecordTy(name, kind, size, btf=key)
            self._done[die.offset] = out
            if key not in self.records:
                self.records[key] = (size, [])
                members = []
                for mname, off, mt, bit_off, bits in info.members(die):
                    t = self.to_ty(mt, depth + 1)
                    members.append((mname, off, t) if bits is None else (mname, off, t, bit_off, bits))
                self.records[key] = (size, members)
        elif tag == _T_ENUM:
            size = info.byte_size(die) or 4
            out = EnumTy(die.name, size)
        elif tag == _T_ARRAY:
            out = self.to_ty(info.type_of(die), depth + 1)
            for n in reversed(info.array_dims(die)):
                out = ArrayTy(out, n)
        else:  # a function type (pointed to), or something not modelled: its bytes
            out = VoidTy()
        self._done[die.offset] = out
        return out


def function_sig(path: str, name: str) -> Optional[FuncSig]:
    """The parameters (and return type) of function ``name`` of ``path`` from its DWARF,
    or None."""
    info = load_dwarf(path)
    if info is None:
        return None
    params = info.function(name)
    if params is None:
        return None
    conv = DwarfConverter(info)
    fn = info.functions[name]
    return FuncSig(name, [(n or f"arg{i}", conv.to_ty(t)) for i, (n, t) in enumerate(params)],
                   conv.to_ty(info.type_of(fn)))


def dwarf_types(path: str, base: TypeInfo) -> Optional[TypeInfo]:
    """``base`` with the structs, unions and typedefs of ``path``'s DWARF added under it:
    what ``base`` declares (kernel BTF, uapi headers, the script's own structs) wins.
    None when ``path`` has no DWARF."""
    info = load_dwarf(path)
    if info is None or not isinstance(base, LayeredTypes) or not isinstance(base.fallback, DeclTypes):
        return None
    conv = DwarfConverter(info)
    typedefs: Dict[str, Ty] = {}
    for key, die in info.types.items():
        t = conv.to_ty(die)
        if " " not in key or key.startswith(("struct ", "union ", "enum ")):
            if not key.startswith(("struct ", "union ", "enum ")):
                typedefs.setdefault(key, t)
    fb = base.fallback
    records = dict(conv.records)
    records.update(fb.records)  # the script's structs (and uapi headers) win
    td = dict(typedefs)
    td.update(fb.typedefs)
    return LayeredTypes(base.primary, DeclTypes(records, dict(fb.funcs), td, dict(fb.variables)))


def param_lines(path: str, name: str) -> List[str]:
    """``-lv``'s lines for function ``name`` of ``path``: ``int* n`` (bpftrace's spelling)."""
    info = load_dwarf(path)
    if info is None:
        return []
    params = info.function(name)
    return [f"{info.type_text(t)} {n}" for n, t in params or ()]
