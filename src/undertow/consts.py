"""Named integer constants (kernel enums) that cost nothing to define.

:class:`enum.IntEnum` spends ~0.5 ms building a 37-member class; ``undertow run`` is
compared with bpftrace on time to the first event and defines eight such enums
(``enum bpf_cmd``, ``enum bpf_map_type``, helper ids...). A :class:`Consts` class keeps
its members as plain ``int`` class attributes (``MapType.RINGBUF`` is ``27``, usable
anywhere an int is); only the rare reverse lookup builds a named value:
``MapType(27).name == "RINGBUF"``, ``list(Helper)`` in declaration order.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator

__all__ = ["Consts", "Named"]


class Named(int):
    """An int that knows its constant's name (``Cls(value)``); compares as the int."""

    name: str

    def __new__(cls, value: int, name: str) -> "Named":
        self = super().__new__(cls, value)
        self.name = name
        return self

    def __repr__(self) -> str:
        return f"<{self.name}: {int(self)}>"


class _ConstsMeta(type):
    def _members(cls) -> Dict[str, int]:
        found: Dict[str, int] = {}
        for klass in reversed(cls.__mro__):
            for k, v in vars(klass).items():
                if not k.startswith("_") and type(v) is int:
                    found[k] = v
        return found

    def __call__(cls, value: Any) -> Named:  # type: ignore[override]
        for k, v in cls._members().items():
            if v == value:
                return Named(v, k)
        raise ValueError(f"{value!r} is not a valid {cls.__name__}")

    def __iter__(cls) -> Iterator[Named]:
        return iter([Named(v, k) for k, v in cls._members().items()])

    def __len__(cls) -> int:
        return len(cls._members())


class Consts(metaclass=_ConstsMeta):
    """Base of a class of int constants: members are its public ``int`` attributes."""
