"""Tokens of the bpftrace language.

The lexer works on the preprocessed text (comments already blanked, same
offsets as the user's text) and is pulled one token at a time by the parser,
which reads probe specs (``uprobe:/bin/bash:readline``) straight from the text
because they follow rules of their own.

Token kinds: ``ident``, ``int`` (value: int), ``str`` (value: str, escapes
decoded; a string stands for bytes, as in bpftrace: ``\\xff`` or ``\\377`` is the byte
0xff, kept in the str as Python keeps an undecodable byte of a file name
(``surrogateescape``), so ``os.fsencode(value)`` is the exact bytes; :func:`quote_string`
is the inverse), ``var`` (``$name``; value: name), ``pos`` (``$1``/``$#``; value: int,
-1 for ``$#``), ``map`` (``@name`` or ``@``; value: the name with ``@``),
``op`` (punctuation), ``eof``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Tuple, Union

from ...errors import ParseError, Span

__all__ = ["Tok", "Lexer", "OPERATORS", "decode_escapes", "quote_string"]

#: Punctuation, longest first so ``<<=`` wins over ``<<`` and ``<``.
OPERATORS = (
    "<<=", ">>=",
    "->", "++", "--", "==", "!=", "<=", ">=", "&&", "||", "<<", ">>",
    "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=",
    "+", "-", "*", "/", "%", "&", "|", "^", "!", "~", "<", ">", "=", "?", ":",
    ";", ",", ".", "(", ")", "[", "]", "{", "}",
)

_DIGITS = frozenset("0123456789")
_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_CHARS = _IDENT_START | _DIGITS
_HEX_CHARS = frozenset("0123456789abcdefABCDEF_")
_DEC_CHARS = frozenset("0123456789_")
_OCT_DIGITS = frozenset("01234567")
_HEX_DIGITS = _HEX_CHARS - {"_"}
# Tokens are scanned with these sets, not regular expressions: compiling the lexer's
# patterns cost ~0.5 ms of every one-liner's start-up.


def _scan(t: str, i: int, chars: frozenset, limit: int = -1) -> int:
    """The end of the run of ``chars`` in ``t`` from ``i`` (at most ``limit`` of them)."""
    n = len(t) if limit < 0 else min(len(t), i + limit)
    while i < n and t[i] in chars:
        i += 1
    return i


def _at(t: str, i: int, chars: frozenset) -> bool:
    """Whether ``t[i]`` exists and is one of ``chars``."""
    return i < len(t) and t[i] in chars


def _int_suffix(t: str, i: int) -> int:
    """The end of a C integer suffix at ``i`` (``u``, ``l``, ``ll``, ``ul``, ``llu``... in
    either case; ``i`` when there is none)."""
    def longs(j: int) -> int:
        if t.startswith(("ll", "LL"), j):
            return j + 2
        return j + 1 if t.startswith(("l", "L"), j) else j

    if t.startswith(("u", "U"), i):
        return longs(i + 1)
    j = longs(i)
    return j + 1 if j > i and t.startswith(("u", "U"), j) else j
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v", "e": "\x1b", "?": "?"}


class Tok:
    """One token: its kind (see the module's docstring), text, offsets and decoded value."""

    __slots__ = ("kind", "text", "start", "end", "value")

    def __init__(self, kind: str, text: str, start: int, end: int, value: object = None) -> None:
        self.kind = kind
        self.text = text
        self.start = start
        self.end = end
        self.value = value

    @property
    def span(self) -> Span:
        return Span(self.start, self.end)

    def is_op(self, *ops: str) -> bool:
        return self.kind == "op" and self.text in ops

    def describe(self) -> str:
        """How the token is named in messages (``'}'``, ``end of input``)."""
        if self.kind == "eof":
            return "end of input"
        text = self.text if len(self.text) <= 24 else self.text[:21] + "..."
        return f"'{text}'"


def _byte(v: int) -> str:
    """The character standing for byte ``v`` in a decoded literal: ASCII as itself, 0x80-0xff
    as the surrogate escape U+DC80..U+DCFF, so ``"\\xff"`` is the one byte 0xff once encoded
    (``ir.text_bytes``), as in bpftrace, not the two bytes of U+00FF in UTF-8."""
    return chr(v) if v < 0x80 else chr(0xDC00 + v)


def decode_escapes(raw: str, base: int, source: str, origin: str) -> str:
    """Decode C escapes of a literal body; ``base`` is its offset in ``source`` (for carets).

    ``\\xHH`` and ``\\NNN`` are bytes: the result is the str of the literal's bytes decoded
    with ``utf-8``/``surrogateescape`` (``"\\xc3\\xa9"`` is ``"\u00e9"``; ``"\\xff"`` is
    ``"\\udcff"``)."""
    if "\\" not in raw:
        return raw
    out = []
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise ParseError("lone backslash at the end of a literal", source=source,
                             span=Span(base + i, base + i + 1), origin=origin)
        e = raw[i + 1]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e in "xX":
            j = _scan(raw, i + 2, _HEX_DIGITS, 2)
            if j == i + 2:
                raise ParseError("\\x needs hex digits", source=source,
                                 span=Span(base + i, base + i + 2), origin=origin)
            out.append(_byte(int(raw[i + 2:j], 16)))
            i = j
        elif e in "01234567":
            j = _scan(raw, i + 1, _OCT_DIGITS, 3)
            out.append(_byte(int(raw[i + 1:j], 8) & 0xFF))
            i = j
        else:
            raise ParseError(f"unknown escape sequence '\\{e}'", source=source,
                             span=Span(base + i, base + i + 2), origin=origin,
                             hints=["known escapes: \\n \\t \\r \\\\ \\\" \\' \\0 \\xHH \\NNN"])
    text = "".join(out)
    try:  # bytes escaped one by one that form UTF-8 characters are those characters
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate typed in the text (API callers): kept
        return text


#: Bytes a literal made by :func:`quote_string` shows as themselves: printable ASCII but
#: the quote and the backslash.
_PLAIN = frozenset(range(0x20, 0x7F)) - {ord('"'), ord("\\")}


def quote_string(value: "Union[str, bytes]") -> str:
    """``value`` as a bpftrace string literal, quotes included: the one way to put a value
    that came from outside (a file name, a process name) into program text.

    A str is taken as its bytes (``os.fsencode``: UTF-8, undecodable bytes from a file
    name kept). Printable ASCII stands for itself, ``"`` and ``\\`` are escaped, every other
    byte (controls, newline, NUL, non-ASCII) is ``\\xHH``: the literal is one line of ASCII
    that the lexer decodes back to exactly these bytes, whatever they hold. Length limits
    are the caller's (a comparison reads at most what the backend allows)."""
    data = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    plain = _PLAIN
    return '"' + "".join(chr(b) if b in plain else ("\\" + chr(b) if b in (0x22, 0x5C) else f"\\x{b:02x}")
                         for b in data) + '"'


class Lexer:
    """Pull-style lexer over ``text`` (the preprocessed program).

    ``source`` is the user's original text, used only for error carets.
    """

    def __init__(self, text: str, source: str, origin: str) -> None:
        self.text = text
        self.source = source
        self.origin = origin

    def error(self, msg: str, start: int, end: int, hints: Tuple[str, ...] = ()) -> ParseError:
        return ParseError(msg, source=self.source, span=Span(start, max(end, start + 1)),
                          origin=self.origin, hints=hints)

    def skip_space(self, i: int) -> int:
        """Skip whitespace and comments (normally already blanked) from ``i``."""
        t = self.text
        n = len(t)
        while i < n:
            c = t[i]
            if c in " \t\r\n\f\v":
                i += 1
            elif t.startswith("//", i):
                j = t.find("\n", i)
                i = n if j < 0 else j
            elif t.startswith("/*", i):
                j = t.find("*/", i + 2)
                if j < 0:
                    raise self.error("unterminated comment", i, i + 2)
                i = j + 2
            else:
                break
        return i

    def next(self, i: int) -> Tok:
        """The token starting at (or after whitespace from) offset ``i``."""
        t = self.text
        i = self.skip_space(i)
        if i >= len(t):
            return Tok("eof", "", len(t), len(t))
        c = t[i]
        if c in _IDENT_START:
            end = _scan(t, i + 1, _IDENT_CHARS)
            word = t[i:end]
            return Tok("ident", word, i, end, word)
        if c in _DIGITS:
            return self._number(i)
        if c == '"':
            return self._string(i)
        if c == "'":
            return self._char(i)
        if c == "$":
            if i + 1 < len(t) and t[i + 1] == "#":
                return Tok("pos", "$#", i, i + 2, -1)
            end = _scan(t, i + 1, _DIGITS)
            if end > i + 1:
                return Tok("pos", t[i:end], i, end, int(t[i + 1:end]))
            if not _at(t, i + 1, _IDENT_START):
                raise self.error("'$' must be followed by a variable name, a number or '#'", i, i + 1,
                                 ("scratch variables look like $name, positional parameters like $1 and $#",))
            end = _scan(t, i + 2, _IDENT_CHARS)
            return Tok("var", t[i:end], i, end, t[i:end])
        if c == "@":
            end = _scan(t, i + 2, _IDENT_CHARS) if _at(t, i + 1, _IDENT_START) else i + 1
            return Tok("map", t[i:end], i, end, t[i:end])
        for op in OPERATORS:
            if t.startswith(op, i):
                return Tok("op", op, i, i + len(op))
        raise self.error(f"unexpected character {c!r}", i, i + 1)

    def _number(self, i: int) -> Tok:
        t = self.text
        end = _scan(t, i + 2, _HEX_CHARS) if t.startswith(("0x", "0X"), i) else i
        if end > i + 2:  # 0x then at least one hex digit or '_'
            digits = t[i + 2:end].replace("_", "")
            value = int(digits, 16) if digits else None
        else:
            end = _scan(t, i + 1, _DEC_CHARS)
            if t.startswith(("e", "E"), end) and _at(t, end + 1, _DIGITS):
                end = _scan(t, end + 1, _DIGITS)
            body = t[i:end].replace("_", "")
            if "e" in body or "E" in body:
                mant, _, exp = body.replace("E", "e").partition("e")
                value = int(mant) * 10 ** min(int(exp), 40)
            elif len(body) > 1 and body[0] == "0":
                value = int(body, 8) if all(ch in "01234567" for ch in body) else None
            else:
                value = int(body)
        end = _int_suffix(t, end)
        if value is None or (end < len(t) and t[end] in _IDENT_CHARS):
            j = end
            while j < len(t) and t[j] in _IDENT_CHARS:
                j += 1
            raise self.error(f"invalid integer literal '{t[i:j]}'", i, j,
                             ("integers are decimal (1_000, 1e6), hex (0x1f) or octal (0755)",))
        if value >= 1 << 64:
            raise self.error(f"integer literal '{t[i:end]}' does not fit in 64 bits", i, end)
        return Tok("int", t[i:end], i, end, value)

    def _literal_end(self, i: int, quote: str, what: str) -> int:
        t = self.text
        j = i + 1
        while j < len(t):
            c = t[j]
            if c == "\\":
                j += 2
                continue
            if c == quote:
                return j
            if c == "\n":
                break
            j += 1
        raise self.error(f"unterminated {what}", i, min(j, len(t)),
                         (f"close it with {quote} on the same line",))

    def _string(self, i: int) -> Tok:
        j = self._literal_end(i, '"', "string")
        raw = self.text[i + 1:j]
        return Tok("str", self.text[i:j + 1], i, j + 1, decode_escapes(raw, i + 1, self.source, self.origin))

    def _char(self, i: int) -> Tok:
        j = self._literal_end(i, "'", "character literal")
        raw = self.text[i + 1:j]
        val = decode_escapes(raw, i + 1, self.source, self.origin)
        if len(val) != 1:
            raise self.error("a character literal holds one character", i, j + 1,
                             ('use double quotes for strings: "text"',))
        o = ord(val)
        if 0xDC80 <= o <= 0xDCFF:  # '\xff', or an undecodable byte of the script: that byte
            o -= 0xDC00
        return Tok("int", self.text[i:j + 1], i, j + 1, o)
