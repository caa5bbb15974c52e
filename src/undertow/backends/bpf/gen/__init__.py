"""The BPF code generator, in parts: IR nodes in, BPF instructions out (asm.Asm).

backends/bpf/compiler.py drives them: :func:`~undertow.backends.bpf.compiler.compile_program`
makes one :class:`~.probe.ProbeGen` per attach point. They read the common IR
(lang/ir.py) whatever the front end (bpftrace programs, probe lines, the Python API,
SystemTap scripts), so a new front end compiles through them unchanged: what it adds
goes into the IR and its resolver, not here.

- ``frame.py``: the program being built (assembler, stack slots, labels, variables) and
  the memory tools every part uses;
- ``prologue.py``: what the runtime relies on in every program: the pid filters, the stop
  flag, the ``lost`` and ``sent`` counters, the exit path;
- ``expr.py``: expressions into R0 (builtins, arguments, fields, member chains,
  arithmetic), conditions and string compares, addresses;
- ``memory.py``: values written to memory (strings, buffers, tuples, addresses, stacks):
  map keys and values, record fields, variables;
- ``maps.py``: ``@maps``: their layouts (:func:`~.maps.collect_maps`), updates and
  aggregations, reads, ``delete``;
- ``records.py``: ring-buffer (or perf buffer) records and the actions user space
  performs when one arrives: printf, print/clear/zero, time, cat, system, join, exit,
  probe-line emits;
- ``stmt.py``: statements and control flow: variables, if, while/unroll,
  break/continue/return;
- ``probe.py``: :class:`~.probe.ProbeGen`, the parts together, and the order of a program.

Each part is a class over :class:`~.prologue.Prologue` (itself over :class:`~.frame.Frame`);
the parts call each other through ``self`` (an expression may read a map, a map key holds
expressions), so only :class:`~.probe.ProbeGen`, which has them all, is instantiated.
"""

from __future__ import annotations
