"""Tokens of the SystemTap language (SystemTap Language Reference, "Language elements").

Comments are ``#``, ``//`` and ``/* */``; strings are double-quoted with C escapes;
numbers are C integers (decimal, ``0x`` hex, octal). ``$name`` is a target variable,
``@name`` an operator such as ``@count`` or ``@cast`` (and ``@1`` a positional string),
``$1`` a positional number. The preprocessor's ``%( ... %? ... %: ... %)`` and embedded C
``%{ ... %}`` are tokens of their own (the parser evaluates the first, refuses the second).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import List

from ...errors import ParseError, Span

__all__ = ["Tok", "tokenize", "KEYWORDS"]

KEYWORDS = frozenset((
    "probe", "global", "private", "function", "if", "else", "while", "for", "foreach", "in", "limit",
    "break", "continue", "next", "return", "delete", "try", "catch", "string", "long",
))

#: operators, longest first
_OPS = (
    "<<<", "<<=", ">>=", "%(", "%?", "%:", "%)", "%{", "%}",
    "==", "!=", "<=", ">=", "&&", "||", "<<", ">>", "++", "--", "->", "+=", "-=", "*=", "/=", "%=",
    "&=", "|=", "^=", ".=", "=~", "!~",
    "{", "}", "(", ")", "[", "]", ";", ",", ".", "?", ":", "=", "<", ">", "+", "-", "*", "/", "%",
    "&", "|", "^", "!", "~",
)
_IDENT0 = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT = _IDENT0 | frozenset("0123456789")
_ESC = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b",
        "f": "\f", "v": "\v", "0": "\0"}


class Tok:
    """One token: ``kind`` in ident/int/str/target ($x)/at (@x)/pos ($1)/atpos (@1)/op/eof,
    ``text`` as written, ``value`` (the number, the decoded string), ``start``/``end`` offsets."""

    __slots__ = ("kind", "text", "start", "end", "value")

    def __init__(self, kind: str, text: str, start: int, end: int, value: object = None) -> None:
        self.kind, self.text, self.start, self.end, self.value = kind, text, start, end, value

    @property
    def span(self) -> Span:
        return Span(self.start, self.end)

    def is_op(self, *ops: str) -> bool:
        return self.kind == "op" and self.text in ops

    def is_word(self, *words: str) -> bool:
        return self.kind == "ident" and self.text in words

    def describe(self) -> str:
        if self.kind == "eof":
            return "end of script"
        if self.kind == "str":
            return "a string"
        return f"'{self.text}'"

    def __repr__(self) -> str:
        return f"Tok({self.kind}, {self.text!r})"


def _err(msg: str, source: str, origin: str, a: int, b: int, *hints: str) -> ParseError:
    return ParseError(msg, source=source, span=Span(a, max(b, a + 1)), origin=origin, hints=hints)


def tokenize(text: str, origin: str = "<input>") -> List[Tok]:
    """All tokens of ``text`` (the last is ``eof``). Raises :class:`ParseError` with the place."""
    out: List[Tok] = []
    i, n = 0, len(text)
    while True:
        # white space and comments
        while i < n:
            c = text[i]
            if c in " \t\r\n\f\v":
                i += 1
            elif c == "#" or text.startswith("//", i):
                j = text.find("\n", i)
                i = n if j < 0 else j + 1
            elif text.startswith("/*", i):
                j = text.find("*/", i + 2)
                if j < 0:
                    raise _err("unterminated comment", text, origin, i, i + 2, "close it with */")
                i = j + 2
            else:
                break
        if i >= n:
            out.append(Tok("eof", "", n, n))
            return out
        c = text[i]
        start = i
        if c in _IDENT0:
            while i < n and text[i] in _IDENT:
                i += 1
            out.append(Tok("ident", text[start:i], start, i))
            continue
        if c.isdigit() and c.isascii():
            out.append(_number(text, i, origin))
            i = out[-1].end
            continue
        if c == '"':
            tok = _string(text, i, origin)
            out.append(tok)
            i = tok.end
            continue
        if c in "$@" and i + 1 < n:
            d = text[i + 1]
            if d.isascii() and d.isdigit():
                j = i + 1
                while j < n and text[j].isascii() and text[j].isdigit():
                    j += 1
                out.append(Tok("pos" if c == "$" else "atpos", text[i:j], i, j, int(text[i + 1:j])))
                i = j
                continue
            if c == "$" and d == "#":
                out.append(Tok("pos", "$#", i, i + 2, -1))
                i += 2
                continue
            if d in _IDENT0 or (c == "$" and d == "$"):
                j = i + 1
                while j < n and (text[j] in _IDENT or (c == "$" and text[j] == "$")):
                    j += 1
                out.append(Tok("target" if c == "$" else "at", text[i:j], i, j))
                i = j
                continue
        if c == "%" and text.startswith("%{", i):
            j = text.find("%}", i + 2)
            if j < 0:
                raise _err("unterminated embedded C (%{ without %})", text, origin, i, i + 2)
            out.append(Tok("embedded", text[i:j + 2], i, j + 2))
            i = j + 2
            continue
        for op in _OPS:
            if text.startswith(op, i):
                out.append(Tok("op", op, i, i + len(op)))
                i += len(op)
                break
        else:
            shown = c if c.isprintable() else f"\\x{ord(c) & 0xFF:02x}"
            raise _err(f"unexpected character '{shown}'", text, origin, i, i + 1)


def _number(text: str, i: int, origin: str) -> Tok:
    n = len(text)
    j = i
    while j < n and (text[j] in _IDENT):
        j += 1
    raw = text[i:j]
    body = raw.rstrip("LlUu")
    try:
        if body[:2] in ("0x", "0X"):
            v = int(body[2:], 16)
        elif len(body) > 1 and body[0] == "0":
            v = int(body[1:], 8)
        else:
            v = int(body, 10)
    except ValueError:
        raise _err(f"bad number '{raw}'", text, origin, i, j, "numbers are decimal, 0x hex or 0 octal") from None
    if v >= 1 << 64:
        raise _err(f"number '{raw}' does not fit in 64 bits", text, origin, i, j)
    return Tok("int", raw, i, j, v)


def _string(text: str, i: int, origin: str) -> Tok:
    n = len(text)
    j = i + 1
    out: List[str] = []
    while j < n and text[j] != '"':
        c = text[j]
        if c == "\n":
            break
        if c == "\\" and j + 1 < n:
            d = text[j + 1]
            if d in "01234567":
                k = j + 1
                while k < n and k < j + 4 and text[k] in "01234567":
                    k += 1
                out.append(chr(int(text[j + 1:k], 8) & 0xFF))
                j = k
                continue
            if d == "x":
                k = j + 2
                while k < n and k < j + 4 and text[k] in "0123456789abcdefABCDEF":
                    k += 1
                if k == j + 2:
                    raise _err("\\x needs hex digits", text, origin, j, j + 2)
                out.append(chr(int(text[j + 2:k], 16)))
                j = k
                continue
            if d == "\n":
                j += 2
                continue
            out.append(_ESC.get(d, "\\" + d))
            j += 2
            continue
        out.append(c)
        j += 1
    if j >= n or text[j] != '"':
        raise _err("unterminated string", text, origin, i, min(j, n), 'close it with "')
    return Tok("str", text[i:j + 1], i, j + 1, "".join(out))


