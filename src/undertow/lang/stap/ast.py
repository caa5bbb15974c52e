"""The SystemTap script's syntax tree (what :mod:`.parser` builds, :mod:`.elaborate` reads).

One small class for every node: ``kind`` names it (``lit``, ``name``, ``target``, ``call``,
``at``, ``index``, ``unary``, ``binary``, ``ternary``, ``assign``, ``incdec``, ``in``,
``pos``; statements ``block``, ``expr``, ``if``, ``while``, ``for``, ``foreach``, ``break``,
``continue``, ``next``, ``return``, ``delete``), its fields are attributes, ``span`` is
where the script wrote it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

from ...errors import Span

__all__ = ["N", "ProbePoint", "Probe", "Alias", "Global", "Function", "Script"]


class N:
    """A node: ``kind``, ``span`` and the fields of that kind (``N("binary", span, op="+",
    left=a, right=b)``)."""

    def __init__(self, kind: str, span: "Optional[Span]", **fields: "Any") -> None:
        self.kind = kind
        self.span = span
        self.__dict__.update(fields)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items() if k not in ("kind", "span"))
        return f"{self.kind}({inner})"


class ProbePoint:
    """``kernel.function("f").return?``: ``parts`` as ``[(name, argument or None)]``,
    ``optional`` (``?``), ``sufficient`` (``!``), ``cond`` (``if (expr)``), ``span``."""

    def __init__(self, parts: "List[Tuple[str, Any]]", span: Span) -> None:
        self.parts = parts
        self.span = span
        self.optional = False
        self.sufficient = False
        self.cond: "Optional[N]" = None

    def text(self) -> str:
        """The probe point as SystemTap prints it (``pp()``)."""
        out = []
        for name, arg in self.parts:
            if arg is None:
                out.append(name)
            elif isinstance(arg, str):
                out.append(f'{name}("{arg}")')
            else:
                out.append(f"{name}({arg})")
        return ".".join(out)

    def __repr__(self) -> str:
        return self.text() + ("?" if self.optional else "")


class Probe:
    def __init__(self, points: "List[ProbePoint]", body: N, span: Span) -> None:
        self.points, self.body, self.span = points, body, span


class Alias:
    """``probe NAME[, NAME] = POINTS { prologue }`` (``+=``: an epilogue)."""

    def __init__(self, names: "List[ProbePoint]", points: "List[ProbePoint]", body: N, epilogue: bool,
                 span: Span) -> None:
        self.names, self.points, self.body, self.epilogue, self.span = names, points, body, epilogue, span


class Global:
    def __init__(self, name: str, init: "Optional[N]", span: Span, array_size: "Optional[int]" = None) -> None:
        self.name, self.init, self.span, self.array_size = name, init, span, array_size


class Function:
    def __init__(self, name: str, params: "List[Tuple[str, str]]", body: N, rtype: str, span: Span) -> None:
        self.name, self.params, self.body, self.rtype, self.span = name, params, body, rtype, span


class Script:
    """A parsed script: probes, aliases, globals and functions in order, with the text."""

    def __init__(self, source: str, origin: str) -> None:
        self.source, self.origin = source, origin
        self.probes: "List[Probe]" = []
        self.aliases: "List[Alias]" = []
        self.globals: "Dict[str, Global]" = {}
        self.functions: "Dict[str, Function]" = {}
        self.embedded: "List[Span]" = []
