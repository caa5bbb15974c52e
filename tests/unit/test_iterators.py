"""bpftrace's iterator probes (``iter:task``, ``iter:task_file``; lang/iterators.py): the
attach-point spec, ``ctx`` and its members typed from the context struct, what bpftrace
0.17 refuses, and the program the generator makes (pointers NULL-checked up front). No
kernel needed: tests/live/test_run_iter_live.py runs them."""

import re

import pytest

from undertow.backends.bpf.compiler import compile_program
from undertow.errors import AttachUnavailableError, ParseError, ResolveError, SourceError, TypeCheckError
from undertow.kernel.arch import get_arch
from undertow.lang import ir
from undertow.lang.bt import parse_program
from undertow.lang.bt.probes import ITERATORS
from undertow.lang.resolve import resolve
from undertow.lang.types import PtrTy, RecordTy

from lang_fakes import TYPES, FakeKernel


def resolved(text, strict=False):
    p = parse_program(text, "<test>")
    resolve(p, FakeKernel(), strict_kprobes=strict, types=TYPES, arch="x86_64")
    return p


def compiled(text, **kw):
    p = resolved(text)
    return compile_program(p, arch=get_arch("x86_64"), self_pid=4321, pid=kw.get("pid"), output="ringbuf")


def error(cls, text, strict=False):
    with pytest.raises(cls) as ei:
        resolved(text, strict)
    return ei.value


def caret(text, e, what, nth=0):
    start = -1
    for _ in range(nth + 1):
        start = text.index(what, start + 1)
    assert (e.span.start, e.span.end) == (start, start + len(what)), text[e.span.start:e.span.end]


def printf_args(p):
    return [a.args for a in p.probes[0].actions if isinstance(a, ir.Printf)][0]


# ------------------------------------------------------------------ the spec


@pytest.mark.parametrize("spec,msg,bad", [
    ("iter:task*", "iter probe type does not support wildcards", "task*"),
    ("it:*", "iter probe type does not support wildcards", "*"),
    ("iter:tsk", "unknown iterator 'tsk'", "tsk"),
    ("iter:task:mypin", "pinning an iterator is not supported by undertow", ":mypin"),
    ("iter", "iter probe type takes 2 arguments (1 optional)", "iter"),
    ("iter:task:a:b", "iter probe type takes 2 arguments (1 optional)", "iter:task:a:b"),
])
def test_bad_iterator_specs_have_a_caret_and_a_hint(spec, msg, bad):
    src = spec + " { }"
    with pytest.raises(ParseError) as ei:
        parse_program(src, "<test>")
    e = ei.value
    assert e.message == msg and e.hints
    caret(src, e, bad)
    assert e.render().splitlines()[0].startswith("<test>:1:")


def test_unknown_iterator_names_the_ones_there_are():
    with pytest.raises(ParseError) as ei:
        parse_program("iter:task_fil { }")
    assert "did you mean task_file?" in ei.value.hints
    assert any("iter:task, iter:task_file" in h for h in ei.value.hints)
    assert set(ITERATORS) == {"task", "task_file"}


# ------------------------------------------------------------------ ctx and its members


def test_ctx_members_are_the_context_slots_typed_from_the_struct():
    p = resolved('iter:task_file { printf("%d %s %d %d %p\\n", ctx->task->pid, ctx->task->comm, ctx->fd, '
                 'ctx->file->f_pos, ctx->meta); }')
    pid, comm, fd, pos, meta = printf_args(p)
    assert isinstance(pid, ir.Member) and isinstance(pid.base, ir.Arg) and pid.base.index == 1
    assert isinstance(pid.base.type, PtrTy) and str(pid.base.type.target) == "struct task_struct"
    assert comm.base.index == 1 and str(comm.type) == "char[16]"
    assert isinstance(fd, ir.Arg) and fd.index == 2 and fd.type.size == 4 and not fd.type.signed
    assert pos.base.index == 3 and str(pos.base.type.target) == "struct file"
    assert isinstance(meta, ir.Arg) and meta.index == 0
    assert p.probes[0].name == "iter:task_file"


def test_ctx_alone_is_a_pointer_to_the_context_struct():
    p = resolved('iter:task { printf("%p\\n", ctx); }')
    (c,) = printf_args(p)
    assert isinstance(c.type, PtrTy) and isinstance(c.type.target, RecordTy)
    assert str(c.type.target) == "struct bpf_iter__task"


def test_a_member_the_context_does_not_have():
    src = 'iter:task { printf("%d\\n", ctx->fd); }'
    e = error(ResolveError, src)
    assert e.message == "struct bpf_iter__task has no member 'fd'"
    caret(src, e, "ctx->fd")


@pytest.mark.parametrize("src,msg,bad", [
    ('iter:task { $x = args->foo; }', "args.foo: iter probes have no args record", "args->foo"),
    ('iter:task { $x = arg0; }', "arg0 is not available at iter probes", "arg0"),
    ('iter:task { $x = retval; }', "retval exists only at return probes, not at iter", "retval"),
    ('iter:task { printf("%s\\n", func); }', "func is not available at iter probes", "func"),
    ('iter:task { signal("KILL"); }', 'signal can not be used with "iter" probes', 'signal("KILL")'),
    ('iter:task { printf("%d\\n", reg("ip")); }', 'reg can not be used with "iter" probes', 'reg("ip")'),
])
def test_what_an_iterator_does_not_have(src, msg, bad):
    e = error(TypeCheckError, src)
    assert e.message == msg
    caret(src, e, bad)


# ------------------------------------------------------------------ what bpftrace refuses


@pytest.mark.parametrize("src,msg,bad", [
    ("iter:task,iter:task_file { 1 }", "Only single iter attach point is allowed.", "iter:task"),
    ("iter:task,kprobe:do_exit { 1 }", "Only single iter attach point is allowed.", "iter:task"),
    ("iter:task { 1 } iter:task_file { 1 }", "only one iter probe can run", "iter:task_file"),
    ("kprobe:do_exit { 1 } iter:task { 1 }", "an iter probe runs alone: kprobe:do_exit cannot run with it",
     "kprobe:do_exit"),
])
def test_iterators_run_alone(src, msg, bad):
    e = error(ResolveError, src)
    assert e.message.startswith(msg) and e.hints
    caret(src, e, bad)


def test_begin_and_end_go_with_an_iterator():
    p = resolved('BEGIN { @n = 0; } iter:task { @n = count(); } END { print(@n); }')
    assert [pr.attach[0].kind for pr in p.probes] == ["begin", "iter", "end"]


def test_an_iterator_the_kernel_lacks_is_refused_in_bpftraces_words():
    src = 'iter:task_file { printf("OK"); }'
    e = error(AttachUnavailableError, src, strict=True)
    assert e.message.startswith("iter task_file not available for your kernel version: ")
    caret(src, e, "iter:task_file")
    resolved('iter:task { printf("OK"); }', strict=True)  # the fake kernel has the task iterator


# ------------------------------------------------------------------ the program


def test_the_program_is_a_tracing_program_with_its_pointers_checked_first():
    c = compiled('iter:task_file { printf("%d %d %d\\n", ctx->task->pid, ctx->fd, ctx->file->f_pos); }')
    cp = c.probes[0]
    assert cp.prog_type == "TRACING" and cp.ap.kind == "iter" and cp.name == "iter:task_file"
    t = cp.program.listing()
    before = t[:t.index("bpf_ringbuf_reserve")]
    # task (slot 1) and file (slot 3) loaded, checked and spilled before the record is reserved
    for off in ("0x8", "0x18"):
        assert re.search(rf"r0 = \*\(u64 \*\)\(r6 \+({off}|{int(off, 16)})\)\n.*if r0 == 0x0 goto", before), off
    # fd, not a pointer, is read where it is used
    after = t[t.index("bpf_ringbuf_reserve"):]
    assert re.search(r"r0 = \*\(u64 \*\)\(r6 \+(0x10|16)\)", after)
    # this process runs the program (its read(2)): no self-pid skip, no -p filter
    assert "get_current_pid_tgid" not in before
    c2 = compiled('iter:task { printf("%d\\n", ctx->task->pid); }', pid=77)
    t2 = c2.probes[0].program.listing()
    assert "get_current_pid_tgid" not in t2[:t2.index("bpf_ringbuf_reserve")]


def test_no_pointer_read_no_check():
    # bpftrace's printf("OK") runs for every task and once more for the final NULL one
    t = compiled('iter:task { printf("OK"); }').probes[0].program.listing()
    assert "(r6 +" not in t


def test_errors_are_source_errors():
    assert issubclass(AttachUnavailableError, SourceError)


# ------------------------------------------------------------------ the session


class _Ring:
    """A ring buffer with ``records`` waiting (the programs ran during the iterator's read)."""

    def __init__(self):
        self.records = []

    def pending(self):
        return len(self.records)

    def poll(self, timeout):
        pass

    def consume(self, fn, limit):
        n = 0
        while self.records and n < limit:
            fn(memoryview(self.records.pop(0)))
            n += 1
        return n


def test_the_first_poll_reads_the_iterator_to_its_end_then_the_run_ends(monkeypatch):
    from undertow.backends.bpf import runtime
    from undertow.backends.bpf.compiled import CompiledProgram

    s = runtime.ProgramSession(CompiledProgram([], {}, []), kernel=None)
    ring = s.rb = _Ring()
    s._iter_links = [7]
    calls = []

    def read(fd, n):
        calls.append(fd)
        if len(calls) == 1:
            raise BlockingIOError  # a million objects in one read: read again
        if len(calls) == 2:
            ring.records.append(b"\0" * 8)  # too short for a header: skipped, counted as read
            return b"x"
        return b""

    monkeypatch.setattr(runtime.sc, "iter_create", lambda link: 99 if link == 7 else -1)
    monkeypatch.setattr(runtime.sc, "close_fd", lambda fd: calls.append(("closed", fd)))
    monkeypatch.setattr(runtime.sc, "map_lookup_elem", lambda *a: None)
    monkeypatch.setattr(runtime.os, "read", read)
    out = s.poll(0.02, limit=1)
    assert calls == [99, 99, 99, ("closed", 99)]
    assert [type(r).__name__ for r in out] == ["ExitRequest"]  # the record read first, then the end
    assert s.poll(0) == [] and len(calls) == 4  # once
    s._closed = True  # nothing of it was opened
