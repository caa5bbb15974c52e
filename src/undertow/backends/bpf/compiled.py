"""What the compiler produces and the runtime loads: compiled probes, map and action specs.

Kept apart from the code generator (compiler.py, gen/) so that loading a compiled program
(the runtime, and a program cache hit: progcache.py) does not import the generator; this
module imports none of it (a probe regenerated for a fallback attach kind is the
compiler's work: compiler.regenerate, which the runtime asks the backend for:
undertow.backends.bpf.regenerate).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
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
    "kretprobe": "KPROBE", "uprobe": "KPROBE", "uretprobe": "KPROBE", "usdt": "KPROBE", "profile": "PERF_EVENT",
    "interval": "PERF_EVENT", "software": "PERF_EVENT", "hardware": "PERF_EVENT", "watchpoint": "PERF_EVENT",
    "begin": "RAW_TRACEPOINT", "end": "RAW_TRACEPOINT", "fentry": "TRACING", "fexit": "TRACING",
    "tp_btf": "TRACING", "iter": "TRACING",
}

# Plain classes with __slots__: on the run path (a program cache hit unpickles them: slots
# pickle with protocol 2 and up, progcache.py uses the highest).


class MapSpec:
    """One ``@map``: its aggregation, key and value layouts, and the BPF map that holds it."""

    __slots__ = ("name", "agg", "key", "value", "percpu", "read_in_kernel", "lhist", "max_entries")

    def __init__(self, name: str, agg: str, key: Slot, value: Slot, percpu: bool = True,
                 read_in_kernel: bool = False, lhist: Tuple[int, int, int] = (0, 0, 1),
                 max_entries: int = MAP_ENTRIES) -> None:
        self.name, self.agg, self.key, self.value = name, agg, key, value
        self.percpu, self.read_in_kernel = percpu, read_in_kernel
        self.lhist, self.max_entries = lhist, max_entries

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


class AsyncAction:
    """Work user space does when a record with this action's id arrives.

    ``kind``: printf print clear zero exit time cat system join value emit, watch (a
    watchpoint's set-up probe: ``extra["id"]``, the address) and unwatch; ``args``: the
    (offset in the payload, layout) of each argument; ``size``: the payload's bytes after
    the header."""

    __slots__ = ("kind", "probe", "fmt", "args", "map", "extra", "size", "span")

    def __init__(self, kind: str, probe: str = "", fmt: str = "", args: Optional[List[Tuple[int, Slot]]] = None,
                 map: str = "", extra: Optional[Dict[str, Any]] = None, size: int = 0,
                 span: Optional[Span] = None) -> None:
        self.kind, self.probe, self.fmt = kind, probe, fmt
        self.args: List[Tuple[int, Slot]] = [] if args is None else args
        self.map = map
        self.extra: Dict[str, Any] = {} if extra is None else extra
        self.size, self.span = size, span


class CompiledProbe:
    """One attach point's program; ``note``: how it was attached when that differs from the
    request (``--verbose``)."""

    __slots__ = ("index", "name", "probe", "ap", "prog_type", "program", "note")

    def __init__(self, index: int, name: str, probe: ir.Probe, ap: ir.AttachPoint, prog_type: str,
                 program: Program, note: str = "") -> None:
        self.index, self.name, self.probe, self.ap = index, name, probe, ap
        self.prog_type, self.program, self.note = prog_type, program, note


class CompiledProgram:
    """Every probe's program, the maps and the async actions; ``options``: what
    compile_program was given, so a probe can be regenerated for a fallback attach kind
    (compiler.regenerate, which the runtime reaches through undertow.backends.bpf.regenerate)."""

    __slots__ = ("probes", "maps", "actions", "uses_stacks", "uses_trace_printk", "start_ns", "options")

    def __init__(self, probes: List[CompiledProbe], maps: Dict[str, MapSpec], actions: List[AsyncAction],
                 uses_stacks: bool = False, start_ns: int = 0, options: Optional[Dict[str, Any]] = None) -> None:
        self.probes, self.maps, self.actions = probes, maps, actions
        self.uses_stacks, self.start_ns = uses_stacks, start_ns
        #: a program calls bpf_trace_printk (debugf()): loading it makes the kernel enable the
        #: global bpf_trace/bpf_trace_printk event, which ProgramSession turns off again
        self.uses_trace_printk = False
        self.options: Dict[str, Any] = {} if options is None else options
