"""Tokens of the bpftrace language.

The lexer works on the preprocessed text (comments already blanked, same
offsets as the user's text) and is pulled one token at a time by the parser,
which reads probe specs (``uprobe:/bin/bash:readline``) straight from the text
because they follow rules of their own.

Token kinds: ``ident``, ``int`` (value: int), ``str`` (value: str, escapes
decoded), ``var`` (``$name``; value: name), ``pos`` (``$1``/``$#``; value: int,
-1 for ``$#``), ``map`` (``@name`` or ``@``; value: the name with ``@``),
``op`` (punctuation), ``eof``.
"""

from __future__ import annotations

import re
from undertow.dclass import dataclass
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are strings: typing is not imported at run time (start-up)
    from typing import Tuple

from ...errors import ParseError, Span

__all__ = ["Tok", "Lexer", "OPERATORS", "decode_escapes"]

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
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEX = re.compile(r"0[xX][0-9a-fA-F_]+")
_DEC = re.compile(r"[0-9][0-9_]*(?:[eE][0-9]+)?")
_SUFFIX = re.compile(r"(?:[uU](?:ll|LL|l|L)?|(?:ll|LL|l|L)[uU]?)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v", "e": "\x1b", "?": "?"}


@dataclass
class Tok:
    kind: str
    text: str
    start: int
    end: int
    value: object = None

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


def decode_escapes(raw: str, base: int, source: str, origin: str) -> str:
    """Decode C escapes of a literal body; ``base`` is its offset in ``source`` (for carets)."""
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
            m = re.match(r"[0-9a-fA-F]{1,2}", raw[i + 2:])
            if m is None:
                raise ParseError("\\x needs hex digits", source=source,
                                 span=Span(base + i, base + i + 2), origin=origin)
            out.append(chr(int(m.group(0), 16)))
            i += 2 + len(m.group(0))
        elif e in "01234567":
            m = re.match(r"[0-7]{1,3}", raw[i + 1:])
            assert m is not None
            out.append(chr(int(m.group(0), 8) & 0xFF))
            i += 1 + len(m.group(0))
        else:
            raise ParseError(f"unknown escape sequence '\\{e}'", source=source,
                             span=Span(base + i, base + i + 2), origin=origin,
                             hints=["known escapes: \\n \\t \\r \\\\ \\\" \\' \\0 \\xHH \\NNN"])
    return "".join(out)


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
            m = _IDENT.match(t, i)
            assert m is not None
            return Tok("ident", m.group(0), i, m.end(), m.group(0))
        if c in _DIGITS:
            return self._number(i)
        if c == '"':
            return self._string(i)
        if c == "'":
            return self._char(i)
        if c == "$":
            if i + 1 < len(t) and t[i + 1] == "#":
                return Tok("pos", "$#", i, i + 2, -1)
            m = re.compile(r"[0-9]+").match(t, i + 1)
            if m is not None:
                return Tok("pos", t[i:m.end()], i, m.end(), int(m.group(0)))
            m = _IDENT.match(t, i + 1)
            if m is None:
                raise self.error("'$' must be followed by a variable name, a number or '#'", i, i + 1,
                                 ("scratch variables look like $name, positional parameters like $1 and $#",))
            return Tok("var", t[i:m.end()], i, m.end(), t[i:m.end()])
        if c == "@":
            m = _IDENT.match(t, i + 1)
            end = m.end() if m is not None else i + 1
            return Tok("map", t[i:end], i, end, t[i:end])
        for op in OPERATORS:
            if t.startswith(op, i):
                return Tok("op", op, i, i + len(op))
        raise self.error(f"unexpected character {c!r}", i, i + 1)

    def _number(self, i: int) -> Tok:
        t = self.text
        m = _HEX.match(t, i)
        if m is not None:
            digits = m.group(0)[2:].replace("_", "")
            value = int(digits, 16) if digits else None
        else:
            m = _DEC.match(t, i)
            assert m is not None
            body = m.group(0).replace("_", "")
            if "e" in body or "E" in body:
                mant, _, exp = body.replace("E", "e").partition("e")
                value = int(mant) * 10 ** min(int(exp), 40)
            elif len(body) > 1 and body[0] == "0":
                value = int(body, 8) if all(ch in "01234567" for ch in body) else None
            else:
                value = int(body)
        end = m.end()
        s = _SUFFIX.match(t, end)
        if s is not None:
            end = s.end()
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
        return Tok("int", self.text[i:j + 1], i, j + 1, ord(val) & 0xFF if ord(val) < 256 else ord(val))
