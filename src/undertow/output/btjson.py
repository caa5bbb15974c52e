"""``undertow run -f json``: bpftrace 0.17's JSON lines, shape for shape.

bpftrace writes its JSON by hand (src/output.cpp, ``JsonOutput``), and its own tests
match that text with regular expressions, so the spacing is part of the format:

- messages: ``{"type": "printf", "data": "..."}`` (also ``time``, ``cat``, ``join``,
  ``syscall`` for ``system()``'s output);
- ``print(value)``: ``{"type": "value", "data": V}``;
- maps: ``{"type": "map", "data": {"@m": V}}`` for a map without keys, else
  ``{"@m": {"k1,k2": V, ...}}`` (a key's parts joined with ``,``); ``avg`` and ``stats``
  maps are ``"type": "stats"``, ``hist``/``lhist`` maps ``"type": "hist"``;
- a value ``V``: integers bare, strings quoted, tuples and arrays ``[a,b]`` (no space),
  structs ``{ "m": 1, "n": 2 }``, stats ``{"count": c, "average": a, "total": t}``,
  histograms ``[{"min": 2, "max": 3, "count": 1}, ...]``.

Two deliberate differences from bpftrace: every line is valid UTF-8 JSON (bpftrace
writes a string's bytes as they are, and a ``strftime``/``mac``/``cgroup_path`` value
unquoted), and characters that could disguise text on a terminal (DEL, C1 controls,
line separators, bidi overrides) are written as ``\\uXXXX`` escapes, which a JSON
parser reads back as the same characters.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["jstr", "message", "value_json", "map_json", "hist_json", "lhist_json", "c_div"]

#: Slot kinds shown as integers (everything else is a quoted string or a container).
_BARE = ("int",)
_DISGUISE = frozenset([0x7F, 0x2028, 0x2029, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D,
                       0x202E, 0x2066, 0x2067, 0x2068, 0x2069] + list(range(0x80, 0xA0)))


def jstr(text: Any) -> str:
    """``text`` as a JSON string literal: valid UTF-8 (an undecodable byte becomes ``\\xNN``
    text), controls escaped as bpftrace does (``\\n \\r \\t \\" \\\\``, others ``\\u00XX``)."""
    import json  # only -f json needs it (~3 ms at start-up)

    from .jsonl import clean

    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "surrogateescape")
    elif not isinstance(text, str):
        text = str(text)
    out = json.dumps(clean(text), ensure_ascii=False)
    if any(ord(c) in _DISGUISE for c in out):
        out = "".join(f"\\u{ord(c):04x}" if ord(c) in _DISGUISE else c for c in out)
    return out


def message(kind: str, text: str) -> str:
    """One ``{"type": KIND, "data": "TEXT"}`` line."""
    return f'{{"type": "{kind}", "data": {jstr(text)}}}\n'


def value_json(r: Any, v: Any, slot: Any) -> str:
    """A decoded value of layout ``slot`` as bpftrace writes it in JSON; ``r`` is the
    :class:`~undertow.output.bt.BtRenderer` (symbols, stacks, user names)."""
    kind = slot.kind
    if kind in _BARE and isinstance(v, int):
        return str(v)
    if kind in ("bytes", "record") and getattr(slot, "ty", None) is not None and isinstance(v, bytes):
        from .native import native_json_text, native_value  # an array or a whole struct

        return native_json_text(native_value(slot.ty, v))
    if isinstance(v, dict):  # a struct by value: its members by name
        members = getattr(slot, "elems", None) or []
        names = [getattr(s, "name", None) for _o, s in members]
        parts = []
        for i, (name, x) in enumerate(v.items()):
            sub = members[i][1] if i < len(members) and names[i] in (None, name) else None
            parts.append(f"{jstr(name)}: {_any_json(r, x, sub)}")
        return "{ " + ", ".join(parts) + " }"
    if kind == "tuple" or (isinstance(v, (list, tuple)) and kind not in ("usym", "ustack", "inet")):
        elems = getattr(slot, "elems", None) or []
        return "[" + ",".join(_any_json(r, x, elems[i][1] if i < len(elems) else None)
                              for i, x in enumerate(v)) + "]"
    if kind == "str":
        return jstr(v)
    return jstr(r.show_raw(v, slot))


def _any_json(r: Any, v: Any, slot: Any) -> str:
    if slot is not None:
        return value_json(r, v, slot)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{jstr(k)}: {_any_json(r, x, None)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_any_json(r, x, None) for x in v) + "]"
    return jstr(v)


def hist_json(b: Dict[int, int], div: int = 1) -> str:
    """A log2 histogram's buckets, from the first used to the last (bpftrace's shape)."""
    def bounds(i: int) -> Tuple[Optional[int], Optional[int]]:
        if i == 0:
            return None, -1
        if i == 1:
            return 0, 0
        return 1 << (i - 2), (1 << (i - 1)) - 1

    return _buckets_json(b, bounds, max(div, 1))


def lhist_json(b: Dict[int, int], lo: int, hi: int, step: int) -> str:
    """A linear histogram's buckets, from the first used to the last (no ``div``: bpftrace
    0.17 divides only log2 histograms)."""
    n = (hi - lo) // step

    def bounds(i: int) -> Tuple[Optional[int], Optional[int]]:
        if i == 0:
            return None, lo - 1
        if i == n + 1:
            return hi, None
        return (i - 1) * step + lo, i * step + lo - 1

    return _buckets_json(b, bounds, 1)


def _buckets_json(b: Dict[int, int], bounds: Callable[[int], Tuple[Optional[int], Optional[int]]],
                  div: int) -> str:
    used = [i for i, c in b.items() if c]
    if not used:
        return "[]"
    rows = []
    for i in range(min(used), max(used) + 1):
        low, high = bounds(i)
        head = (f'"min": {low}, ' if low is not None else "") + (f'"max": {high}, ' if high is not None else "")
        rows.append(f'{{{head}"count": {b.get(i, 0) // div}}}')
    return "[" + ", ".join(rows) + "]"


def map_json(r: Any, spec: Any, entries: List[Tuple[tuple, Any]], div: int) -> str:
    """One map (entries already ordered and cut to ``top``), or "" when it is empty, as
    bpftrace prints nothing for an empty map in JSON."""
    if not entries:
        return ""
    agg = spec.agg
    kind = "hist" if agg in ("hist", "lhist") else "stats" if agg in ("avg", "stats") else "map"

    def jv(val: Any) -> str:
        if agg == "hist":
            return hist_json(val, div)
        if agg == "lhist":
            return lhist_json(val, *spec.lhist)
        if agg == "stats":
            return f'{{"count": {val[0]}, "average": {val[1]}, "total": {val[2]}}}'
        if agg in ("count", "sum", "min", "max", "avg") and isinstance(val, int):
            return str(c_div(val, div))
        if isinstance(val, int) and spec.value.kind == "int":
            return str(c_div(val, div))
        return value_json(r, val, spec.value)

    name = jstr(spec.name)
    if spec.key.elems:
        body = "{" + ", ".join(f"{jstr(r.key_text(key, spec))}: {jv(val)}" for key, val in entries) + "}"
    else:
        body = jv(entries[0][1])
    return f'{{"type": "{kind}", "data": {{{name}: {body}}}}}\n'


def c_div(v: int, div: int) -> int:
    """C's division (towards zero), as bpftrace divides a value by ``print``'s ``div``."""
    if div <= 1:
        return v
    q = abs(v) // div
    return q if v >= 0 else -q
