"""The feature probe of kernel BTF (``/sys/kernel/btf/vmlinux``): present, and readable by
the lazy BTF reader."""

from __future__ import annotations

import errno as _errno
import os
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Optional, Tuple

from ..rawcall import errno_name
from .base import ProbeContext, Unknown

__all__ = ["probe_btf"]


def probe_btf(ctx: ProbeContext) -> Tuple[Optional[bool], str]:
    path = ctx.roots.btf_vmlinux
    try:
        size = os.stat(path).st_size
    except OSError as e:
        if e.errno == _errno.ENOENT:
            return False, f"no {path} (CONFIG_DEBUG_INFO_BTF=n)"
        return False, f"{path}: {errno_name(e.errno or 0)}"
    try:
        ctx.btf()
    except Unknown as e:
        msg = str(e)
        if msg.startswith("unknown:"):
            return True, f"{path} ({size} bytes; {msg[len('unknown: '):]})"
        return False, msg
    return True, f"{path} ({size} bytes)"
