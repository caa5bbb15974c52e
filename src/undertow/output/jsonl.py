"""JSON lines: one object per event, always valid UTF-8.

Strings from the kernel may hold undecodable bytes (kept as surrogateescape
code points by decoders) or lone surrogates; they are turned into ``\\xNN``
text so every line parses with a strict JSON parser. Raw ``bytes`` values
become ``{"hex": "..."}`` objects, never lossy text.
"""

from __future__ import annotations

import json
from math import isfinite
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, TextIO, Tuple

from ..events import Event, Lost, Stats
from .values import format_value


def clean(value: Any) -> Any:
    """A JSON-safe copy of ``value``."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return _unsurrogate(value)
    if isinstance(value, (bytes, bytearray)):
        return {"hex": bytes(value).hex()}
    if isinstance(value, dict):
        return {str(clean(k)): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def _c_encoder() -> Any:
    """``json.dumps(value, ensure_ascii=False)``'s encoder, made once: the C encoder
    (``json.encoder.c_make_encoder``, what ``JSONEncoder.iterencode`` builds on every call)
    when the interpreter has it, else ``JSONEncoder(ensure_ascii=False).encode``. A tool's
    event (15 keys) took 4.4 us through ``json.dumps``, 2.7 us through the kept C encoder
    (2026-12-07, this 2-vCPU VM; issue 18)."""
    from json import encoder as je

    enc = json.JSONEncoder(ensure_ascii=False)
    make = getattr(je, "c_make_encoder", None)
    if make is None:
        return enc.encode
    markers: Dict[int, Any] = {}  # check_circular, as json.dumps
    try:
        # the arguments JSONEncoder.iterencode passes for its one-shot C path (indent None)
        chunks = make(markers, enc.default, je.encode_basestring, None, enc.key_separator, enc.item_separator,
                      enc.sort_keys, enc.skipkeys, enc.allow_nan)
        probe = {"a": [1, None, 0.5, "\u00e9\n", True], "b": {"c": -2}}
        if "".join(chunks(probe, 0)) != enc.encode(probe):
            return enc.encode
    except Exception:  # noqa: BLE001 - another interpreter's private signature: the public path
        return enc.encode
    join = "".join

    def encode(value: Any) -> str:
        try:
            return join(chunks(value, 0))
        except BaseException:
            markers.clear()  # what a value that raised mid-way left there
            raise
    return encode


_encode = _c_encoder()


def dumps(value: Any) -> str:
    """``json.dumps(clean(value), ensure_ascii=False)`` without walking ``value`` in Python
    when it needs no cleaning (no bytes, no surrogates): the encoder runs in C and one UTF-8
    encode checks the result. A tool's JSON line at 20k events/s cost ~25 us with the walk,
    ~12 us without (bench/tools_overhead.py, issue 18). A :class:`Templated` event is
    written through its :class:`Template`."""
    if value.__class__ is Templated:
        return value.template.fill(value)
    try:
        s = _encode(value)
        s.encode("utf-8")
        return s
    except (UnicodeEncodeError, TypeError):
        return json.dumps(clean(value), ensure_ascii=False)


class Template:
    """The JSON text of events that differ from one ``event`` only in the ``varying`` keys'
    values, made once: each event's line is the text with those values written in (what
    :func:`dumps` of the event gives, byte for byte: JSON's encoding of an object is that of
    its values in place). A tool's flood repeats one kind of event (one process asking one
    name, pinging one peer, connecting to one port): the C encoder's walk of its ~20 keys
    cost 4-5 us per event, the template ~1.5 us (issue 18).

    Raises ValueError when a varying key is not in ``event`` or its place cannot be told
    apart in the text."""

    __slots__ = ("varying", "head", "rest")

    def __init__(self, event: Dict[str, Any], varying: Tuple[str, ...]) -> None:
        for k in varying:
            if k not in event:
                raise ValueError(f"no {k!r} in the event")
        self.varying = tuple(k for k in event if k in varying)  # in the text's order
        marks = {k: f"\x00undertow-slot-{i}\x00" for i, k in enumerate(self.varying)}
        text = dumps({k: marks.get(k, v) for k, v in event.items()})
        parts = []
        for k in self.varying:
            mark = dumps(marks[k])
            if text.count(mark) != 1:  # the same text in a value (hostile input)
                raise ValueError(f"{k!r} cannot be told apart in the event's text")
            before, _, text = text.partition(mark)
            parts.append(before)
        parts.append(text)
        # the text before the first varying value, then each varying key with the text after it
        self.head, self.rest = parts[0], tuple(zip(self.varying, parts[1:]))

    def fill(self, event: Dict[str, Any]) -> str:
        """``dumps(event)``: the text with ``event``'s varying values (an integer's, a finite
        float's and None's JSON made here, others through :func:`dumps`)."""
        out = [self.head]
        for k, after in self.rest:
            v = event[k]
            if v.__class__ is int:
                out.append(int.__repr__(v))
            elif v is None:
                out.append("null")
            elif v.__class__ is float and isfinite(v):
                out.append(float.__repr__(v))  # as the encoder writes a finite float
            else:
                out.append(dumps(v))
            out.append(after)
        return "".join(out)


class Templated(dict):
    """An event dict written through its :class:`Template` by :func:`dumps` (made by
    :func:`templated`). Its :meth:`copy` is the next event of the same kind: only the
    template's varying keys may be set anew. Read it as any dict; its nested lists and dicts
    may be shared with other events: read-only."""

    __slots__ = ("template",)

    def copy(self) -> "Templated":
        c = Templated(self)  # dict's own init: a Python __init__ here would cost ~1 us per event
        c.template = self.template
        return c


def templated(event: Dict[str, Any], varying: Tuple[str, ...]) -> Dict[str, Any]:
    """``event`` as a :class:`Templated` whose copies differ only in ``varying``; ``event``
    itself when no template can be made for it (its copies are then written the general way)."""
    try:
        t = Template(event, varying)
    except ValueError:
        return event
    d = Templated(event)
    d.template = t
    return d


def merged_line(event: Dict[str, Any], extra: Dict[str, str], memo: Optional[Dict[Any, Any]] = None) -> str:
    """One JSON object: ``event``'s fields, then each ``extra`` key the event does not have
    or has as None (``event`` itself is left as it is). ``extra`` maps a key to its value
    already encoded by :func:`encoded` (a process's /proc details, encoded once per second
    instead of once per event). ``memo``: an empty dict kept with ``extra``; the keys an
    event shares with ``extra`` and the joined rest are then worked out once per set of event
    keys, not per event (~2 us less per event of a tool at 20k/s, issue 18)."""
    if memo is not None:
        keys = event.template if event.__class__ is Templated else tuple(event)  # the same keys
        hit = memo.get(keys)
        if hit is None:
            if len(memo) >= 64:
                memo.clear()
            shared = tuple(k for k in extra if k in event)
            # the rest depends on the shared keys only: one copy of it (it holds argv, which may
            # be long) for every set of event keys sharing the same ones
            tails = memo.get(None)
            if tails is None:
                tails = memo[None] = {}
            tail_s = tails.get(shared)
            if tail_s is None:
                tail_s = tails[shared] = ", ".join(v for k, v in extra.items() if k not in event)
            hit = memo[keys] = (shared, tail_s)
        shared, tail_s = hit
        for k in shared:
            if event[k] is None:
                break  # /proc fills it in: the general way below
        else:
            base = dumps(event)
            if not tail_s:
                return base
            return "{" + tail_s + "}" if base == "{}" else base[:-1] + ", " + tail_s + "}"
    if any(k in event and event[k] is None for k in extra):
        event = {k: v for k, v in event.items() if v is not None or k not in extra}
    tail_s = ", ".join(v for k, v in extra.items() if k not in event)
    base = dumps(event)
    if not tail_s:
        return base
    return "{" + tail_s + "}" if base == "{}" else base[:-1] + ", " + tail_s + "}"


#: key -> its JSON text and the separator (the same dozen keys, every new process)
_KEYS: Dict[str, str] = {}


def encoded(d: Dict[str, Any]) -> Dict[str, str]:
    """``{key: '"key": <JSON of value>'}`` for :func:`merged_line`. Keys are encoded once;
    None, booleans and plain integers are written directly: ``undertow exec`` encodes a new
    process's 12 details per event (24 encoder calls, ~35 us; ~12 us so; issue 18)."""
    out = {}
    for k, v in d.items():
        kj = _KEYS.get(k) if k.__class__ is str else None
        if kj is None:
            kj = dumps(k) + ": "
            if k.__class__ is str and len(_KEYS) < 256:
                _KEYS[k] = kj
        if v is None:
            out[k] = kj + "null"
        elif v is True or v is False:
            out[k] = kj + ("true" if v else "false")
        elif v.__class__ is int:
            out[k] = kj + int.__repr__(v)
        else:
            out[k] = kj + dumps(v)
    return out


def _unsurrogate(s: str) -> str:
    """``s`` with each undecodable byte (U+DC80..U+DCFF) as ``\\xNN`` text and any other
    lone surrogate as ``\\uXXXX`` text: what is left encodes as strict UTF-8."""
    out = []
    for ch in s:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


def event_dict(ev: Event) -> Dict[str, Any]:
    d = ev.to_dict()
    d["fields"] = {k: format_value(v, ev.formats.get(k)) for k, v in ev.fields.items()}
    return clean(d)


class JsonWriter:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def event(self, ev: Event) -> None:
        self.out.write(json.dumps(event_dict(ev), ensure_ascii=False) + "\n")

    def lost(self, rec: Lost) -> None:
        self.out.write(json.dumps({"lost": rec.count, "reason": rec.reason, "cpu": rec.cpu}) + "\n")

    def summary(self, stats: Stats, shown: Optional[int] = None) -> None:
        """``{"summary": {"events": {probe: n}, "lost": {reason: n}}}`` (counts of what was
        read), with ``"shown": n`` when ``--count`` printed fewer events than were read,
        ``"not_drained": n`` for records made before the stop and left unread, and
        ``"after_stop": n`` for records made after it (not shown, not lost)."""
        data: Dict[str, Any] = {"events": stats.events, "lost": stats.lost}
        if shown is not None:
            data["shown"] = shown
        if getattr(stats, "not_drained", 0):
            data["not_drained"] = stats.not_drained
        if getattr(stats, "after_stop", 0):
            data["after_stop"] = stats.after_stop
        self.out.write(json.dumps({"summary": data}) + "\n")
