"""The preprocessing step of bpftrace scripts, done without a C preprocessor.

bpftrace runs clang's preprocessor over a script to pull in kernel headers.
undertow takes kernel types from BTF (``/sys/kernel/btf/vmlinux``) instead, so
this step only has to:

- blank comments (``//`` and ``/* */``) and the ``#!`` line;
- accept and ignore ``#include`` lines;
- keep ``#define NAME value`` of simple (object-like) macros in a table the
  parser substitutes;
- evaluate ``#if``/``#ifdef``/``#ifndef``/``#elif``/``#else``/``#endif`` with
  ``BPFTRACE_HAVE_BTF`` defined (bpftrace defines it when the kernel has BTF,
  and undertow always reads BTF), blanking the inactive lines;
- take C ``struct``/``union`` definitions written in the script (bpftrace tools
  declare partial kernel structs such as ``struct nameidata``) out of the text
  into a small table the resolver can use when BTF lacks the type.

Everything removed is replaced by spaces (newlines kept), so the text handed to
the parser has the same length and offsets as the user's text: every span still
points at the right line and column.
"""

from __future__ import annotations

import re
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Set, Tuple

from ...errors import ParseError, Span

__all__ = ["CMember", "CStructDef", "Preprocessed", "preprocess", "KNOWN_MACROS"]

#: Constants that scripts take from headers undertow does not read (``#include``
#: is ignored). Values from include/uapi/linux/socket.h + include/linux/socket.h
#: (address families), include/linux/sched.h (task states, which are macros,
#: not enums, so BTF does not carry them) and the errno-base.h errors.
KNOWN_MACROS: Dict[str, int] = {
    "AF_UNSPEC": 0, "AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_INET6": 10,
    "AF_NETLINK": 16, "AF_PACKET": 17, "AF_VSOCK": 40, "AF_XDP": 44,
    "TASK_RUNNING": 0x0000, "TASK_INTERRUPTIBLE": 0x0001, "TASK_UNINTERRUPTIBLE": 0x0002,
    "__TASK_STOPPED": 0x0004, "__TASK_TRACED": 0x0008, "EXIT_DEAD": 0x0010,
    "EXIT_ZOMBIE": 0x0020, "TASK_PARKED": 0x0040, "TASK_DEAD": 0x0080,
    "TASK_WAKEKILL": 0x0100, "TASK_WAKING": 0x0200, "TASK_NOLOAD": 0x0400,
    "TASK_NEW": 0x0800,
    # include/uapi/asm-generic/errno-base.h
    "EPERM": 1, "ENOENT": 2, "ESRCH": 3, "EINTR": 4, "EIO": 5, "ENXIO": 6, "E2BIG": 7,
    "ENOEXEC": 8, "EBADF": 9, "ECHILD": 10, "EAGAIN": 11, "ENOMEM": 12, "EACCES": 13,
    "EFAULT": 14, "EBUSY": 16, "EEXIST": 17, "ENODEV": 19, "ENOTDIR": 20, "EISDIR": 21,
    "EINVAL": 22, "ENFILE": 23, "EMFILE": 24, "ENOSPC": 28, "EROFS": 30, "EPIPE": 32,
}

#: Names defined while preprocessing (bpftrace defines this one when BTF is available).
PREDEFINED = ("BPFTRACE_HAVE_BTF",)


class CMember:
    """One member of a script-defined struct: ``type_text`` as written, ``dims`` array sizes."""

    __slots__ = ("name", "type_text", "dims", "bits", "span")

    def __init__(self, name: str, type_text: str, dims: Tuple[int, ...] = (), bits: Optional[int] = None,
                 span: Optional[Span] = None) -> None:
        self.name = name
        self.type_text = type_text
        self.dims = dims
        self.bits = bits
        self.span = span


class CStructDef:
    """A ``struct NAME { ... };`` (or union) written in the script.

    Sizes and offsets are left to the resolver (it knows the member types from
    BTF); this only records names, types as written and array dimensions.
    """

    __slots__ = ("name", "kind", "members", "span")

    def __init__(self, name: str, kind: str = "struct", members: Optional[List[CMember]] = None,
                 span: Optional[Span] = None) -> None:
        self.name = name
        self.kind = kind
        self.members = [] if members is None else members
        self.span = span

    @property
    def key(self) -> str:
        return f"{self.kind} {self.name}"


class Preprocessed:
    """The masked text (same length as the input) and what was taken out of it."""

    __slots__ = ("text", "defines", "define_spans", "structs", "includes")

    def __init__(self, text: str) -> None:
        self.text = text
        self.defines: Dict[str, str] = {}
        self.define_spans: Dict[str, Span] = {}
        self.structs: Dict[str, CStructDef] = {}
        self.includes: List[str] = []


def _blank(s: str) -> str:
    return "".join("\n" if c == "\n" else " " for c in s)


def mask_comments(text: str, origin: str = "<stdin>") -> str:
    """Replace comments (and a leading ``#!`` line) by spaces, keeping strings intact."""
    out = list(text)
    n = len(text)
    i = 0
    if text.startswith("#!"):
        j = text.find("\n")
        j = n if j < 0 else j
        for k in range(j):
            out[k] = " "
        i = j
    while i < n:
        c = text[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            i = min(j + 1, n)
            continue
        if c == "/" and i + 1 < n and text[i + 1] == "/":
            j = text.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                out[k] = " "
            i = j
            continue
        if c == "/" and i + 1 < n and text[i + 1] == "*":
            j = text.find("*/", i + 2)
            if j < 0:
                raise ParseError("unterminated comment", source=text, span=Span(i, i + 2),
                                 origin=origin, hints=["close it with */"])
            for k in range(i, j + 2):
                if out[k] != "\n":
                    out[k] = " "
            i = j + 2
            continue
        i += 1
    return "".join(out)


# compiled on first use (re caches them): only scripts with these constructs pay for them
_DEFINE = (r"([A-Za-z_][A-Za-z0-9_]*)(\()?\s*(.*)$", re.ASCII)
_DIGITS = "0123456789"
_IDENT_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_WORD_START = frozenset(_IDENT_START)


def _directive(line: str) -> Optional[Tuple[str, str]]:
    """``(word, rest)`` of a ``#word rest`` line (blanks allowed around ``#``), else None."""
    body = line.lstrip(" \t")
    if not body.startswith("#"):
        return None
    body = body[1:].lstrip(" \t")
    end = 0
    while end < len(body) and body[end] in _WORD_START:
        end += 1
    return body[:end], body[end:].strip()


def preprocess(text: str, origin: str = "<stdin>") -> Preprocessed:
    """Mask comments and directives, evaluate conditionals, lift struct definitions.

    Raises :class:`ParseError` for an unterminated comment, an unbalanced
    ``#if``/``#endif``, an unknown directive or a malformed struct definition.
    """
    masked = mask_comments(text, origin)
    res = Preprocessed(text="")
    defined: Set[str] = set(PREDEFINED)
    lines = masked.split("\n")
    out: List[str] = []
    # stack of (active now, some branch already taken, parent active, span of the #if)
    stack: List[Tuple[bool, bool, bool, Span]] = []
    active = True
    pos = 0
    for line in lines:
        start = pos
        pos += len(line) + 1
        directive = _directive(line)
        if directive is None:
            out.append(line if active else _blank(line))
            continue
        word, rest = directive
        hash_at = start + line.index("#")
        span = Span(hash_at, start + len(line.rstrip()))
        if word in ("if", "ifdef", "ifndef"):
            if word == "ifdef":
                cond = rest.split()[0] in defined if rest else False
            elif word == "ifndef":
                cond = rest.split()[0] not in defined if rest else True
            else:
                cond = _eval_if(rest, defined, text, span, origin)
            stack.append((active and cond, cond, active, span))
            active = active and cond
        elif word in ("elif", "else"):
            if not stack:
                raise ParseError(f"#{word} without #if", source=text, span=span, origin=origin)
            _, taken, parent, ifspan = stack.pop()
            cond = (not taken) and (_eval_if(rest, defined, text, span, origin) if word == "elif" else True)
            stack.append((parent and cond, taken or cond, parent, ifspan))
            active = parent and cond
        elif word == "endif":
            if not stack:
                raise ParseError("#endif without #if", source=text, span=span, origin=origin)
            _, _, active, _ = stack.pop()
        elif not active:
            pass
        elif word == "include":
            res.includes.append(rest)
        elif word == "define":
            d = re.compile(*_DEFINE).match(rest)
            if d is None:
                raise ParseError("#define needs a name", source=text, span=span, origin=origin)
            name = d.group(1)
            defined.add(name)
            if not d.group(2):  # function-like macros are accepted and not expanded
                res.defines[name] = d.group(3).strip()
                vstart = start + line.find(d.group(3)) if d.group(3) else span.end
                res.define_spans[name] = Span(vstart, vstart + len(d.group(3).strip()))
        elif word == "undef":
            name = rest.split()[0] if rest else ""
            defined.discard(name)
            res.defines.pop(name, None)
        elif word in ("pragma", "error", "warning", "line", ""):
            if word == "error":
                raise ParseError(f"#error {rest}", source=text, span=span, origin=origin)
        else:
            raise ParseError(f"unknown preprocessor directive '#{word}'", source=text, span=span,
                             origin=origin, hints=["supported: #include (ignored: types come from BTF), "
                                                   "#define, #if/#ifdef/#ifndef/#elif/#else/#endif"])
        out.append(_blank(line))
    if stack:
        raise ParseError("#if without #endif", source=text, span=stack[-1][3], origin=origin)
    code = "\n".join(out)
    code = _lift_structs(code, text, origin, res)
    res.text = code
    return res


# --------------------------------------------------------------------------- #if expressions

_IF_TOKEN = (r"\s*(?:(defined)|([A-Za-z_][A-Za-z0-9_]*)|(0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]*|(&&|\|\||==|!=|[!()]))",
             re.ASCII)


def _eval_if(expr: str, defined: Set[str], text: str, span: Span, origin: str) -> bool:
    """Evaluate a ``#if`` condition: integers, ``defined(X)``, ``! && || == != ( )``."""
    toks: List[str] = []
    i = 0
    expr = expr.strip()
    while i < len(expr):
        m = re.compile(*_IF_TOKEN).match(expr, i)
        if m is None or m.end() == i:
            raise ParseError("unsupported #if expression", source=text, span=span, origin=origin,
                             hints=["use defined(NAME), integers, !, &&, ||, ==, !="])
        toks.append(m.group(0).strip())
        i = m.end()
    pos = [0]
    depth = [0]

    def peek() -> str:
        return toks[pos[0]] if pos[0] < len(toks) else ""

    def take() -> str:
        t = peek()
        pos[0] += 1
        return t

    def atom() -> int:
        t = take()
        if t in ("!", "("):
            depth[0] += 1
            if depth[0] > 64:
                raise ParseError("#if expression nested too deeply (limit 64 levels)", source=text, span=span,
                                 origin=origin)
            try:
                if t == "!":
                    return int(not atom())
                v = orx()
            finally:
                depth[0] -= 1
            if take() != ")":
                raise ParseError("unbalanced ( in #if", source=text, span=span, origin=origin)
            return v
        if t == "defined":
            paren = peek() == "("
            if paren:
                take()
            name = take()
            if paren and take() != ")":
                raise ParseError("unbalanced ( in #if", source=text, span=span, origin=origin)
            return int(name in defined)
        if t and t[0] in _DIGITS:
            body = t.rstrip("uUlL")
            try:
                return int(body, 16) if body[:2] in ("0x", "0X") else int(body, 8 if body[0] == "0" else 10)
            except ValueError:
                raise ParseError(f"bad number '{t}' in #if", source=text, span=span, origin=origin) from None
        if t and t[0] in _IDENT_START:
            return 1 if t in defined else 0
        raise ParseError("unsupported #if expression", source=text, span=span, origin=origin)

    def eq() -> int:
        v = atom()
        while peek() in ("==", "!="):
            op = take()
            w = atom()
            v = int(v == w) if op == "==" else int(v != w)
        return v

    def andx() -> int:
        v = eq()
        while peek() == "&&":
            take()
            w = eq()
            v = int(bool(v) and bool(w))
        return v

    def orx() -> int:
        v = andx()
        while peek() == "||":
            take()
            w = andx()
            v = int(bool(v) or bool(w))
        return v

    if not toks:
        raise ParseError("#if needs a condition", source=text, span=span, origin=origin)
    v = orx()
    if pos[0] != len(toks):
        raise ParseError("unsupported #if expression", source=text, span=span, origin=origin)
    return bool(v)


# --------------------------------------------------------------------------- struct definitions

_STRUCT_HEAD = (r"\b(struct|union)\s+([A-Za-z_][A-Za-z0-9_]*)\s*\{",)
_WORD = frozenset(_IDENT_START + _DIGITS)
_MEMBER = (
    r"^\s*(?P<type>(?:(?:const|volatile|unsigned|signed|struct|union|enum)\s+)*[A-Za-z_][A-Za-z0-9_]*"
    r"(?:\s+(?:int|long|char|short))*)\s*(?P<stars>[\s*]*?)\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"\s*(?P<dims>(?:\[\s*\d+\s*\]\s*)*)\s*(?::\s*(?P<bits>\d+))?\s*$", re.ASCII)


def _lift_structs(code: str, text: str, origin: str, res: Preprocessed) -> str:
    """Take top-level ``struct X { ... };`` definitions out of ``code`` into ``res.structs``.

    Only definitions at brace depth 0 count: ``(struct sock *)`` inside a probe
    block is a cast, and a probe spec never starts with ``struct``.
    """
    out = list(code)
    depth = 0
    i = 0
    n = len(code)
    while i < n:
        c = code[i]
        if c in "\"'":
            j = i + 1
            while j < n and code[j] != c and code[j] != "\n":
                j += 2 if code[j] == "\\" else 1
            i = j + 1
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth = max(0, depth - 1)
        elif depth == 0 and code.startswith(("struct", "union"), i) and (i == 0 or code[i - 1] not in _WORD):
            m = re.compile(*_STRUCT_HEAD).match(code, i)
            if m is not None:
                end = _closing_brace(code, m.end())
                if end < 0:
                    raise ParseError(f"unterminated {m.group(1)} definition", source=text,
                                     span=Span(m.start(), m.end()), origin=origin,
                                     hints=["close it with };"])
                body_start = m.end()
                sdef = CStructDef(m.group(2), m.group(1), span=Span(m.start(), end + 1))
                if sdef.key in res.structs:
                    first = res.structs[sdef.key].span
                    line = text.count("\n", 0, first.start) + 1 if first else 0
                    raise ParseError(f"{sdef.key} is defined twice", source=text,
                                     span=Span(m.start(2), m.end(2)), origin=origin,
                                     hints=[f"the first definition is on line {line}; remove one"])
                _parse_members(code, body_start, end, sdef, text, origin, res)
                stop = end + 1
                k = stop
                while k < n and code[k] in " \t\r\n":
                    k += 1
                if k < n and code[k] == ";":
                    stop = k + 1
                res.structs[sdef.key] = sdef
                for k in range(m.start(), stop):
                    if out[k] != "\n":
                        out[k] = " "
                i = stop
                continue
        i += 1
    return "".join(out)


_QUALIFIERS = frozenset(("const", "volatile"))
_INT_WORDS = frozenset(("signed", "unsigned", "char", "short", "int", "long"))


def _bad_type(words: List[str]) -> str:
    """What is wrong with a member type written as ``words`` (C's rules for the type
    specifiers: ``char char``, ``struct struct``, ``unsigned signed`` are not types), or ""."""
    words = [w for w in words if w not in _QUALIFIERS]
    if not words:
        return "no type"
    if words[0] in ("struct", "union", "enum"):
        if len(words) != 2 or words[1] in ("struct", "union", "enum") or words[1] in _INT_WORDS:
            return f"'{words[0]}' takes one name"
        return ""
    if any(w in ("struct", "union", "enum") for w in words):
        return "'struct', 'union' and 'enum' come first"
    if not all(w in _INT_WORDS for w in words):
        return "" if len(words) == 1 else "a type name stands alone"
    count = {w: words.count(w) for w in words}
    if count.get("signed", 0) + count.get("unsigned", 0) > 1:
        return "one of signed or unsigned"
    if count.get("long", 0) > 2 or any(count.get(w, 0) > 1 for w in ("char", "short", "int")):
        return "a type word repeated"
    kinds = [w for w in ("char", "short", "long") if w in count]
    if len(kinds) > 1:
        return f"'{kinds[0]}' and '{kinds[1]}' together"
    return ""


def _closing_brace(code: str, start: int) -> int:
    """The index of the ``}`` closing the brace opened just before ``start`` (-1: none)."""
    depth = 1
    for i in range(start, len(code)):
        if code[i] == "{":
            depth += 1
        elif code[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _split_top(code: str, start: int, end: int, sep: str) -> List[Tuple[int, int]]:
    """``code[start:end]`` cut at each ``sep`` outside braces, as (start, end) pairs; a
    ``}`` at depth 0 followed by a declarator ends a declaration too (``struct { int a } x``)."""
    parts: List[Tuple[int, int]] = []
    depth = 0
    pos = start
    for i in range(start, end):
        c = code[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append((pos, i))
            pos = i + 1
    parts.append((pos, end))
    return parts


_DECLARATOR = (r"^\s*(?P<stars>[\s*]*?)\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
               r"\s*(?P<dims>(?:\[\s*\d+\s*\]\s*)*)\s*(?::\s*(?P<bits>\d+))?\s*$", re.ASCII)
_NESTED_HEAD = (r"\s*(struct|union)\s*([A-Za-z_][A-Za-z0-9_]*)?\s*\{", re.ASCII)


def _parse_members(code: str, start: int, end: int, sdef: CStructDef, text: str, origin: str,
                   res: Preprocessed) -> None:
    """The members of ``sdef`` from ``code[start:end]``: C declarations, several declarators
    to one type (``unsigned int a:4, b:8;``), bitfields, arrays, and nested struct or union
    definitions (``struct { int x; } bar;``, anonymous ones too), which become structs of
    their own (``struct Foo::bar``) defined before ``sdef``."""
    for dstart, dend in _split_top(code, start, end, ";"):
        decl = code[dstart:dend]
        if not decl.strip():
            continue
        lead = len(decl) - len(decl.lstrip())
        span = Span(dstart + lead, dstart + len(decl.rstrip()))
        if "(" in decl:
            raise ParseError("function-pointer members are not supported in script structs",
                             source=text, span=span, origin=origin,
                             hints=["declare it as a pointer: 'void *callback;'"])
        if "{" in decl:
            dstart, decl, type_text = _nested_member(code, dstart, dend, sdef, text, origin, res, span)
            if not decl.strip():
                sdef.members.append(CMember("", type_text, (), None, span))  # an anonymous member
                continue
            parts = [(dstart + a, dstart + b) for a, b in _split_top(decl, 0, len(decl), ",")]
        else:
            parts = _split_top(code, dstart, dend, ",")
            m = re.compile(*_MEMBER).match(code[parts[0][0]:parts[0][1]])
            if m is None:
                raise ParseError(f"cannot parse this member of {sdef.key}", source=text, span=span, origin=origin,
                                 hints=["write members as in C: 'struct path path;', 'unsigned int n;', "
                                        "'char c[16];'"])
            type_text = " ".join(m.group("type").split())
            bad = _bad_type(type_text.split())
            if bad:
                tstart = parts[0][0] + m.start("type")
                raise ParseError(f"bad type '{type_text}' for member '{m.group('name')}' of {sdef.key}: {bad}",
                                 source=text, span=Span(tstart, parts[0][0] + m.end("type")), origin=origin,
                                 hints=["write members as in C: 'unsigned long n;', 'struct path path;', 'u64 x;'"])
            parts[0] = (parts[0][0] + m.start("stars"), parts[0][1])
        for pstart, pend in parts:
            _add_member(code, pstart, pend, type_text, sdef, text, origin, span)


def _nested_member(code: str, dstart: int, dend: int, sdef: CStructDef, text: str, origin: str,
                   res: Preprocessed, span: Span) -> Tuple[int, str, str]:
    """A member whose type is defined in place: the struct defined (``res.structs``), then
    (where its declarators start, their text, its type as written)."""
    m = re.compile(*_NESTED_HEAD).match(code, dstart, dend)
    close = _closing_brace(code, m.end()) if m is not None else -1
    if m is None or close < 0 or close >= dend:
        raise ParseError(f"cannot parse this member of {sdef.key}", source=text, span=span, origin=origin,
                         hints=["a nested definition is written 'struct { int x; } name;'"])
    n = sum(1 for k in res.structs if k.startswith(f"{sdef.key}::")) + 1
    inner = CStructDef(m.group(2) or f"{sdef.name}::{n}", m.group(1), span=span)
    if inner.key in res.structs:
        raise ParseError(f"{inner.key} is defined twice", source=text, span=span, origin=origin)
    _parse_members(code, m.end(), close, inner, text, origin, res)
    res.structs[inner.key] = inner
    return close + 1, code[close + 1:dend], inner.key


def _add_member(code: str, start: int, end: int, type_text: str, sdef: CStructDef, text: str, origin: str,
                span: Span) -> None:
    """One declarator (``*name[2][3]``, ``name : 4``) of a member of type ``type_text``."""
    m = re.compile(*_DECLARATOR).match(code[start:end])
    if m is None:
        raise ParseError(f"cannot parse this member of {sdef.key}", source=text, span=span, origin=origin,
                         hints=["write members as in C: 'struct path path;', 'unsigned int a:4, b:4;', "
                                "'char c[16];'"])
    name = m.group("name")
    nstart = start + m.start("name")
    if name in _INT_WORDS or name in _QUALIFIERS or name in ("struct", "union", "enum"):
        raise ParseError(f"member of {sdef.key} has no name ('{name}' is a C keyword)", source=text,
                         span=Span(nstart, nstart + len(name)), origin=origin,
                         hints=["write members as in C: 'int count;'"])
    for prev in sdef.members:
        if prev.name == name:
            line = text.count("\n", 0, prev.span.start) + 1 if prev.span else 0
            raise ParseError(f"duplicate member '{name}' in {sdef.key}", source=text,
                             span=Span(nstart, nstart + len(name)), origin=origin,
                             hints=[f"'{name}' is already declared on line {line}"])
    stars = m.group("stars").replace(" ", "").replace("\t", "").replace("\n", "")
    if stars:
        type_text += " " + stars
    dims = tuple(int(d) for d in re.findall(r"[0-9]+", m.group("dims") or ""))
    bits = int(m.group("bits")) if m.group("bits") else None
    sdef.members.append(CMember(name, type_text, dims, bits, Span(start, end)))
