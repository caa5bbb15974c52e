"""Parse tracefs ``format`` files and decode the raw event records they describe.

Every trace event directory (``events/<group>/<event>/format``) describes the
layout of the event's record in the ring buffer: the ``struct trace_entry``
common fields (``common_type``, ``common_flags``, ``common_preempt_count``,
``common_pid``, and ``common_padding`` on some 3.x kernels) followed by the
event's own fields, each as ``field:<C declaration>; offset:N; size:N; signed:N;``,
and the ``print fmt:`` the kernel uses to render it (see
Documentation/trace/events.rst, "Event formats", and
kernel/trace/trace_events.c:f_show()).

Parsing works on text so that format files recorded on other kernels can be
unit-tested (tests/fixtures/formats/). :meth:`EventFormat.decoder` compiles a
``struct.Struct`` for the fixed part of a record once, then decodes records as
found in ``trace_pipe_raw`` pages or perf ``PERF_SAMPLE_RAW`` data.

Decoded values (the decoder's documented choices):

- integers: ``int`` with the field's size and signedness (pointers unsigned);
- ``char`` arrays (``char comm[16]``) and ``__data_loc char[]`` strings: ``str``
  cut at the first NUL, decoded as UTF-8 with ``errors="replace"``; pass
  ``raw_strings=True`` to get the NUL-trimmed ``bytes`` instead (lossless: paths
  and process names on a hostile host need not be UTF-8);
- byte arrays (``u8``/``__u8``/``unsigned char``, e.g. ``__u8 saddr[4]``) and
  fields of unknown element type (``__data_loc cpumask_t`` is a bitmap of
  ``unsigned long`` and decodes as a list of ints): ``bytes``;
- other fixed or dynamic arrays of integers: ``list`` of ``int``;
- a ``__data_loc``/``__rel_loc`` word pointing outside the record: the raw
  ``int`` word is kept (never an ``IndexError``);
- fields that do not fit in a truncated record are left out of the dict.
"""

from __future__ import annotations

import re
import struct
import sys
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ..errors import UndertowError, UnknownFieldError, did_you_mean

__all__ = [
    "Field",
    "EventFormat",
    "FormatError",
    "HeaderPage",
    "HeaderEvent",
    "parse_format",
    "parse_fields",
    "parse_header_page",
    "parse_header_event",
    "split_args",
]

if TYPE_CHECKING:
    Buffer = Union[bytes, bytearray, memoryview]
    Decoder = Callable[..., Dict[str, Any]]


class FormatError(UndertowError, ValueError):
    """A ``format`` file could not be parsed at all (not a trace event format)."""


# Element sizes of the C type names that appear in format files. ``long`` and
# pointers depend on the kernel's word size: see EventFormat.long_size.
_FIXED_SIZES = {
    "char": 1, "signed char": 1, "unsigned char": 1, "u8": 1, "s8": 1, "__u8": 1, "__s8": 1,
    "bool": 1, "_Bool": 1, "int8_t": 1, "uint8_t": 1,
    "short": 2, "unsigned short": 2, "short int": 2, "short unsigned int": 2, "u16": 2, "s16": 2,
    "__u16": 2, "__s16": 2, "__be16": 2, "__le16": 2, "int16_t": 2, "uint16_t": 2,
    "int": 4, "unsigned int": 4, "unsigned": 4, "signed": 4, "u32": 4, "s32": 4, "__u32": 4,
    "__s32": 4, "__be32": 4, "__le32": 4, "pid_t": 4, "uid_t": 4, "gid_t": 4, "dev_t": 4,
    "int32_t": 4, "uint32_t": 4,
    "long long": 8, "unsigned long long": 8, "long long int": 8, "long long unsigned int": 8,
    "u64": 8, "s64": 8, "__u64": 8, "__s64": 8, "__be64": 8, "__le64": 8, "int64_t": 8,
    "uint64_t": 8,
}
_LONG_TYPES = {"long", "unsigned long", "long int", "long unsigned int", "size_t", "ssize_t",
               "cpumask_t", "unsigned long int"}
_BYTE_TYPES = {"u8", "__u8", "unsigned char", "uint8_t"}
_CHAR_TYPES = {"char", "signed char"}
_INT_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
              (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}
_QUALIFIERS = frozenset({"const", "volatile", "__user", "__rcu", "__percpu", "__iomem", "__force"})
# Format lines are read with these sets and str methods, not regular expressions: compiling
# the patterns cost ~0.6 ms of every one-liner's start-up (a one-liner reads a few formats).
_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_DIGIT = frozenset("0123456789")


class Field:
    """One ``field:`` line of a format file (a member of the event's entry struct).

    ``type`` is the declaration with the name removed (``char[16]``,
    ``__data_loc char[]``, ``const char *``); ``elem_type`` the element type with
    qualifiers, array brackets and ``__data_loc``/``__rel_loc`` stripped
    (``char``, ``u64``). ``array_len`` is the element count of a fixed array
    (``char comm[16]`` -> 16), ``0`` for a flexible array at the end of the
    record (``char buf[]``, size 0), ``None`` otherwise. ``dynamic`` is
    ``"data_loc"`` (a u32: low 16 bits offset from the record start, high 16
    bits length) or ``"rel_loc"`` (same, offset counted from the end of this
    4-byte field; kernel 5.18+). ``is_user_pointer`` is left False: the format
    file does not say; callers that know (syscall arguments) decide.
    """

    __slots__ = ("name", "type", "offset", "size", "signed", "is_common", "array_len", "dynamic", "is_string",
                 "is_pointer", "is_user_pointer", "elem_type", "decl")

    def __init__(self, name: str, type: str, offset: int, size: int, signed: bool, is_common: bool = False,
                 array_len: Optional[int] = None, dynamic: Optional[str] = None, is_string: bool = False,
                 is_pointer: bool = False, is_user_pointer: bool = False, elem_type: str = "",
                 decl: str = "") -> None:
        self.name, self.type, self.offset, self.size, self.signed = name, type, offset, size, signed
        self.is_common, self.array_len, self.dynamic, self.is_string = is_common, array_len, dynamic, is_string
        self.is_pointer, self.is_user_pointer, self.elem_type, self.decl = (is_pointer, is_user_pointer,
                                                                            elem_type, decl)

    @property
    def is_array(self) -> bool:
        return self.array_len is not None or self.dynamic is not None


class EventFormat:
    """A parsed ``events/<group>/<event>/format`` file.

    ``fields`` lists the common fields first, in file order. ``print_fmt`` is
    the C format string (adjacent literals joined, escapes decoded) and
    ``print_args`` its argument expressions split at top-level commas (split when first
    asked: nothing on the tracing path needs them).
    ``long_size`` is the kernel word size guessed from pointer/``long`` fields
    (default: this machine's).
    """

    __slots__ = ("group", "name", "id", "fields", "print_fmt", "print_fmt_raw", "long_size", "text", "_by_name",
                 "_decoders", "_print_args")

    def __init__(self, group: str, name: str, id: int, fields: Optional[List[Field]] = None, print_fmt: str = "",
                 print_fmt_raw: str = "", long_size: int = struct.calcsize("P"), text: str = "") -> None:
        self.group, self.name, self.id = group, name, id
        self.fields = [] if fields is None else fields
        self.print_fmt, self.print_fmt_raw, self.long_size, self.text = print_fmt, print_fmt_raw, long_size, text
        self._by_name: Dict[str, Field] = {}
        self._decoders: Dict[Tuple[str, bool], Decoder] = {}
        self._print_args: Optional[List[str]] = None

    @property
    def print_args(self) -> List[str]:
        args = self._print_args
        if args is None:
            _fmt, end = _read_string_literals(self.print_fmt_raw)
            rest = self.print_fmt_raw[end:].lstrip()
            if rest.startswith(","):
                rest = rest[1:]
            args = self._print_args = split_args(rest) if rest.strip() else []
        return args

    @property
    def full_name(self) -> str:
        return f"{self.group}:{self.name}" if self.group else self.name

    @property
    def common_fields(self) -> List[Field]:
        return [f for f in self.fields if f.is_common]

    @property
    def event_fields(self) -> List[Field]:
        """The event's own fields (what bpftrace calls ``args``)."""
        return [f for f in self.fields if not f.is_common]

    @property
    def fixed_size(self) -> int:
        """Bytes needed for every fixed-position field (dynamic data excluded)."""
        return max((f.offset + f.size for f in self.fields), default=0)

    def field(self, name: str) -> Field:
        """The field called ``name``; :class:`UnknownFieldError` (a LookupError) with
        the closest names as hint when absent."""
        if not self._by_name:
            self._by_name = {f.name: f for f in self.fields}
        try:
            return self._by_name[name]
        except KeyError:
            names = [f.name for f in self.event_fields] or [f.name for f in self.fields]
            raise UnknownFieldError(
                f"event {self.full_name} has no field {name!r}",
                hints=[did_you_mean(name, [f.name for f in self.fields]),
                       "fields: " + ", ".join(names)],
            ) from None

    def has_field(self, name: str) -> bool:
        return any(f.name == name for f in self.fields)

    def decoder(self, raw_strings: bool = False, byteorder: str = sys.byteorder) -> Decoder:
        """A function ``decode(data, offset=0, end=None) -> dict`` for one record.

        ``data[offset:end]`` is one record starting at ``common_type`` (``end``
        defaults to ``len(data)``; flexible arrays run to ``end``, which may
        include the ring buffer's 4-byte alignment padding). Compiled once per
        (raw_strings, byteorder) and cached.
        """
        key = (byteorder, raw_strings)
        dec = self._decoders.get(key)
        if dec is None:
            dec = _compile_decoder(self, raw_strings, byteorder)
            self._decoders[key] = dec
        return dec

    def decode(self, data: Buffer, offset: int = 0, end: Optional[int] = None) -> Dict[str, Any]:
        """Decode one record with the default decoder (see :meth:`decoder`)."""
        return self.decoder()(data, offset, end)


# --------------------------------------------------------------------- parsing

_ATTR = (r"\s*(\w+)\s*:\s*(-?\w+)\s*",)  # compiled by the rare line _field_fast cannot read


def _field_fast(line: str) -> Optional[Tuple[str, Dict[str, int]]]:
    """The line every kernel since 2.6.32 writes: ``field:DECL;`` then ``offset:N;``,
    ``size:N;`` and ``signed:N;`` (blanks before each); None for anything else."""
    s = line.strip()
    if not s.startswith("field:"):
        return None
    parts = s[6:].split(";")
    if len(parts) != 5 or parts[4].strip():
        return None
    decl = parts[0].strip()
    attrs: Dict[str, int] = {}
    for part, key in zip(parts[1:4], ("offset", "size", "signed")):
        part = part.lstrip()
        value = part[len(key) + 1:]
        if not part.startswith(key + ":") or not value.isdecimal():
            return None
        attrs[key] = int(value)
    return (decl, attrs) if decl else None


def _parse_field_line(line: str) -> Optional[Tuple[str, Dict[str, int]]]:
    """``field:DECL; offset:N; size:N; signed:N;`` -> (DECL, {offset, size, signed})."""
    fast = _field_fast(line)
    if fast is not None:
        return fast
    s = line.strip()
    if not s.startswith("field"):
        return None
    colon = s.find(":")
    if colon < 0:
        return None
    # "field:decl" (events) or "field: decl" (header_page); very old kernels wrote
    # "field special:decl".
    parts = s[colon + 1 :].split(";")
    decl = parts[0].strip()
    attrs: Dict[str, int] = {}
    for p in parts[1:]:
        m = re.fullmatch(*_ATTR, p) if p.strip() else None
        if m:
            try:
                attrs[m.group(1)] = int(m.group(2), 0)
            except ValueError:
                continue
    if not decl or "offset" not in attrs or "size" not in attrs:
        return None
    return decl, attrs


def _base_type(t: str) -> str:
    """``t`` without the qualifier words (``const``, ``__user``...), blanks collapsed."""
    out: List[str] = []
    i, n = 0, len(t)
    while i < n:
        if t[i] in _WORD:
            j = i + 1
            while j < n and t[j] in _WORD:
                j += 1
            out.append(" " if t[i:j] in _QUALIFIERS else t[i:j])
            i = j
        else:
            out.append(t[i])
            i += 1
    return " ".join("".join(out).split())


def _decl_name(d: str) -> Optional[Tuple[int, str, Optional[str], Optional[str]]]:
    """The name a declaration ends with and its optional ``[N]``: ``(start of the name,
    name, "[N]" or None, "N" or None)``, None when it does not end with a name. The name
    is the leftmost one that reaches the end: ``u8 buf [ 16 ]`` -> (3, "buf", "[ 16 ]", " 16 ")."""
    e = len(d.rstrip())
    if e and d[e - 1] == "]":
        last_close = d.rfind("]", 0, e - 1)
        opens = [k for k in range(last_close + 1, e - 1) if d[k] == "["]
    else:
        opens = []
    for k in opens + [e]:  # a name before one of these '[' (leftmost first), else at the end
        head_end = len(d[:k].rstrip())
        j = head_end
        while j > 0 and d[j - 1] in _WORD:
            j -= 1
        while j < head_end and d[j] in _DIGIT:  # a name does not start with a digit
            j += 1
        if j < head_end:
            if k == e:
                return j, d[j:head_end], None, None
            return j, d[j:head_end], d[k:e], d[k + 1:e - 1]
    return None


def _make_field(decl: str, attrs: Dict[str, int]) -> Field:
    d = decl.strip()
    dynamic: Optional[str] = None
    for kw, kind in (("__data_loc", "data_loc"), ("__rel_loc", "rel_loc")):
        if d.startswith(kw + " ") or d.startswith(kw + "\t"):
            dynamic = kind
            break
    # Name: the last identifier, with an optional [N] / [] / [SYM] suffix.
    found = _decl_name(d)
    if found is None:
        raise FormatError(f"cannot read field declaration {decl!r}")
    start, name, bracket, dim = found
    head = d[:start].rstrip()
    type_text = head + (bracket.replace(" ", "") if bracket else "") if head else name
    offset, size = attrs["offset"], attrs["size"]
    is_pointer = "*" in head
    elem = head
    if dynamic:
        elem = elem.split(None, 1)[1] if " " in elem or "\t" in elem else ""
    elem = _base_type(elem.replace("[]", "").replace("*", " * ")).replace(" *", "*")
    array_len: Optional[int] = None
    if not dynamic:
        if bracket is not None:
            if dim is not None and dim.strip().isdigit():
                array_len = int(dim.strip())
            elif size == 0:
                array_len = 0  # flexible array member: runs to the end of the record
            else:
                esz = _elem_size(elem, 0)
                array_len = size // esz if esz else None
        elif size == 0:
            array_len = 0  # 3.x kernels: "char buf; size:0" is a flexible array
    if "signed" in attrs:
        signed = bool(attrs["signed"])
    else:  # kernels before 2.6.32 had no signed: attribute
        signed = not (elem.startswith("unsigned") or elem.startswith("u") or elem.startswith("__u")
                      or is_pointer)
    is_string = (not is_pointer) and elem in _CHAR_TYPES and (array_len is not None or dynamic is not None)
    if bracket is None and dynamic is None and elem in _CHAR_TYPES and size == 0:
        is_string = True
    return Field(
        name=name,
        type=" ".join(type_text.split()),
        offset=offset,
        size=size,
        signed=signed,
        is_common=name.startswith("common_"),
        array_len=array_len,
        dynamic=dynamic,
        is_string=is_string,
        is_pointer=is_pointer,
        elem_type=elem,
        decl=decl,
    )


_FIELD_CACHE: Dict[Tuple[str, int, int, int], Dict[str, Any]] = {}


def _field(decl: str, attrs: Dict[str, int]) -> Field:
    """:func:`_make_field`, memoised on the line's contents (common fields repeat in
    every format); each call still returns a fresh Field."""
    key = (decl, attrs["offset"], attrs["size"], attrs.get("signed", -1))
    args = _FIELD_CACHE.get(key)
    if args is None:
        if len(_FIELD_CACHE) > 16384:
            _FIELD_CACHE.clear()
        made = _make_field(decl, attrs)
        args = _FIELD_CACHE[key] = tuple(getattr(made, n) for n in Field.__slots__)
    return Field(*args)


def _elem_size(elem: str, long_size: int) -> int:
    if elem.endswith("*"):
        return long_size
    if elem in _FIXED_SIZES:
        return _FIXED_SIZES[elem]
    if elem in _LONG_TYPES:
        return long_size
    return 0


def parse_fields(text: str) -> List[Field]:
    """Every ``field:`` line of ``text`` (also works on ``header_page``)."""
    out = []
    for line in text.splitlines():
        parsed = _parse_field_line(line)
        if parsed is not None:
            out.append(_field(*parsed))
    return out


def _unescape_c(body: str) -> str:
    out = []
    i, n = 0, len(body)
    simple = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
              "b": "\b", "f": "\f", "v": "\v", "0": "\0", "?": "?", "e": "\x1b"}
    while i < n:
        c = body[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in "01234567":
            j = i + 1
            while j < n and j < i + 4 and body[j] in "01234567":
                j += 1
            out.append(chr(int(body[i + 1 : j], 8)))
            i = j
        elif nxt == "x":
            j = i + 2
            while j < n and body[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(chr(int(body[i + 2 : j] or "0", 16) & 0xFF))
            i = j
        else:
            out.append(simple.get(nxt, nxt))
            i += 2
    return "".join(out)


def _read_string_literals(s: str) -> Tuple[str, int]:
    """Adjacent C string literals at the start of ``s``: (joined decoded text, end index)."""
    i, n = 0, len(s)
    parts = []
    while True:
        while i < n and s[i] in " \t\r\n":
            i += 1
        if i >= n or s[i] != '"':
            break
        j = i + 1
        while j < n and s[j] != '"':
            j += 2 if s[j] == "\\" else 1
        parts.append(_unescape_c(s[i + 1 : min(j, n)]))
        i = j + 1
    return "".join(parts), min(i, n)


_ARG_SPECIAL = (r"[\"'()\[\]{},]",)  # compiled on first use (printing a print fmt's arguments)
_STR_END = {'"': (r'(?:[^"\\]|\\.)*"', re.S), "'": (r"(?:[^'\\]|\\.)*'", re.S)}


def split_args(text: str) -> List[str]:
    """Split a C argument list at top-level commas (outside (), [], {} and literals)."""
    args: List[str] = []
    depth = 0
    start = 0
    pos = 0
    n = len(text)
    search = re.compile(*_ARG_SPECIAL).search
    while pos < n:
        m = search(text, pos)
        if m is None:
            break
        c = m.group()
        pos = m.end()
        if c == '"' or c == "'":
            e = re.compile(*_STR_END[c]).match(text, pos)
            pos = e.end() if e else n
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            if depth:
                depth -= 1
        elif depth == 0:  # a top-level comma
            args.append(text[start : pos - 1].strip())
            start = pos
    last = text[start:].strip()
    if last or args:
        args.append(last)
    return args


def _guess_long_size(fields: List[Field]) -> int:
    for f in fields:
        if f.array_len is None and f.dynamic is None and f.size in (4, 8):
            if f.is_pointer or f.elem_type in ("long", "unsigned long"):
                return f.size
    return struct.calcsize("P")


def parse_format(
    text: str, group: str = "", name: str = "", long_size: Optional[int] = None
) -> EventFormat:
    """Parse the text of an ``events/<group>/<event>/format`` file.

    ``group`` is not in the file (it is the parent directory's name); ``name``
    overrides the file's ``name:`` line when given. ``long_size`` is the kernel's
    ``sizeof(long)`` (the ``commit`` size in ``header_page``); when ``None`` it is
    guessed from the event's pointer and ``long`` fields, else this machine's. Raises :class:`FormatError`
    when the text has neither a ``name:`` nor any ``field:`` line.
    """
    ev_name = ""
    ev_id = -1
    fields: List[Field] = []
    print_raw = ""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("name:") and not ev_name:
            ev_name = s[5:].strip()
        elif s.startswith("ID:"):
            try:
                ev_id = int(s[3:].strip())
            except ValueError:
                ev_id = -1
        elif s.startswith("print fmt:"):
            print_raw = s[len("print fmt:") :].strip()
        elif s.startswith("field"):
            parsed = _parse_field_line(s)
            if parsed is not None:
                fields.append(_field(*parsed))
    if not ev_name and not fields:
        raise FormatError(
            f"not a trace event format file{' for ' + group + ':' + name if name else ''}",
            hints=["expected 'name:', 'ID:' and 'field:' lines as in events/<group>/<event>/format"],
        )
    # common fields first, each part in file order (the file already lists them so)
    fields = [f for f in fields if f.is_common] + [f for f in fields if not f.is_common]
    fmt, _end = _read_string_literals(print_raw)
    return EventFormat(
        group=group,
        name=name or ev_name,
        id=ev_id,
        fields=fields,
        print_fmt=fmt,
        print_fmt_raw=print_raw,
        long_size=long_size or _guess_long_size(fields),
        text=text,
    )


# --------------------------------------------------------------- ring buffer headers


class HeaderPage:
    """``events/header_page``: the layout of a ring-buffer page (``struct buffer_data_page``).

    ``commit_size`` is the kernel's ``local_t`` (word size); ``data_offset`` where
    event records start; ``data_size`` the bytes available for them.
    """

    __slots__ = ("fields", "timestamp_offset", "timestamp_size", "commit_offset", "commit_size",
                 "overwrite_offset", "overwrite_size", "data_offset", "data_size")

    def __init__(self, fields: List[Field], timestamp_offset: int = 0, timestamp_size: int = 8,
                 commit_offset: int = 8, commit_size: int = 8, overwrite_offset: int = 8, overwrite_size: int = 1,
                 data_offset: int = 16, data_size: int = 4080) -> None:
        self.fields, self.timestamp_offset, self.timestamp_size = fields, timestamp_offset, timestamp_size
        self.commit_offset, self.commit_size = commit_offset, commit_size
        self.overwrite_offset, self.overwrite_size = overwrite_offset, overwrite_size
        self.data_offset, self.data_size = data_offset, data_size

    @property
    def page_size(self) -> int:
        return self.data_offset + self.data_size


def parse_header_page(text: str) -> HeaderPage:
    """Parse ``events/header_page`` (kernel/trace/ring_buffer.c:ring_buffer_print_page_header)."""
    fields = parse_fields(text)
    by = {f.name: f for f in fields}
    if "timestamp" not in by or "commit" not in by or "data" not in by:
        raise FormatError(
            "header_page lacks timestamp/commit/data fields",
            hints=["expected the text of tracefs events/header_page"],
        )
    hp = HeaderPage(fields=fields)
    hp.timestamp_offset, hp.timestamp_size = by["timestamp"].offset, by["timestamp"].size
    hp.commit_offset, hp.commit_size = by["commit"].offset, by["commit"].size
    if "overwrite" in by:
        hp.overwrite_offset, hp.overwrite_size = by["overwrite"].offset, by["overwrite"].size
    hp.data_offset, hp.data_size = by["data"].offset, by["data"].size
    return hp


class HeaderEvent:
    """``events/header_event``: the compressed record header (``struct ring_buffer_event``).

    A 32-bit word: ``type_len`` (low ``type_len_bits``) and ``time_delta``
    (upper bits), then ``array`` words. ``type_len`` values 1..``data_max_type_len``
    are data records of ``type_len * 4`` bytes, 0 means the length is in
    ``array[0]``; ``padding``, ``time_extend`` and ``time_stamp`` are the special
    types (``time_stamp`` is None when the kernel did not list it: kernels
    before 4.16-ish print only padding and time_extend).
    """

    __slots__ = ("type_len_bits", "time_delta_bits", "array_bits", "padding", "time_extend", "time_stamp",
                 "data_max_type_len")

    def __init__(self, type_len_bits: int = 5, time_delta_bits: int = 27, array_bits: int = 32, padding: int = 29,
                 time_extend: int = 30, time_stamp: Optional[int] = 31, data_max_type_len: int = 28) -> None:
        self.type_len_bits, self.time_delta_bits, self.array_bits = type_len_bits, time_delta_bits, array_bits
        self.padding, self.time_extend, self.time_stamp = padding, time_extend, time_stamp
        self.data_max_type_len = data_max_type_len


def parse_header_event(text: str) -> HeaderEvent:
    """Parse ``events/header_event`` (kernel/trace/ring_buffer.c:ring_buffer_print_entry_header)."""
    he = HeaderEvent(time_stamp=None)
    seen = False
    for line in text.splitlines():
        s = line.strip()
        m = re.fullmatch(r"(\w+)\s*:\s*(\d+)\s*bits", s)
        if m:
            seen = True
            key, val = m.group(1), int(m.group(2))
            if key == "type_len":
                he.type_len_bits = val
            elif key == "time_delta":
                he.time_delta_bits = val
            elif key == "array":
                he.array_bits = val
            continue
        m = re.fullmatch(r"(\w+)\s*:\s*type\s*==\s*(\d+)", s)
        if m:
            seen = True
            key, val = m.group(1), int(m.group(2))
            if key in ("padding", "time_extend", "time_stamp"):
                setattr(he, key, val)
            continue
        m = re.fullmatch(r"data max type_len\s*==\s*(\d+)", s)
        if m:
            seen = True
            he.data_max_type_len = int(m.group(1))
    if not seen:
        raise FormatError("header_event has no recognisable lines",
                          hints=["expected the text of tracefs events/header_event"])
    return he


# ------------------------------------------------------------------- decoding


def _compile_decoder(fmt: EventFormat, raw_strings: bool, byteorder: str) -> Decoder:
    bo = "<" if byteorder == "little" else ">"
    long_size = fmt.long_size

    def text(b: bytes) -> Any:
        b = b.split(b"\0", 1)[0]
        return b if raw_strings else b.decode("utf-8", "replace")

    def dyn_converter(f: Field) -> Callable[[bytes], Any]:
        if f.is_string:
            return text
        esz = _elem_size(f.elem_type, long_size)
        if f.elem_type in _BYTE_TYPES or esz not in (1, 2, 4, 8) or f.elem_type in ("cpumask_t",):
            if f.elem_type == "cpumask_t" and long_size in (4, 8):
                esz = long_size
                code = _INT_CODES[(esz, False)]
                return lambda b, esz=esz, code=code: list(
                    struct.unpack(f"{bo}{len(b) // esz}{code}", b[: len(b) // esz * esz]))
            return bytes
        code = _INT_CODES[(esz, f.signed)]
        return lambda b, esz=esz, code=code: list(
            struct.unpack(f"{bo}{len(b) // esz}{code}", b[: len(b) // esz * esz]))

    def str_fix(v: bytes, data: Buffer, base: int, end: int) -> Any:
        return text(v)

    # per-field plan: (name, offset, struct code, fix) where fix(value, data, base, end)
    plans: List[Tuple[str, int, int, str, Optional[Callable[..., Any]]]] = []
    for f in fmt.fields:
        name, fo, size = f.name, f.offset, f.size
        fix: Optional[Callable[..., Any]] = None
        if f.dynamic is not None:
            if size <= 0:
                continue  # not a loc word: nothing to read
            if size != 4:
                code = f"{size}s"
                fix = None
            else:
                code = "I"
                conv = dyn_converter(f)
                rel = fo + 4 if f.dynamic == "rel_loc" else 0

                def fix(v: int, data: Buffer, base: int, end: int, conv=conv, rel=rel) -> Any:
                    start = base + rel + (v & 0xFFFF)
                    stop = start + (v >> 16)
                    if stop > end:
                        return v  # out of range: keep the raw word
                    return conv(bytes(data[start:stop]))
        elif f.array_len == 0 or size == 0:
            code = ""  # flexible array: no fixed bytes
            conv = dyn_converter(f)

            def fix(v: Any, data: Buffer, base: int, end: int, conv=conv, fo=fo) -> Any:
                start = base + fo
                return conv(bytes(data[start:end])) if start <= end else conv(b"")
        elif f.array_len is not None:
            code = f"{size}s"
            if f.is_string:
                fix = str_fix
            else:
                n = f.array_len
                esz = size // n if n else 0
                if f.elem_type in _BYTE_TYPES or esz not in (1, 2, 4, 8) or esz * n != size:
                    fix = None  # bytes as is
                else:
                    sub = struct.Struct(f"{bo}{n}{_INT_CODES[(esz, f.signed)]}")
                    fix = lambda v, data, base, end, sub=sub: list(sub.unpack(v))  # noqa: E731
        elif (size, f.signed) in _INT_CODES:
            code = _INT_CODES[(size, f.signed and not f.is_pointer)]
        elif size == 16 and not f.type.startswith("struct"):
            code = "16s"
            sg = f.signed
            fix = lambda v, data, base, end, sg=sg: int.from_bytes(v, byteorder, signed=sg)  # noqa: E731
        else:
            code = f"{size}s"  # structs and odd sizes: raw bytes
        plans.append((name, fo, size, code, fix))

    # Fixed part: one Struct over the non-overlapping fields in offset order.
    seq: List[Tuple[str, int, int, str, Optional[Callable[..., Any]]]] = []
    extra: List[Tuple[str, int, int, str, Optional[Callable[..., Any]]]] = []
    pos = 0
    layout = [bo]
    for p in sorted(plans, key=lambda p: p[1]):
        name, fo, size, code, fix = p
        if not code:
            extra.append(p)
            continue
        if fo < pos:
            extra.append(p)  # overlaps the previous field (header_page's commit/overwrite)
            continue
        if fo > pos:
            layout.append(f"{fo - pos}x")
        layout.append(code)
        seq.append(p)
        pos = fo + size
    fixed = struct.Struct("".join(layout))
    fixed_size = fixed.size
    names = tuple(p[0] for p in seq)
    seq_fixes = tuple((p[0], p[4]) for p in seq if p[4] is not None)
    extra_structs = tuple(
        (p[0], p[1], p[2], struct.Struct(bo + p[3]) if p[3] else None, p[4]) for p in extra
    )
    singles = tuple(
        (p[0], p[1], p[2], struct.Struct(bo + p[3]), p[4]) for p in seq
    )
    unpack_from = fixed.unpack_from

    def slow(data: Buffer, offset: int, end: int) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        if end - offset >= fixed_size:
            out = dict(zip(names, unpack_from(data, offset)))
            for name, fix in seq_fixes:
                out[name] = fix(out[name], data, offset, end)
        else:  # truncated record: decode what fits, leave the rest out
            for name, fo, size, st, fix in singles:
                if offset + fo + size > end:
                    continue
                v = st.unpack_from(data, offset + fo)[0]
                out[name] = fix(v, data, offset, end) if fix is not None else v
        extras(out, data, offset, end)
        return out

    def extras(out: Dict[str, Any], data: Buffer, offset: int, end: int) -> None:
        for name, fo, size, st, fix in extra_structs:
            if st is None:
                if fix is not None and offset + fo <= end:
                    out[name] = fix(None, data, offset, end)
                continue
            if offset + fo + size > end:
                continue
            v = st.unpack_from(data, offset + fo)[0]
            out[name] = fix(v, data, offset, end) if fix is not None else v

    # The fast path is generated once per format so a full record costs one
    # unpack_from and one dict display (~1 us). Field names only appear as repr()
    # string literals; values are bound as closure-free globals of the function.
    env: Dict[str, Any] = {"_unpack": unpack_from, "_slow": slow, "_extras": extras, "_len": len}
    items = []
    for i, (name, _fo, _size, _code, fix) in enumerate(seq):
        v = f"v{i}"
        if fix is None:
            items.append(f"{name!r}: {v}")
        elif fix is str_fix:
            expr = f"{v}.partition(b'\\0')[0]"
            if not raw_strings:
                expr += ".decode('utf-8', 'replace')"
            items.append(f"{name!r}: {expr}")
        else:
            env[f"_f{i}"] = fix
            items.append(f"{name!r}: _f{i}({v}, data, offset, end)")
    targets = "".join(f"v{i}, " for i in range(len(seq)))
    lines = [
        "def decode(data, offset=0, end=None):",
        "    n = _len(data)",
        "    if end is None or end > n:",
        "        end = n",
        f"    if end - offset < {fixed_size}:",
        "        return _slow(data, offset, end)",
    ]
    if seq:
        lines.append(f"    {targets}= _unpack(data, offset)")
    lines.append("    out = {" + ", ".join(items) + "}")
    if extra_structs:
        lines.append("    _extras(out, data, offset, end)")
    lines.append("    return out")
    exec(compile("\n".join(lines), f"<decoder {fmt.full_name}>", "exec"), env)  # noqa: S102
    decode = env["decode"]

    decode.__doc__ = f"Decode one {fmt.full_name} record (see EventFormat.decoder)."
    return decode
