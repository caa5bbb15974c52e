"""Checking a cached member offset against the kernel's BTF without loading it.

``Kernel.member_offset`` caches where a struct member is (a one-liner's start needs no BTF
then), but a cached number is only a claim: a wrong ``thread_info.status`` offset would make
the syscall dispatcher take every call of a process for a compat one and drop it. The cache
therefore keeps the way to the member (:meth:`undertow.kernel.btf.BTF.member_witness`): the
byte offset of each ``struct btf_type`` record crossed in the blob and the index of the
``struct btf_member`` taken (include/uapi/linux/btf.h). :func:`check_member_witness` reads
those few records from the BTF file with ``pread`` (~20 us) and recomputes the offset from
them: a different blob size, a record that is not a struct/union, a member whose name is not
the path's, an offset outside the struct, or a total that differs is a miss.

What it cannot see without the index is that each record is the one the previous member's
type id names (a forged chain through other structs' members of the same names would
pass): the cache directory's ownership checks (undertow.kernel.cache) are what keep others
from writing there at all.
"""

from __future__ import annotations

import os
import struct
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

__all__ = ["check_member_witness", "first_record_name"]

_HDR = struct.Struct("<HBBIIIII")  # struct btf_header
_T = struct.Struct("<III")  # struct btf_type: name_off, info, size/type; struct btf_member: name_off, type, offset
_STRUCT, _UNION = 4, 5


def first_record_name(t: str) -> str:
    """The record name ``t`` asks for: ``struct outer`` -> ``outer``."""
    for prefix in ("struct ", "union "):
        if t.startswith(prefix):
            return t[len(prefix):].strip()
    return t.strip()


def _parse(text: bytes) -> Optional[Tuple[int, int, List[Tuple[int, int]]]]:
    try:
        words = text.decode("ascii").split(" ")
    except UnicodeDecodeError:
        return None
    if len(words) != 3 or not words[0].isdigit() or not words[1].isdigit() or len(text) > 2048:
        return None
    chain = []
    for step in words[2].split(","):
        rec, _, idx = step.partition(":")
        if not (rec.isdigit() and idx.isdigit()):
            return None
        chain.append((int(rec), int(idx)))
    return int(words[0]), int(words[1]), chain


def _cstr(fd: int, start: int, end: int) -> Optional[str]:
    if not 0 <= start < end:
        return None
    b = os.pread(fd, min(256, end - start), start)
    nul = b.find(b"\x00")
    return b[:nul].decode("utf-8", "replace") if nul >= 0 else None


def check_member_witness(btf_path: str, t: str, path: str, text: bytes) -> Optional[int]:
    """The byte offset of ``path`` (dotted member names) in struct ``t`` that the cached
    ``text`` claims, when the BTF file ``btf_path`` agrees with it; else None (a miss)."""
    parsed = _parse(text)
    names = path.split(".")
    if parsed is None or not all(names):
        return None
    size, off, chain = parsed
    if not len(names) <= len(chain) <= 10 * len(names):
        return None
    try:
        fd = os.open(btf_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_size != size:
            return None
        hdr = os.pread(fd, _HDR.size, 0)
        if len(hdr) != _HDR.size:
            return None
        magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HDR.unpack(hdr)
        ts, ss = hdr_len + type_off, hdr_len + str_off
        te, se = ts + type_len, ss + str_len
        if magic != 0xEB9F or version != 1 or te > size or se > size:
            return None
        bit = 0
        k = 0  # path names matched so far
        anonymous = False  # the previous member had no name: this record must have none either
        first_size = 0
        for j, (rec, idx) in enumerate(chain):
            if not (ts <= rec and rec + 12 <= te and (rec - ts) % 4 == 0):
                return None
            name_off, info, size_type = _T.unpack(os.pread(fd, 12, rec))
            kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
            if kind not in (_STRUCT, _UNION) or idx >= vlen or rec + 12 + 12 * vlen > te:
                return None
            if j == 0:
                if _cstr(fd, ss + name_off, se) != first_record_name(t):
                    return None
                first_size = size_type
            elif anonymous and name_off:
                return None
            mname_off, _mtype, moff = _T.unpack(os.pread(fd, 12, rec + 12 + 12 * idx))
            bit += moff & 0xFFFFFF if kflag else moff
            anonymous = mname_off == 0
            if not anonymous:
                if k >= len(names) or _cstr(fd, ss + mname_off, se) != names[k]:
                    return None
                k += 1
        if anonymous or k != len(names) or bit // 8 != off or off >= first_size:
            return None
        return off
    except (OSError, struct.error):
        return None
    finally:
        os.close(fd)
