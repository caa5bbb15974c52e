"""The BPF backend: bytecode emitted in Python, loaded with bpf(2) through ctypes.

- ``insn.py``: opcodes, registers, helper ids (include/uapi/linux/bpf.h)
- ``asm.py``: :class:`~.asm.Asm`, an assembler with labels, map relocations and
  per-instruction origins (for mapping verifier errors back to the user's text)
- ``disasm.py``: kernel-verifier-style listings (``-S``, ``--debug``)
- ``compiler.py`` and ``gen/``: the IR -> BPF code generator; ``compiled.py`` what it hands
  ``runtime.py``, which loads, attaches and reads; ``backend.py`` the face ``auto`` sees
"""
