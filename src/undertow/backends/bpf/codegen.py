"""What every BPF record and diagnostic of the code generator shares.

The generator itself is :mod:`undertow.backends.bpf.compiler` and its parts in
:mod:`undertow.backends.bpf.gen`; this module keeps the record header layout (also read
by the runtime) and the error a node the generator cannot run raises.

Record header (48 bytes): u64 ts | u32 tgid | u32 tid | char comm[16] | u32 action |
u32 errors | u32 cpu | pad.
"""

from __future__ import annotations

import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Optional

from ...errors import Span, UndertowError

__all__ = ["HEADER", "HDR_SIZE", "DEFAULT_STRLEN", "Unsupported"]

HEADER = struct.Struct("<QII16sIII4x")  # ts, tgid, tid, comm, action, errors, cpu
HDR_SIZE = HEADER.size                  # 48
DEFAULT_STRLEN = 64


class Unsupported(UndertowError):
    """A node this code generator does not handle; carries the span of the user's text."""

    def __init__(self, message: str, span: Optional[Span]) -> None:
        super().__init__(message, hints=["use --backend ftrace for this line, or simplify it"])
        self.span = span
