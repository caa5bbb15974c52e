"""Decoding ftrace ring-buffer pages as read from ``per_cpu/cpuN/trace_pipe_raw``.

Layout (kernel/trace/ring_buffer.c, Documentation/trace/ring-buffer-design.rst;
the offsets come from ``events/header_page`` and ``events/header_event``):

- page: ``u64 timestamp`` (time of the first event), ``local_t commit`` (bytes of
  data; flag bits ``RB_MISSED_EVENTS`` 1<<31: events were lost before this page,
  ``RB_MISSED_STORED`` 1<<30: their count is stored as an ``unsigned long`` right
  after the data), then the data.
- event header: one u32, ``type_len`` (5 low bits) and ``time_delta`` (27 high bits).
  ``type_len`` 1..28: a data record of ``type_len * 4`` bytes follows; 0: the
  next u32 (``array[0]``) holds the data length + 4 and the data follows it;
  29: padding (``time_delta == 0``: the rest of the page is empty, else
  ``array[0]`` bytes of padding); 30: time extend (delta = time_delta +
  array[0] << 27); 31: absolute time stamp (same encoding).

Hostile or truncated pages end decoding cleanly; nothing here raises.
"""

from __future__ import annotations

import struct
import sys
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Collection, Dict, Iterator, List, Optional, Tuple

from ...events import Event, Lost, Record, Stats
from ...kernel.formats import EventFormat, Field, HeaderPage

RB_MISSED_EVENTS = 1 << 31
RB_MISSED_STORED = 1 << 30
_FLAGS = RB_MISSED_EVENTS | RB_MISSED_STORED
PADDING, TIME_EXTEND, TIME_STAMP = 29, 30, 31
#: The field a kprobe/uprobe event fetches ``$comm`` into (compile.py): the COMM column, not a field.
COMM_FIELD = "__comm"

_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
_INT_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
              (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}
# A run shorter than this is decoded record by record (setting up a run costs a
# little more than one record).
_MIN_RUN = 2


def page_header(page: bytes, hp: HeaderPage) -> Tuple[int, int, int]:
    """``(timestamp, end of data, missed)`` of one page (``end`` 0: no usable data).

    ``missed`` is the number of events the kernel dropped before this page
    (-1: some, count unknown; 0: none).
    """
    if len(page) < hp.data_offset:
        return 0, 0, 0
    ts = int.from_bytes(page[hp.timestamp_offset: hp.timestamp_offset + hp.timestamp_size], "little")
    commit = int.from_bytes(page[hp.commit_offset: hp.commit_offset + hp.commit_size], "little")
    flags = commit & _FLAGS
    length = commit & ~_FLAGS & ((1 << (8 * hp.commit_size)) - 1)
    end = min(len(page), hp.data_offset + length)
    missed = 0
    if flags & RB_MISSED_EVENTS:
        missed = -1
        if flags & RB_MISSED_STORED and end + hp.commit_size <= len(page):
            missed = int.from_bytes(page[end: end + hp.commit_size], "little")
    return ts, end, missed


def decode_page(page: bytes, hp: HeaderPage) -> Tuple[List[Tuple[int, int, int]], int]:
    """``([(ts, start, end), ...], missed)`` for one page.

    ``start:end`` is a record (beginning with ``common_type``); ``missed`` is the
    number of events the kernel dropped before this page (-1: some, count unknown).
    """
    recs, missed = _walk_page(page, hp)
    return [(ts, start, end) for ts, _pos, start, end in recs], missed


def _walk_page(page: bytes, hp: HeaderPage) -> Tuple[List[Tuple[int, int, int, int]], int]:
    """``([(ts, header position, start, end), ...], missed)``: :func:`decode_page` with
    where each record's event header begins."""
    out: List[Tuple[int, int, int, int]] = []
    ts, end, missed = page_header(page, hp)
    pos = hp.data_offset
    unpack = _U32.unpack_from
    while pos + 4 <= end:
        (word,) = unpack(page, pos)
        tl = word & 31
        delta = word >> 5
        if tl == 0:
            if pos + 8 > end:
                break
            (ln,) = unpack(page, pos + 4)
            ts += delta
            nxt = pos + 4 + ln
            if ln < 4 or nxt > end:
                break
            out.append((ts, pos, pos + 8, nxt))
        elif tl <= 28:
            ts += delta
            nxt = pos + 4 + tl * 4
            if nxt > end:
                break
            out.append((ts, pos, pos + 4, nxt))
        elif tl == PADDING:
            if delta == 0 or pos + 8 > end:
                break
            (ln,) = unpack(page, pos + 4)
            nxt = pos + 4 + ln
            ts += delta
        elif tl == TIME_EXTEND:
            if pos + 8 > end:
                break
            (hi,) = unpack(page, pos + 4)
            ts += delta + (hi << 27)
            nxt = pos + 8
        else:  # TIME_STAMP: absolute
            if pos + 8 > end:
                break
            (hi,) = unpack(page, pos + 4)
            ts = (delta + (hi << 27)) | (ts & ~((1 << 59) - 1))
            nxt = pos + 8
        if nxt <= pos:
            break
        pos = nxt
    return out, missed


def cut_page(page: bytes, hp: HeaderPage, cutoff: int) -> Tuple[Optional[bytes], int, int]:
    """``(page holding only the records stamped at or before cutoff, or None when none is;
    records kept, records cut)``: for the last pages read after a stop (records made
    after it are not shown). The commit length is rewritten; the missed-events flags and
    a stored count (kept right after the data) go with the shortened page."""
    recs, _missed = _walk_page(page, hp)
    cut = sum(1 for r in recs if r[0] > cutoff)
    if not cut:
        return page, len(recs), 0
    keep = len(recs) - cut
    if not keep:
        return None, 0, cut
    head = recs[keep][1]  # the data ends where the first record after the cutoff begins
    # time extends or padding just before it belong to it: harmless to keep, they carry no record
    old = int.from_bytes(page[hp.commit_offset: hp.commit_offset + hp.commit_size], "little")
    _ts, old_end, _m = page_header(page, hp)
    flags = old & _FLAGS
    new_len = head - hp.data_offset
    stored = b""
    if flags & RB_MISSED_STORED:
        stored = page[old_end: old_end + hp.commit_size]
    out = bytearray(page[:head])
    out[hp.commit_offset: hp.commit_offset + hp.commit_size] = (flags | new_len).to_bytes(hp.commit_size, "little")
    out += stored
    return bytes(out), keep, cut


def count_records(page: bytes, hp: HeaderPage, cutoff: int,
                  skip: Collection[int] = ()) -> Tuple[int, int]:
    """``(records stamped at or before cutoff, after it)`` in one page: the header walk of
    :func:`decode_page` without building anything (counting what a stop leaves unread).

    Records whose ``common_type`` (the payload's first u16) is in ``skip`` are not
    counted: the session's unshown records (task/task_rename followed for names,
    ftrace/kernel_stack attached to an event) are no events of their own."""
    ts, end, _missed = page_header(page, hp)
    pos = hp.data_offset
    unpack = _U32.unpack_from
    u16 = _U16.unpack_from
    n = after = 0
    while pos + 4 <= end:
        (word,) = unpack(page, pos)
        tl = word & 31
        if tl <= 28:
            ts += word >> 5
            if tl:
                body = pos + 4
                nxt = body + tl * 4
            else:
                if pos + 8 > end:
                    break
                (ln,) = unpack(page, pos + 4)
                if ln < 4:
                    break
                body = pos + 8
                nxt = pos + 4 + ln
            if nxt > end:
                break
            if skip and body + 2 <= nxt and u16(page, body)[0] in skip:
                pass
            else:
                n += 1
                if ts > cutoff:
                    after += 1
        elif pos + 8 > end:
            break
        elif tl == PADDING:
            if not word >> 5:
                break
            nxt = pos + 4 + unpack(page, pos + 4)[0]
            ts += word >> 5
        elif tl == TIME_EXTEND:
            ts += (word >> 5) + (unpack(page, pos + 4)[0] << 27)
            nxt = pos + 8
        else:
            ts = ((word >> 5) + (unpack(page, pos + 4)[0] << 27)) | (ts & ~((1 << 59) - 1))
            nxt = pos + 8
        if nxt <= pos:
            break
        pos = nxt
    return n - after, after


def iter_pages(data: bytes, page_size: int) -> Iterator[bytes]:
    """Split a read of several pages into pages (a read returns whole pages)."""
    for off in range(0, len(data), page_size):
        yield data[off: off + page_size]


# ----------------------------------------------------------------------------
# The reader: pages -> Event records.

if TYPE_CHECKING:
    Task = Tuple[int, str]
    Frames = List[Tuple[int, Optional[str], int, Optional[str]]]


class EventType:
    """What :class:`PageReader` knows about one event id (``common_type``).

    ``decode`` is the format's record decoder (``EventFormat.decoder()``), used
    record by record; ``keep`` the fields to show (``None``: every non-common
    field), ``formats`` the display formats shared by its events. ``runs``
    caches, per record step, the generated run decoder (see :func:`compile_run`);
    ``bulk`` is False when the format has variable-size data (no fixed step).
    """

    __slots__ = ("fmt", "probe", "decode", "keep", "formats", "runs", "bulk", "hook")

    def __init__(self, fmt: EventFormat, probe: str, keep: Optional[List[str]],
                 formats: Dict[str, str], hook: Optional[Callable[[Dict[str, Any]], None]] = None) -> None:
        self.fmt, self.probe, self.keep, self.formats = fmt, probe, keep, formats
        self.decode = fmt.decoder()
        self.runs: Dict[Tuple[int, int], Any] = {}
        #: records of an unshown event go to hook(fields), not to the output
        self.hook = hook
        self.bulk = hook is None and _bulk_fields(fmt, keep) is not None


class PageReader:
    """Decode ``trace_pipe_raw`` pages of one session into :class:`Event` and :class:`Lost`.

    ``task(tid) -> (tgid, comm)`` names a thread (``task_cache`` is its cache,
    read first: a dict ``tid -> (tgid, comm)``); ``frames(page, start, end)``
    decodes an ``ftrace:kernel_stack`` record (``struct stack_entry``), attached to
    the previous event of the same CPU.

    Consecutive records of one fixed-size event type (the common case: one
    probe under load) are decoded in bulk by a generated function: one
    ``struct.iter_unpack`` over the run, one tuple per record holding only the
    header word, ``common_type``, ``common_pid`` and the shown fields, and one
    :class:`Event` built from it. Anything else (time extends, padding, other
    types, variable-size records, stacks) goes record by record.
    """

    def __init__(self, hp: HeaderPage, stats: Stats, task: Callable[[int], Task],
                 task_cache: Dict[int, Task], frames: Optional[Callable[[bytes, int, int], Frames]] = None) -> None:
        self.hp, self.stats, self.task, self.task_cache, self.frames = hp, stats, task, task_cache, frames
        self.types: Dict[int, EventType] = {}
        self.stack_id: Optional[int] = None
        self.last_event: Dict[int, Event] = {}     # cpu -> last event (kernel_stack attaches to it)
        self.page_lost: Dict[int, int] = {}        # cpu -> sum of the pages' stored missed counts
        self.overrun_known: Dict[int, int] = {}    # cpu -> overruns known to have happened (so reported)
        self.render: Any = None

    def overruns(self, cpu: int, at_least: int, out: List[Record]) -> None:
        """The kernel overwrote at least ``at_least`` records of ``cpu`` so far: report (in
        ``stats`` and in-band) what was not reported yet.

        Two sources say so: a page's stored missed count (the kernel's overrun counter's
        growth between two reader-page swaps, ring_buffer_read_page/rb_get_reader_page,
        present when the page had room; summed here) and the counter itself
        (``per_cpu/cpuN/stats``, read by the session). Their intervals overlap, so each is
        taken as a lower bound of the same running total, never added to the other: the
        total reported equals the counter's last value, exactly, and nothing twice."""
        known = self.overrun_known.get(cpu, 0)
        if at_least > known:
            self.overrun_known[cpu] = at_least
            self.stats.count_lost("overrun", at_least - known)
            out.append(Lost(at_least - known, "overrun", cpu))

    def set_render(self, writer: Any) -> bool:
        """Format records of fixed-size events straight into text lines with ``writer``
        (``output.text.TextWriter.line_source``): runs append ``str`` lines instead of
        Events (no Event, no fields dict). Not with stacks (they attach to Events).
        Returns whether it is on."""
        if self.stack_id is not None:
            return False
        self.render = writer
        for ev in self.types.values():
            ev.runs.clear()
        return True

    def add(self, fmt: EventFormat, probe: str, keep: Optional[List[str]] = None,
            formats: Optional[Dict[str, str]] = None) -> None:
        """Show records of ``fmt`` as events of ``probe``."""
        self.types[fmt.id] = EventType(fmt, probe, keep, formats if formats is not None else {})

    def add_hook(self, fmt: EventFormat, hook: Callable[[Dict[str, Any]], None]) -> None:
        """Pass records of ``fmt`` to ``hook(fields)`` (with ``common_pid``), unshown and uncounted."""
        self.types[fmt.id] = EventType(fmt, "", None, {}, hook)

    def unshown_ids(self) -> List[int]:
        """Event ids whose records are not events of their own (hooks, stacks)."""
        return [i for i, t in self.types.items() if t.hook is not None or i == self.stack_id]

    def add_stack(self, fmt: EventFormat) -> None:
        """Attach ``ftrace:kernel_stack`` records to the preceding event."""
        self.stack_id = fmt.id
        self.types[fmt.id] = EventType(fmt, "stack", None, {})

    def page(self, page: bytes, cpu: int, out: List[Record]) -> None:
        """Append the page's records to ``out``; counts go to ``stats``."""
        ts, end, missed = page_header(page, self.hp)
        counts: Dict[str, int] = {}
        render = self.render
        if render is not None and render.t0 is None and end >= self.hp.data_offset + 4:
            # lines are timed from the first record read (the Event path does the same)
            word = _U32.unpack_from(page, self.hp.data_offset)[0]
            render.t0 = ts + (word >> 5 if word & 31 <= 28 else 0)
        if missed:
            if missed > 0:
                self.page_lost[cpu] = self.page_lost.get(cpu, 0) + missed
                self.overruns(cpu, self.page_lost[cpu], out)
            else:
                out.append(Lost(0, "overrun", cpu))  # some, the count comes with the counter
        types_get = self.types.get
        stack_id = self.stack_id
        task_get = self.task_cache.get
        task = self.task
        u32 = _U32.unpack_from
        mv = None
        pos = self.hp.data_offset
        while pos + 4 <= end:
            (word,) = u32(page, pos)
            tl = word & 31
            if tl <= 28:
                if tl:
                    start = pos + 4
                    nxt = start + tl * 4
                    ln = 0
                else:
                    if pos + 8 > end:
                        break
                    (ln,) = u32(page, pos + 4)
                    start = pos + 8
                    nxt = pos + 4 + ln
                    if ln < 4:
                        break
                if nxt > end:
                    break
                if nxt - start < 8:
                    ts += word >> 5
                    pos = nxt
                    continue
                etype = page[start] | (page[start + 1] << 8)
                ev = types_get(etype)
                if ev is None:
                    ts += word >> 5
                    pos = nxt
                    continue
                if ev.bulk and etype != stack_id and end - pos >= _MIN_RUN * (nxt - pos):
                    run = ev.runs.get((tl, ln))
                    if run is None:
                        run = ev.runs[(tl, ln)] = compile_run(ev, tl, ln, nxt - pos, start - pos, render)
                    if run is not False:
                        if mv is None:
                            mv = memoryview(page)
                        pos2, ts2, k = run(mv, pos, end, ts, cpu, out, task_get, task)
                        if k:
                            pos, ts = pos2, ts2
                            counts[ev.probe] = counts.get(ev.probe, 0) + k
                            if stack_id is not None:
                                self.last_event[cpu] = out[-1]  # type: ignore[assignment]
                            continue
                ts += word >> 5
                pos = nxt
                if ev.hook is not None:
                    try:
                        ev.hook(ev.decode(page, start, nxt))
                    except Exception:  # noqa: BLE001 - a name we cannot follow is not fatal
                        pass
                    continue
                if etype == stack_id:
                    prev = self.last_event.get(cpu)
                    if prev is not None and prev.stack is None and self.frames is not None:
                        prev.stack = self.frames(page, start, nxt)
                    continue
                e = self._one(ev, page, start, nxt, ts, cpu, out, task_get)
                if e is not None:
                    counts[ev.probe] = counts.get(ev.probe, 0) + 1
                    if stack_id is not None:
                        self.last_event[cpu] = e
                continue
            delta = word >> 5
            if tl == PADDING:
                if delta == 0 or pos + 8 > end:
                    break
                (ln,) = u32(page, pos + 4)
                nxt = pos + 4 + ln
                ts += delta
            elif tl == TIME_EXTEND:
                if pos + 8 > end:
                    break
                (hi,) = u32(page, pos + 4)
                ts += delta + (hi << 27)
                nxt = pos + 8
            else:  # TIME_STAMP: absolute
                if pos + 8 > end:
                    break
                (hi,) = u32(page, pos + 4)
                ts = (delta + (hi << 27)) | (ts & ~((1 << 59) - 1))
                nxt = pos + 8
            if nxt <= pos:
                break
            pos = nxt
        for name, n in counts.items():
            self.stats.count_event(name, n)

    def _one(self, ev: EventType, page: bytes, start: int, end: int, ts: int, cpu: int,
             out: List[Record], task_get: Callable[[int], Optional[Task]]) -> Optional[Event]:
        try:
            d = ev.decode(page, start, end)
        except Exception:  # noqa: BLE001 - a record we cannot decode is reported, not fatal
            self.stats.count_lost("decode", 1)
            out.append(Lost(1, "decode", cpu, ev.probe, bytes(page[start:end])))
            return None
        tid = d.get("common_pid", 0)
        comm = d.pop(COMM_FIELD, None)  # the name at the event, when the probe fetched it
        if ev.keep is not None:
            fields = {k: d[k] for k in ev.keep if k in d}
        else:
            fields = {k: v for k, v in d.items() if not k.startswith("common_") and not k.startswith("__probe")}
        t = task_get(tid)
        if t is None:
            t = self.task(tid)
        if comm.__class__ is str:
            t = (t[0], comm)
        e = Event(ts, cpu, t[0], tid, t[1], ev.probe, fields, None, None, None, ev.formats)
        out.append(e)
        return e


def _shown(fmt: EventFormat, keep: Optional[List[str]]) -> List[Field]:
    """The fields an event shows, in the order the record decoder gives them."""
    if keep is not None:
        by = {f.name: f for f in fmt.fields}
        return [by[k] for k in keep if k in by]
    fields = [f for f in fmt.fields if not f.name.startswith("common_") and not f.name.startswith("__probe")]
    return sorted(fields, key=lambda f: f.offset)


def _field_code(f: Field) -> Optional[Tuple[str, bool]]:
    """``(struct code, is_string)`` giving the value ``EventFormat.decoder()`` gives,
    or None when only the record decoder knows (arrays of ints, 16-byte ints)."""
    if f.dynamic is not None or f.array_len == 0 or f.size <= 0:
        return None
    if f.array_len is not None:
        if f.is_string:
            return f"{f.size}s", True
        return None
    if f.size in (1, 2, 4, 8):
        return _INT_CODES[(f.size, f.signed and not f.is_pointer)], False
    if f.size == 16 and not f.type.startswith("struct"):
        return None
    return f"{f.size}s", False


def _bulk_fields(fmt: EventFormat, keep: Optional[List[str]]) -> Optional[List[Tuple[Field, str, bool]]]:
    """The shown fields with their codes when records of ``fmt`` have one fixed size
    and every shown field is a plain value, else None."""
    if any(f.dynamic is not None or f.array_len == 0 or f.size <= 0 for f in fmt.fields):
        return None  # variable-size records
    names = {f.name for f in fmt.fields}
    if "common_type" not in names or "common_pid" not in names:
        return None
    out = []
    for f in _shown(fmt, keep):
        c = _field_code(f)
        if c is None:
            return None
        out.append((f, c[0], c[1]))
    return out


def compile_run(ev: EventType, tl: int, ln: int, step: int, hdr: int, render: Any = None) -> Any:
    """A function decoding a run of records of ``ev`` that all have the header of the
    first (``type_len`` ``tl``, ``array[0]`` ``ln``; ``step`` bytes each, data after
    ``hdr`` bytes), or False when the records are too short for the format.

    ``run(mv, pos, end, ts, cpu, out, task_get, task) -> (pos, ts, count)`` appends one
    Event per record from ``pos`` while the header and ``common_type`` match, and
    returns where it stopped (at least one record is consumed: the caller checked
    the first). Field values are those of ``EventFormat.decoder()`` (same struct
    codes; strings cut at NUL and decoded as UTF-8 with replacement).

    With ``render`` (a TextWriter, see :meth:`PageReader.set_render`) it appends the
    text line of each record instead: the writer's ``line_source`` expression evaluated
    on the unpacked values (~1 us per record less than an Event and its formatting).
    """
    fmt = ev.fmt
    shown = _bulk_fields(fmt, ev.keep)
    if shown is None or step - hdr < fmt.fixed_size:
        return False
    bo = "<" if sys.byteorder == "little" else ">"
    ctl = fmt.field("common_type")
    cpid = fmt.field("common_pid")
    if (ctl.size, cpid.size) != (2, 4):
        return False
    # one variable per distinct field (a shown field may also be common_pid)
    cols: Dict[str, Tuple[int, int, str]] = {"common_type": (ctl.offset, 2, "H"), "common_pid": (cpid.offset, 4, "i")}
    var = {"common_type": "_ct", "common_pid": "_pid"}
    items = []
    values = []  # (name, expression of the Event's value, struct code)
    for i, (f, code, is_str) in enumerate(shown):
        if f.name not in var:
            var[f.name] = f"_u{i}"
            cols[f.name] = (f.offset, f.size, code)
        v = var[f.name]
        expr = f"{v}.partition(b'\\0')[0].decode('utf-8', 'replace')" if is_str else v
        items.append(f"{f.name!r}: {expr}")
        if all(f.name != n for n, _e, _c in values):  # a name shown twice is one dict key
            values.append((f.name, expr, cols[f.name][2] if not is_str else ""))
    layout = [bo, "I" if hdr == 4 else "II"]
    order = []
    at = 0
    for name, (off, size, code) in sorted(cols.items(), key=lambda kv: kv[1][0]):
        if off < at:
            return False  # overlapping fields: leave it to the record decoder
        if off > at:
            layout.append(f"{off - at}x")
        layout.append(code)
        order.append(var[name])
        at = off + size
    if at > step - hdr:
        return False
    if step - hdr > at:
        layout.append(f"{step - hdr - at}x")
    st = struct.Struct("".join(layout))
    if st.size != step:
        return False
    targets = ", ".join((["_w"] if hdr == 4 else ["_w", "_ln"]) + order)
    check = f"(_w & 31) != {tl} or _ct != {fmt.id}" + (f" or _ln != {ln}" if hdr == 8 else "")
    env: Dict[str, Any] = {"_iter": st.iter_unpack, "_Event": Event, "_new": object.__new__,
                           "_probe": ev.probe, "_formats": ev.formats, "len": len}
    line = render.line_source(ev.probe, [v[0] for v in values], ev.formats,
                              [v[2] for v in values]) if render is not None else None
    if line is not None:
        assert not set(line["env"]) & set(env)
        env.update(line["env"])
        env["_comm"] = render.comm
        # the writer's variables: ts cpu tgid tid comm v0..
        binds = [f"        v{i} = {e}" for i, (_n, e, _c) in enumerate(values)]
        src = "\n".join([
            "def run(mv, pos, end, ts, cpu, out, task_get, task):",
            "    n0 = len(out)",
            "    append = out.append",
            "    last = -1",
            f"    {line['setup']}",
            f"    for {targets} in _iter(mv[pos:pos + (end - pos) // {step} * {step}]):",
            f"        if {check}:",
            "            break",
            "        ts += _w >> 5",
            "        if _pid != last:",
            "            last = tid = _pid",
            "            t = task_get(_pid)",
            "            if t is None:",
            "                t = task(_pid)",
            "            tgid = t[0]",
            "            comm = _comm(t[1])",
            f"            pre = {line['prefix']}",
            *binds,
            f"        append({line['line']})",
            "    k = len(out) - n0",
            f"    return pos + k * {step}, ts, k",
        ])
        exec(compile(src, f"<text run {fmt.full_name}>", "exec"), env)  # noqa: S102 - names from a format file, checked identifiers
        return env["run"]
    src = "\n".join([
        "def run(mv, pos, end, ts, cpu, out, task_get, task):",
        "    n0 = len(out)",
        "    append = out.append",
        "    last = -1",
        f"    for {targets} in _iter(mv[pos:pos + (end - pos) // {step} * {step}]):",
        f"        if {check}:",
        "            break",
        "        ts += _w >> 5",
        "        if _pid != last:",
        "            last = _pid",
        "            t = task_get(_pid)",
        "            if t is None:",
        "                t = task(_pid)",
        "            tgid, comm = t",
        # Event.__init__ bypassed: object.__new__ + one store per slot costs about
        # half of the call (every slot is set; tests compare with the record path)
        "        e = _new(_Event)",
        "        e.ts = ts; e.cpu = cpu; e.pid = tgid; e.tid = _pid; e.comm = comm; e.probe = _probe",
        "        e.fields = {" + ", ".join(items) + "}",
        "        e.stack = None; e.ustack = None; e.errors = {}; e.formats = _formats",
        "        append(e)",
        "    k = len(out) - n0",
        f"    return pos + k * {step}, ts, k",
    ])
    exec(compile(src, f"<run {fmt.full_name}>", "exec"), env)  # noqa: S102 - generated from a format file's names (repr'd)
    return env["run"]
