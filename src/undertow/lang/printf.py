"""The conversions of a C ``printf`` format string, found without regular expressions.

Both the bpftrace parser (which checks a format against its arguments) and the output
(which formats records) walk formats; compiling a pattern for each cost ~0.5 ms of every
one-liner's start-up. :func:`conversions` scans the text itself, with the meaning the
pattern ``%(?:%|FLAGS WIDTH? (.PREC)? LEN? CONV)`` had: ``FLAGS`` any of ``-+ #0``,
``WIDTH``/``PREC`` digits (or ``*`` when ``star``), ``LEN`` one of ``hh h ll l z j t L``
and ``CONV`` one ASCII letter (``required``: a ``%`` not followed by a whole conversion is
plain text; otherwise the conversion may be empty, so that a caller can report it).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Iterator, Optional, Tuple

__all__ = ["conversions"]

_FLAGS = frozenset("-+ #0")
_DIGITS = frozenset("0123456789")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LENGTHS = ("hh", "h", "ll", "l", "z", "j", "t", "L")  # tried in this order


def _scan(s: str, i: int, chars: frozenset) -> int:
    n = len(s)
    while i < n and s[i] in chars:
        i += 1
    return i


def _letter(s: str, i: int) -> bool:
    return i < len(s) and s[i] in _LETTERS


def conversions(fmt: str, *, star: bool = False, required: bool = True
                ) -> "Iterator[Tuple[int, int, str, Optional[str], Optional[str], str]]":
    """``(start, end, flags, width, prec, conv)`` for each conversion of ``fmt``, in order;
    ``%%`` gives ``conv == "%"``. ``width``/``prec`` are ``None`` when absent."""
    i = fmt.find("%")
    while i >= 0:
        if fmt.startswith("%", i + 1):
            yield i, i + 2, "", None, None, "%"
            i = fmt.find("%", i + 2)
            continue
        j = _scan(fmt, i + 1, _FLAGS)
        flags = fmt[i + 1:j]
        width: Optional[str] = None
        k = _scan(fmt, j, _DIGITS)
        if k > j:
            width, j = fmt[j:k], k
        elif star and fmt.startswith("*", j):
            width, j = "*", j + 1
        prec: Optional[str] = None
        if fmt.startswith(".", j):
            k = _scan(fmt, j + 1, _DIGITS)
            if k > j + 1:
                prec, j = fmt[j + 1:k], k
            elif star and fmt.startswith("*", j + 1):
                prec, j = "*", j + 2
        for length in _LENGTHS:
            if fmt.startswith(length, j) and (not required or _letter(fmt, j + len(length))):
                j += len(length)
                break
        conv = fmt[j] if _letter(fmt, j) else ""
        if not conv and required:
            i = fmt.find("%", i + 1)  # plain text: look again from the next character
            continue
        end = j + len(conv)
        yield i, end, flags, width, prec, conv
        i = fmt.find("%", end)
