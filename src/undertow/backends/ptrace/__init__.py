"""The ptrace backend: syscall probe lines for a user's own processes, without tracefs or
BPF (docs/ptrace.md). ``backend.py`` checks and compiles, ``tracer.py`` is the tracer thread,
``session.py`` hands its Events to the reader, ``decode.py`` and ``filter.py`` turn registers
into field values and evaluate ``f:`` filters."""
