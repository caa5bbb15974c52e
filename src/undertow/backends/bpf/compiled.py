"""What the compiler produces and the runtime loads: compiled probes, map and action specs.

Kept apart from the code generator (compiler.py, gen/) so that loading a compiled program
(the runtime, and a program cache hit: progcache.py) does not import the generator; this
module imports none of it (a probe regenerated for a fallback attach kind is the
compiler's work: compiler.regenerate, asked for through backend.regenerate).
"""

from __future__ import annotations

from undertow.dclass import dataclass, field
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are strings: typing is not imported at run time (start-up)
    from typing import Any, Dict, List, Optional, Tuple

    from ...errors import Span
    from ...lang import ir
    from .asm import Program
    from .layout import Slot

__all__ = ["MapSpec", "AsyncAction", "CompiledProbe", "CompiledProgram", "PROG_TYPES",
           "LOST_RINGBUF", "LOST_MAP_FULL", "LOST_READ_FAULT", "MAP_ENTRIES"]

#: Slots of the ``lost`` array map: why records or updates were lost.
LOST_RINGBUF, LOST_MAP_FULL, LOST_READ_FAULT = 0, 1, 2
MAP_ENTRIES = 4096

#: IR attach kind -> BPF program type name (kernel/syscalls.ProgType).
PROG_TYPES = {
    "tracepoint": "TRACEPOINT", "raw_tracepoint": "RAW_TRACEPOINT", "kprobe": "KPROBE",
    "kretprobe": "KPROBE", "uprobe": "KPROBE", "uretprobe": "KPROBE", "profile": "PERF_EVENT",
    "interval": "PERF_EVENT", "software": "PERF_EVENT", "hardware": "PERF_EVENT",
    "begin": "RAW_TRACEPOINT", "end": "RAW_TRACEPOINT", "fentry": "TRACING", "fexit": "TRACING",
    "tp_btf": "TRACING",
}


@dataclass
class MapSpec:
    """One ``@map``: its aggregation, key and value layouts, and the BPF map that holds it."""

    name: str
    agg: str
    key: Slot
    value: Slot
    percpu: bool = True
    read_in_kernel: bool = False
    lhist: Tuple[int, int, int] = (0, 0, 1)
    max_entries: int = MAP_ENTRIES

    @property
    def bucketed(self) -> bool:
        return self.agg in ("hist", "lhist")

    @property
    def key_size(self) -> int:
        return max(8, self.key.size) + (8 if self.bucketed else 0)

    @property
    def value_size(self) -> int:
        return max(8, self.value.size)

    @property
    def keyless(self) -> bool:
        return not self.key.elems


@dataclass
class AsyncAction:
    """Work user space does when a record with this action's id arrives."""

    kind: str                      # printf print clear zero exit time cat system join value emit
    probe: str = ""
    fmt: str = ""
    args: List[Tuple[int, Slot]] = field(default_factory=list)   # (offset in the payload, layout)
    map: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)
    size: int = 0                  # payload bytes after the header
    span: Optional[Span] = None


@dataclass
class CompiledProbe:
    index: int
    name: str
    probe: ir.Probe
    ap: ir.AttachPoint
    prog_type: str
    program: Program
    #: how it was attached when that differs from the request (``--verbose``)
    note: str = ""


@dataclass
class CompiledProgram:
    probes: List[CompiledProbe]
    maps: Dict[str, MapSpec]
    actions: List[AsyncAction]
    uses_stacks: bool = False
    start_ns: int = 0
    #: what compile_program was given, so a probe can be regenerated for a fallback attach
    #: kind (compiler.regenerate, which the runtime reaches through backend.regenerate)
    options: Dict[str, Any] = field(default_factory=dict)
