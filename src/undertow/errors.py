"""The UndertowError tree.

Every error a user can provoke is an :class:`UndertowError`: a one-line message
plus *hints* (what to do instead). Errors about something the user typed carry
the source text and a :class:`Span` so the CLI can draw a caret under the bad
part. Classes also subclass the matching builtin (``LookupError``,
``PermissionError``, ``OSError``...) so library users can catch them the
ordinary way, as drgn does.

The library never prints: it raises these; ``undertow.cli`` renders them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Callable, Iterable, List, Optional, Sequence


class Span:
    """Half-open character range ``[start, end)`` in a source text (immutable).

    A plain class rather than a dataclass: ``errors`` is imported by every
    module, and ``dataclasses`` costs ~12 ms of import time.
    """

    __slots__ = ("start", "end")

    def __init__(self, start: int, end: int) -> None:
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", max(end, start))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Span is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Span) and (self.start, self.end) == (other.start, other.end)

    def __hash__(self) -> int:
        return hash((self.start, self.end))

    def __reduce__(self) -> tuple:
        return (Span, (self.start, self.end))

    def __repr__(self) -> str:
        return f"Span(start={self.start}, end={self.end})"

    def to(self, other: "Span") -> "Span":
        """The span covering both ``self`` and ``other``."""
        return Span(min(self.start, other.start), max(self.end, other.end))


class UndertowError(Exception):
    """Base of every error undertow raises on purpose.

    ``message`` is one line saying what is wrong; ``hints`` are lines saying
    what to do instead. ``exit_code`` is the command's exit status when it ends with
    this error (2 for usage errors, as argparse's).
    """

    exit_code = 1
    #: bpftrace 0.17's own text for this error where it differs from undertow's (printed
    #: as ``ERROR: text``, with no place, when undertow runs under the name bpftrace:
    #: commands/run_bt.py); None: undertow's message is bpftrace's.
    bpftrace_text: Optional[str] = None

    def __init__(self, message: str, *, hints: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hints: List[str] = [h for h in hints if h]

    def add_hint(self, hint: str) -> "UndertowError":
        if hint and hint not in self.hints:
            self.hints.append(hint)
        return self

    def render(self) -> str:
        """Human text: ``error: message`` then one ``hint:`` line per hint."""
        lines = [f"error: {self.message}"]
        lines += [f"hint: {h}" for h in self.hints]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.message


class SourceError(UndertowError):
    """An error located in text the user wrote (a probe line, a bt program).

    ``source`` is the whole text, ``span`` the offending range, ``origin`` a
    name for the text (``<cmdline>``, a file name).
    """

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        span: Optional[Span] = None,
        origin: str = "<input>",
        hints: Iterable[str] = (),
    ) -> None:
        super().__init__(message, hints=hints)
        self.source = source
        self.span = span
        self.origin = origin

    def locate(self, source: str, span: Span, origin: Optional[str] = None) -> "SourceError":
        """Attach a source location when the raiser did not know it."""
        self.source, self.span = source, span
        if origin:
            self.origin = origin
        return self

    def render(self) -> str:
        if self.span is None or not self.source:
            return super().render()
        return render_caret(
            self.source, self.span, f"error: {self.message}", self.hints, self.origin
        )


def render_caret(
    source: str, span: Span, headline: str, hints: Sequence[str] = (), origin: str = "<input>"
) -> str:
    """Render ``origin:line:col: headline``, the source line, and ``^~~~`` under the span.

    Control characters in the echoed line are shown escaped so a hostile input
    cannot drive the terminal; the caret column accounts for the escaping.
    """
    start = max(0, min(span.start, len(source)))
    end = max(start, min(span.end, len(source)))
    line_start = source.rfind("\n", 0, start) + 1
    line_end = source.find("\n", start)
    if line_end < 0:
        line_end = len(source)
    lineno = source.count("\n", 0, start) + 1
    text = source[line_start:line_end]
    col = start - line_start
    width = max(1, min(end, line_end) - start)
    shown_before = _escape(text[:col])
    shown_span = _escape(text[col : col + width]) or " "
    out = [f"{origin}:{lineno}:{col + 1}: {headline}", "  " + _escape(text)]
    out.append("  " + " " * len(shown_before) + "^" + "~" * (len(shown_span) - 1))
    out += [f"hint: {h}" for h in hints]
    return "\n".join(out)


def _escape(text: str) -> str:
    out = []
    for ch in text:
        o = ord(ch)
        if ch == "\t":
            out.append(" ")
        elif o < 0x20 or o == 0x7F or 0x80 <= o < 0xA0:
            out.append(f"\\x{o:02x}")
        elif 0xDC80 <= o <= 0xDCFF:  # an undecodable byte of the input (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


class ParseError(SourceError, SyntaxError):
    """The text does not follow the grammar."""

    def __init__(self, message: str, **kw) -> None:  # type: ignore[no-untyped-def]
        SourceError.__init__(self, message, **kw)


class ResolveError(SourceError, LookupError):
    """A name in the text (symbol, member, field, event) does not exist here."""


class TypeCheckError(SourceError, TypeError):
    """The text is well-formed but its types do not fit (e.g. ``->`` on a non-pointer)."""


class NeedRootError(UndertowError, PermissionError):
    """The operation needs privileges (root, CAP_BPF, CAP_PERFMON...)."""


class FeatureUnavailableError(UndertowError):
    """The running kernel lacks a feature; hints name what can serve instead."""

    def __init__(self, feature: str, message: str, *, hints: Iterable[str] = ()) -> None:
        super().__init__(message, hints=hints)
        self.feature = feature


class TracefsError(UndertowError, OSError):
    """tracefs is missing, not mountable, or refused a write.

    ``kernel_log`` holds the matching lines of tracefs ``error_log`` when the
    kernel explained itself there.
    """

    def __init__(self, message: str, *, hints: Iterable[str] = (), kernel_log: str = "") -> None:
        super().__init__(message, hints=hints)
        self.kernel_log = kernel_log

    def render(self) -> str:
        text = super().render()
        if self.kernel_log:
            text += "\nkernel said:\n" + "\n".join("  " + l for l in self.kernel_log.splitlines())
        return text


class BTFError(UndertowError):
    """BTF is missing or malformed."""


class UnknownTypeError(BTFError, LookupError):
    """No such type in BTF."""


class UnknownMemberError(BTFError, LookupError):
    """No such member in a struct/union; hints name the closest members."""


class ELFError(UndertowError):
    """An ELF file is missing, malformed, or of the wrong architecture."""


class SymbolNotFoundError(UndertowError, LookupError):
    """A kernel or user-space symbol does not exist.

    ``more_hints`` is a callable computed only when the hints are read: "did you
    mean" over a library's thousands of symbols costs ~0.1 s, wasted when the
    caller skips the probe (bpftrace-style multi-probe blocks) instead of showing it.
    """

    def __init__(self, message: str, *, hints: Iterable[str] = (),
                 more_hints: Optional[Callable[[], List[str]]] = None) -> None:
        UndertowError.__init__(self, message, hints=hints)
        self._more = more_hints

    @property  # type: ignore[override]
    def hints(self) -> List[str]:
        more, self._more = getattr(self, "_more", None), None
        if more is not None:
            self._hints[:0] = [h for h in more() if h]
        return self._hints

    @hints.setter
    def hints(self, value: List[str]) -> None:
        self._hints = list(value)


class BPFError(UndertowError, OSError):
    """bpf(2) or perf_event_open(2) failed."""

    def __init__(self, message: str, *, errno: int = 0, hints: Iterable[str] = ()) -> None:
        UndertowError.__init__(self, message, hints=hints)
        self.errno = errno


class VerifierError(BPFError):
    """The BPF verifier rejected a program; ``log`` is its full log."""

    def __init__(self, message: str, *, log: str = "", errno: int = 0, hints: Iterable[str] = ()) -> None:
        super().__init__(message, errno=errno, hints=hints)
        self.log = log


class UsageError(UndertowError):
    """Bad command-line usage that argparse could not catch (exit status 2)."""

    exit_code = 2


class OptionError(UsageError):
    """An option's value cannot be used (``argument -o: directory /x does not exist``),
    found after argparse accepted it (e.g. when the command opens the file)."""


def closest(name: str, candidates: Iterable[str], n: int = 3) -> List[str]:
    """The ``n`` candidates closest to ``name`` (for "did you mean" hints)."""
    import difflib

    pool = list(dict.fromkeys(candidates))
    scored = []
    ln = len(name)
    grams = {name[i:i + 2] for i in range(max(0, ln - 1))}
    for c in pool:
        lc = len(c)
        # cheap bounds first (pools can hold 100k names): ratio <= 2*min/(sum of lengths)
        if not lc or 2 * min(ln, lc) < 0.6 * (ln + lc):
            continue
        if grams and len(pool) > 2000 and not any(c[i:i + 2] in grams for i in range(lc - 1)):
            continue
        m = difflib.SequenceMatcher(None, name, c)
        if m.real_quick_ratio() >= 0.6 and m.quick_ratio() >= 0.6:
            r = m.ratio()
            if r >= 0.6:
                scored.append((r, c))
    scored.sort(key=lambda t: -t[0])
    # keep only candidates about as close as the best one
    found = [c for r, c in scored if r >= scored[0][0] - 0.08][:n] if scored else []
    if not found:
        low = name.lower()
        for c in pool:
            cl = c.lower()
            if len(low) >= 3 and len(cl) >= 3 and (low in cl or cl in low):
                found.append(c)
                if len(found) >= n:
                    break
    return found


def did_you_mean(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """A hint line ``did you mean a, b or c?``, or ``""`` when nothing is close."""
    found = closest(name, candidates, n)
    if not found:
        return ""
    if len(found) == 1:
        return f"did you mean {found[0]}?"
    return "did you mean " + ", ".join(found[:-1]) + f" or {found[-1]}?"


class UnknownEventError(TracefsError, LookupError):
    """No such trace event (``group:event``) in tracefs; hints name the closest events."""


class UnknownFieldError(UndertowError, LookupError):
    """A trace event has no field of that name; hints name the closest fields."""


class TracefsPermissionError(TracefsError, NeedRootError):
    """tracefs exists or could be mounted, but only root may use it."""


class AttachUnavailableError(FeatureUnavailableError, SourceError):
    """A probe line names an attach point this kernel cannot provide (e.g. a kprobe
    without CONFIG_KPROBES); carries the span of the line's target and hints
    naming what can serve instead (a tracepoint with the same data)."""

    def __init__(self, feature: str, message: str, *, source: str = "", span: Optional[Span] = None,
                 origin: str = "<input>", hints: Iterable[str] = ()) -> None:
        SourceError.__init__(self, message, source=source, span=span, origin=origin, hints=hints)
        self.feature = feature
