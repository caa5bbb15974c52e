"""The BPF backend: bytecode emitted in Python, loaded with bpf(2) through ctypes.

- ``insn.py``: opcodes, registers, helper ids (include/uapi/linux/bpf.h)
- ``asm.py``: :class:`~.asm.Asm`, an assembler with labels, map relocations and
  per-instruction origins (for mapping verifier errors back to the user's text)
- ``disasm.py``: kernel-verifier-style listings (``-S``, ``--debug``)
- ``compiler.py`` and ``gen/``: the IR -> BPF code generator; ``compiled.py`` what it hands
  ``runtime.py``, which loads, attaches and reads; ``backend.py`` the face ``auto`` sees

:func:`regenerate` is what the runtime asks this backend for when the kernel refuses an
attach kind: the loaded program (compiled.py) never imports the generator itself.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any


def regenerate(compiled: Any, cp: Any, kind: str) -> Any:
    """The :class:`~.compiled.CompiledProbe` ``cp`` of ``compiled`` generated again for
    attach ``kind``: the runtime's fallbacks when the kernel refuses fentry/fexit
    (kprobe/kretprobe) or tp_btf (raw_tracepoint). The code generator is imported here,
    for a fallback only: a loaded program (a program cache hit) never needs it."""
    from .compiler import regenerate as _regenerate

    return _regenerate(compiled, cp, kind)

