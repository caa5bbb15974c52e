"""The tracer: it seizes the tasks, waits for their stops, reads the syscalls and makes the
Events, in the thread that reads them (``session.py`` calls :meth:`Tracer.pump` from ``poll``).

Every ptrace request must come from the thread that seized the tracee (kernel/ptrace.c,
ptrace_check_attach): the reader's. Doing the tracing there, not in a thread of its own,
matters for speed: a tracer thread handing each Event to the reader through the GIL took
~250 us per traced call where one thread takes ~60 us (bench/ptrace_overhead.py, before the
per-stop work was cut down: docs/ptrace.md). Between
stops it blocks in ``wait4(__WALL)``; a signal (Ctrl-C, the ``--duration`` alarm, the
session's timer for ``poll``'s timeout) ends the wait with EINTR. Per stop (man 2 ptrace,
"Stopped states"):

- ``PTRACE_EVENT_SECCOMP`` (a command under the seccomp filter): the syscall's number and
  arguments (``PTRACE_GET_SYSCALL_INFO``); ``PTRACE_SYSCALL`` when its exit is traced (the
  next syscall stop is that exit: the seccomp check runs after the entry report, Linux 4.8,
  commit 93e35efb8de4), else ``PTRACE_CONT``;
- a syscall stop (``SIGTRAP|0x80``, ``PTRACE_O_TRACESYSGOOD``): entry (``-p``: every syscall
  stops) or exit (return value, error flag);
- ``PTRACE_EVENT_FORK/VFORK/CLONE``: a new task (already traced, it reports
  ``PTRACE_EVENT_STOP`` first); ``PTRACE_EVENT_EXEC``: the name changes, and a thread that
  exec'd takes the leader's id (``PTRACE_GETEVENTMSG`` gives the former one);
- ``PTRACE_EVENT_STOP``: a new task's first stop or a ``PTRACE_INTERRUPT`` (resumed), or a
  group-stop (``PTRACE_LISTEN``: it stays stopped as without a tracer);
- anything else is a signal for the tracee: delivered on resume.

Stopping: ``-p``: every task is interrupted and detached at its next stop (running, as it
was; at most ``DETACH_SECONDS``, then the thread ends and the kernel detaches the rest).
``-c``: the command is killed (its seccomp filter stays with it, and with no tracer each
traced syscall would fail with ENOSYS), as ``PTRACE_O_EXITKILL`` would if undertow died.
"""

from __future__ import annotations

import gc
import os
import signal
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

from ...errors import UndertowError
from ...events import Event, Stats
from ...kernel import ptrace as pt
from .decode import STRING_SIZE, errno_name

__all__ = ["Tracer", "DETACH_SECONDS"]

#: How long a stop waits for the tasks of ``-p`` to reach a stop at which they can be detached.
DETACH_SECONDS = 0.8
_STOP_SIGNALS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
_SYSCALL_TRAP = signal.SIGTRAP | 0x80
_SYSCALL_STATUS = (_SYSCALL_TRAP << 8) | 0x7F
_SECCOMP_STATUS = (pt.EVENT_SECCOMP << 16) | (signal.SIGTRAP << 8) | 0x7F
_INFO_ENTRY, _INFO_EXIT, _INFO_SECCOMP = pt.INFO_ENTRY, pt.INFO_EXIT, pt.INFO_SECCOMP


class Task:
    """A traced thread: its ids, name, and the syscall it is in (``nr``/``args``) when its
    exit is awaited. ``born``: the fork/vfork/clone whose exit (0) a new task shows at its
    first stop; ``started``: that stop was seen."""

    __slots__ = ("tid", "tgid", "comm", "nr", "args", "quiet", "held", "born", "started")

    def __init__(self, tid: int, tgid: int, quiet: bool = False) -> None:
        self.tid, self.tgid, self.quiet = tid, tgid, quiet
        self.comm: Optional[str] = None
        self.nr: Optional[int] = None
        self.args: Any = ()
        self.held = False  # in a group-stop we left it in (PTRACE_LISTEN)
        self.born: Optional[int] = None
        self.started = False


def _tgid(tid: int) -> int:
    try:
        with open(f"/proc/{tid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return tid


def _comm(tid: int) -> str:
    try:
        with open(f"/proc/{tid}/comm", "rb") as f:
            return f.read().rstrip(b"\n").decode("utf-8", "surrogateescape")
    except OSError:
        return ""


class Tracer:
    """The tracer of one session (see the module's doc): :meth:`setup` seizes the tasks (or
    raises why not), :meth:`pump` handles stops and appends Events to a list, :meth:`release`
    lets go. ``finished``: no task is left, or they were released. ``error``: the command
    could not be started (reported by the next ``pump``)."""

    def __init__(self, plan: Any) -> None:
        self.plan = plan
        self.out: List[Event] = []
        self.finished = False
        self.error: Optional[BaseException] = None
        self.stopping = False
        self.child = 0
        self.child_status: Optional[int] = None
        self.tasks: Dict[int, Task] = {}
        self.seccomp = plan.argv is not None
        self.audit_arch = pt.AUDIT_ARCH.get(plan.arch, 0)
        self._exec_err = -1
        self.polling = False  # no wake-up signal could be installed: wait with WNOHANG
        self._prctl = PRCTL.get(plan.arch, -1)
        self._enter: Dict[int, List[_Prep]] = {nr: [_Prep(s) for s in ss] for nr, ss in plan.enter.items()}
        self._exit: Dict[int, List[_Prep]] = {nr: [_Prep(s) for s in ss] for nr, ss in plan.exit.items()}
        self._exit_nrs = frozenset(plan.exit)
        self._execs = _EXECS.get(plan.arch, ())
        self.render: Any = None  # a TextWriter: make text lines (set_render)
        self._mem = _MemReader()
        self.stats = Stats()
        self.stop_ns = 0  # events stamped after it are not shown (a stop's time)

    # -- set-up
    def _start_command(self) -> None:
        import shutil

        from ...kernel.seccomp import build_filter, install_filter

        argv = self.plan.argv
        path = argv[0] if os.sep in argv[0] else shutil.which(argv[0])
        if not path:
            raise UndertowError(f"{argv[0]}: command not found (in PATH)")
        prog = build_filter(self.plan.numbers, self.audit_arch)
        pt.libc()  # loaded before the fork: the child only calls it
        go_r, go_w = os.pipe()
        err_r, err_w = os.pipe2(os.O_CLOEXEC) if hasattr(os, "pipe2") else os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: wait to be seized, install the filter, exec (no shell)
            try:
                os.close(go_w)
                os.close(err_r)
                os.read(go_r, 1)
                os.close(go_r)
                install_filter(prog)
                os.execv(path, argv)
            except BaseException as e:  # noqa: BLE001 - reported to the parent, then exit
                try:
                    os.write(err_w, f"{argv[0]}: {getattr(e, 'strerror', None) or e}".encode()[:400])
                finally:
                    os._exit(127)
        os.close(go_r)
        os.close(err_w)
        self._exec_err = err_r
        self.child = pid
        opts = (pt.O_TRACESYSGOOD | pt.O_TRACEFORK | pt.O_TRACEVFORK | pt.O_TRACECLONE | pt.O_TRACEEXEC
                | pt.O_TRACESECCOMP | pt.O_EXITKILL)
        try:
            pt.seize(pid, opts)
        except OSError as e:
            os.kill(pid, signal.SIGKILL)
            os.close(go_w)
            raise _seize_error(e, pid, own_child=True) from None
        self.tasks[pid] = Task(pid, pid, quiet=True)  # its syscalls before the exec are undertow's
        os.write(go_w, b"g")
        os.close(go_w)

    def _attach(self, pid: int) -> None:
        # its threads and the processes it starts from now on are traced too (as -c's, and
        # as the ftrace and BPF backends' -p follow children)
        opts = pt.O_TRACESYSGOOD | pt.O_TRACEFORK | pt.O_TRACEVFORK | pt.O_TRACECLONE | pt.O_TRACEEXEC
        for _round in range(3):  # threads made while we seize: list again until none is new
            try:
                tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if t.isdigit())
            except OSError as e:
                if not self.tasks:
                    raise UndertowError(f"no process {pid}: {e.strerror}") from None
                break
            new = [t for t in tids if t not in self.tasks]
            if not new:
                break
            for t in new:
                try:
                    pt.seize(t, opts)
                except OSError as e:
                    if self.tasks or e.errno == 3:  # a thread that ended meanwhile
                        continue
                    raise _seize_error(e, pid, own_child=False) from None
                self.tasks[t] = Task(t, pid)
                try:
                    pt.interrupt(t)  # its first stop starts the PTRACE_SYSCALL loop
                except OSError:
                    pass  # it ended meanwhile: its exit comes next

    def setup(self) -> None:
        """Start the command (``-c``) or seize the process's threads (``-p``); raises
        :class:`UndertowError` with the reason and hints."""
        if self.plan.argv is not None:
            self._start_command()
        else:
            self._attach(self.plan.pid)

    def pump(self, deadline: float, limit: int, block: bool) -> List[Event]:
        """Handle stops until ``limit`` Events are made, ``deadline`` (``time.monotonic()``)
        passes, a wait is interrupted by a signal, or no task is left; ``block``: wait for
        stops (else only those already waiting). Returns the Events."""
        tasks = self.tasks
        out = self.out = []
        # the cyclic collector would pass over the batch's Events (GC-tracked) several times
        # while it is built: paused here, as the ftrace session does while decoding
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            self._pump(tasks, out, deadline, limit, block)
        finally:
            if paused:
                gc.enable()
        if self.stopping and tasks:
            self.release()
        if not tasks:
            self._done()
        return out

    def _pump(self, tasks: Dict[int, Task], out: List[Any], deadline: float, limit: int, block: bool) -> None:
        handle = self._handle
        wait = pt.wait_any
        nohang = self.polling or not block
        while tasks and not self.stopping and len(out) < limit:
            tid, status = wait(nohang)
            if tid > 0:
                try:
                    handle(tid, status)
                except OSError:
                    pass  # ESRCH: killed (SIGKILL) between its stop and our request; its exit comes next
                if time.monotonic() >= deadline:
                    break
                continue
            if tid < 0 and status == 4:  # EINTR: a signal (a stop, the timer for the timeout)
                break
            if tid < 0:  # ECHILD: nothing left
                tasks.clear()
                break
            # nothing waiting (WNOHANG)
            if not block or time.monotonic() >= deadline:
                break
            time.sleep(0.002)

    def _done(self) -> None:
        self.finished = True
        if self._exec_err >= 0:
            os.close(self._exec_err)
            self._exec_err = -1

    def _handle(self, tid: int, status: int) -> None:
        tasks = self.tasks
        # the two stops of every traced call first (a wait status: 0x7f = stopped, then the
        # signal, then the ptrace event: include/uapi/linux/ptrace.h, man 2 wait)
        if status & 0xFFFF == _SYSCALL_STATUS:
            task = tasks.get(tid)
            if task is not None:
                self._syscall_stop(task)
                return
        elif status == _SECCOMP_STATUS:
            task = tasks.get(tid)
            if task is not None:
                self._seccomp_stop(task)
                return
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            task = tasks.pop(tid, None)
            if tid == self.child:
                self.child_status = status
                if task is not None and task.quiet:
                    self._exec_failed()
            return
        if not os.WIFSTOPPED(status):
            return
        sig = os.WSTOPSIG(status)
        event = status >> 16
        task = tasks.get(tid)
        if task is None:  # a new task reporting before its parent's fork event
            task = tasks[tid] = Task(tid, _tgid(tid))
        if sig == _SYSCALL_TRAP:
            self._syscall_stop(task)
            return
        if event == pt.EVENT_STOP and not task.started:  # its first stop (seized, or a new task's)
            task.started = True
            if task.born is not None:
                nr, task.born = task.born, None
                self._born_events(task, nr)
        if sig == signal.SIGTRAP and event:
            if event == pt.EVENT_SECCOMP:
                self._seccomp_stop(task)
                return
            if event in (pt.EVENT_FORK, pt.EVENT_VFORK, pt.EVENT_CLONE):
                new = pt.event_msg(tid)
                child = tasks.get(new)
                if child is None:
                    tgid = new if event != pt.EVENT_CLONE else _tgid(new)
                    child = tasks[new] = Task(new, tgid)
                if task.nr is not None and not task.quiet:
                    # the child returns 0 from the same call (the tracepoint fires in it, as
                    # the ftrace and BPF backends show; no exit stop reports it: copy_process()
                    # clears the child's syscall tracing): its event at its first stop
                    if child.started:
                        self._born_events(child, task.nr)
                    else:
                        child.born = task.nr
            elif event == pt.EVENT_EXEC:
                former = pt.event_msg(tid)
                if former != tid and former in tasks:
                    old = tasks.pop(former)
                    task.nr, task.args = old.nr, old.args
                for t in [t for t in tasks.values() if t.tgid == task.tgid and t.tid != tid]:
                    tasks.pop(t.tid, None)  # the other threads are gone (de_thread)
                task.quiet = False
                task.comm = None
            self._resume(task)
            return
        if event == pt.EVENT_STOP:
            if sig in _STOP_SIGNALS:
                task.held = True
                pt.resume(tid, pt.PTRACE_LISTEN)
            else:
                task.held = False
                self._resume(task)
            return
        # a signal for the tracee: deliver it
        self._resume(task, sig)

    def _resume(self, task: Task, sig: int = 0) -> None:
        how = pt.PTRACE_SYSCALL if (not self.seccomp or task.nr is not None) else pt.PTRACE_CONT
        try:
            pt.resume(task.tid, how, sig)
        except OSError:
            pass  # it died meanwhile (ESRCH): its exit comes next

    def _seccomp_stop(self, task: Task) -> None:
        # (op, arch, ip, sp, nr, six args, ...): kernel/ptrace.syscall_words
        w = pt.syscall_words(task.tid)
        if w[0] == _INFO_SECCOMP and w[1] == self.audit_arch:
            nr = w[4]
            args = w[5:11]
            if nr == self._prctl and args[0] == PR_SET_NAME:
                task.comm = None  # read again at its next event (the call runs after this stop)
            if nr in self._exit_nrs:
                task.nr, task.args = nr, args
            specs = self._enter.get(nr)
            if specs and (not task.quiet or nr in self._execs):
                self._entry_events(task, specs, nr, args)
                return
        self._resume(task)

    def _syscall_stop(self, task: Task) -> None:
        w = pt.syscall_words(task.tid)
        op = w[0]
        if op == _INFO_EXIT:
            nr = task.nr
            task.nr, task.args = None, ()
            if nr is not None and not task.quiet:
                specs = self._exit.get(nr)
                if specs:
                    now = time.monotonic_ns()
                    if task.comm is None:
                        task.comm = _comm(task.tid)
                    # nothing more to read from the task: let it run while the events are made
                    self._resume(task)
                    ret = w[4] - (1 << 64) if w[4] >> 63 else w[4]
                    pend = self._collect(task, specs, nr, (), ret, bool(w[5] & 0xFF))
                    if pend:
                        self._emit(task, pend, now)
                    return
        elif op == _INFO_ENTRY:  # -p: every syscall
            nr = w[4]
            if w[1] == self.audit_arch:
                args = w[5:11]
                if nr == self._prctl and args[0] == PR_SET_NAME:
                    task.comm = None
                task.nr, task.args = (nr, args) if nr in self._exit_nrs else (None, ())
                specs = self._enter.get(nr)
                if specs:
                    self._entry_events(task, specs, nr, args)
                    return
            else:
                task.nr = None
        self._resume(task)

    # -- events
    def _born_events(self, task: Task, nr: int) -> None:
        """The exit events of the fork/vfork/clone ``nr`` in the new ``task`` (ret 0)."""
        specs = self._exit.get(nr)
        if specs:
            now = time.monotonic_ns()
            if task.comm is None:
                task.comm = _comm(task.tid)
            pend = self._collect(task, specs, nr, (), 0, False)
            if pend:
                self._emit(task, pend, now)

    def _entry_events(self, task: Task, specs: List[Any], nr: int, args: Any) -> None:
        """The events of a syscall's entry: what is read from the tracee (strings, socket
        addresses) while it is stopped, the rest (the Event or the text line) once it runs
        again, on the other CPU while this one formats (the next stop waits for it)."""
        now = time.monotonic_ns()
        if task.comm is None:
            task.comm = _comm(task.tid)
        pend = self._collect(task, specs, nr, args, 0, False)
        self._resume(task)
        if pend:
            self._emit(task, pend, now)

    def _collect(self, task: Task, specs: List[_Prep], nr: int, args: Any, ret: int, is_error: bool) -> List[Any]:
        """Per spec whose filter passes: ``(prep, values, errors, extras)``, ``values`` a
        tuple in the order of the spec's fields, or (a string could not be read) a fields
        dict with ``errors``; ``extras``: ``(names, values)`` (decode.extras_for) or None."""
        tid, tgid, comm = task.tid, task.tgid, task.comm
        pend = []
        mem = self._mem
        mem.tid = tid
        for p in specs:
            read = _read_str
            if p.filter is not None:
                strings: Dict[int, Any] = {}
                read = _cached_reader(strings)
                f = {}
                for name, src, is_str, mask, sign in p.filter_reads:
                    v = _value(task, src, is_str, mask, sign, nr, args, ret, read)
                    f[name] = "" if v is _Fault else v
                if not p.filter({"f": f, "comm": comm, "tid": tid, "pid": tgid}):
                    continue
            vals = p.values(nr, args, ret, tid, tgid, comm, read)
            errors: Optional[Dict[str, str]] = None
            if vals is None:  # a string could not be read: field by field, saying which
                vals, errors = {}, {}
                for name, src, is_str, mask, sign in p.fields:
                    v = _value(task, src, is_str, mask, sign, nr, args, ret, read)
                    if v is _Fault:
                        vals[name] = ""
                        errors[name] = "EFAULT"
                    else:
                        vals[name] = v
            extras = None
            if p.extras:
                names, got = [], []
                for name, mk in p.extras:
                    if name == "errno":
                        if is_error:
                            names.append(name)
                            got.append(errno_name(ret) or f"E{-ret}")
                        continue
                    try:
                        v = mk(args, mem.read)
                    except Exception:  # noqa: BLE001 - a decoding problem shows as no extra, never a crash
                        v = None
                    if v is not None:
                        names.append(name)
                        got.append(v)
                if names:
                    extras = (tuple(names), got)
            pend.append((p, vals, errors, extras))
        return pend

    def _emit(self, task: Task, pend: List[Any], now: int) -> None:
        """The records of :meth:`_collect`'s results: text lines when rendering
        (:meth:`set_render`) and the values came as a tuple, else Events. Counted in
        ``stats``; none after a stop's time (``stats.after_stop``)."""
        if self.stop_ns and now > self.stop_ns:
            self.stats.after_stop += len(pend)
            return
        out, render, counts = self.out, self.render, self.stats.events
        tid, tgid, comm = task.tid, task.tgid, task.comm or ""
        for p, vals, errors, extras in pend:
            name = p.name
            counts[name] = counts.get(name, 0) + 1
            if vals.__class__ is tuple:
                if render is not None:
                    key = extras[0] if extras is not None else ()
                    line = p.lines.get(key, 0)
                    if line == 0:
                        line = p.lines[key] = _line_maker(render, p, key)
                    if line is not None:
                        out.append(line(now, tgid, tid, comm, *vals, *extras[1]) if extras is not None
                                   else line(now, tgid, tid, comm, *vals))
                        continue
                fields = dict(zip(p.names, vals))
            else:
                fields = vals
            if extras is not None:
                fields.update(zip(*extras))
            out.append(Event(now, -1, tgid, tid, comm, name, fields, None, None, errors, p.formats))

    def set_render(self, writer: Any) -> bool:
        """Make text lines with ``writer`` (``output.text.TextWriter.line_source``) instead
        of Events where a line's values allow it (Session.render_lines)."""
        self.render = writer
        preps = [p for ps in (*self._enter.values(), *self._exit.values()) for p in ps]
        for p in preps:
            p.lines.clear()
        if writer is not None:
            # the column as wide as the longest probe's name from the first line, lines and
            # Events alike (line makers are made as their first event comes)
            writer.reserve([p.name for p in preps])
        return True

    # -- the end
    def _exec_failed(self) -> None:
        try:
            msg = os.read(self._exec_err, 400).decode("utf-8", "replace")
        except OSError:
            msg = ""
        if msg:
            self.error = UndertowError(f"cannot run the command: {msg}")

    def release(self) -> None:
        """Stop: kill the command's tasks (``-c``), detach the process's (``-p``). Idempotent."""
        tasks = self.tasks
        self.stopping = True
        try:
            self._release(tasks)
        finally:
            tasks.clear()
            self._done()

    def _release(self, tasks: "Dict[int, Task]") -> None:
        if self.seccomp:
            for tgid in {t.tgid for t in tasks.values()}:
                try:
                    os.kill(tgid, signal.SIGKILL)
                except OSError:
                    pass
            deadline = time.monotonic() + 2.0
            while tasks and time.monotonic() < deadline:
                tid, status = pt.wait_any(nohang=True)
                if tid > 0:
                    if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                        tasks.pop(tid, None)
                        if tid == self.child:
                            self.child_status = status
                    continue
                if tid < 0 and status != 4:
                    break
                time.sleep(0.002)
            return
        for t in list(tasks.values()):
            try:
                pt.interrupt(t.tid)
            except OSError:
                tasks.pop(t.tid, None)
        deadline = time.monotonic() + DETACH_SECONDS
        while tasks and time.monotonic() < deadline:
            tid, status = pt.wait_any(nohang=True)
            if tid == 0:
                time.sleep(0.001)
                continue
            if tid < 0:
                if status == 4:
                    continue
                break
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                tasks.pop(tid, None)
                continue
            sig = os.WSTOPSIG(status)
            event = status >> 16
            # a signal-delivery-stop keeps its signal; a group-stop stays one after the detach
            deliver = sig if (not event and sig != _SYSCALL_TRAP) else 0
            if event == pt.EVENT_STOP and sig in _STOP_SIGNALS:
                deliver = 0
            try:
                pt.resume(tid, pt.PTRACE_DETACH, deliver)
            except OSError:
                pass
            tasks.pop(tid, None)


def _prepare(fields: List[Any]) -> List[Any]:
    """``(name, source, kind, bits, signed)`` -> ``(name, source, is_str, mask, sign bit or 0)``."""
    return [(n, src, kind == "str", (1 << bits) - 1, (1 << (bits - 1)) if signed else 0)
            for n, src, kind, bits, signed in fields]


class _MemReader:
    """``read(addr, size)`` of the task ``tid`` (the extras' reader, made once)."""

    __slots__ = ("tid",)

    def __init__(self) -> None:
        self.tid = 0

    def read(self, addr: int, size: int) -> Optional[bytes]:
        return pt.read_memory(self.tid, addr, size)


class _Prep:
    """A probe spec made ready for the stops: ``values(nr, args, ret, tid, tgid, comm, read)``
    gives its field values in ``names``' order (None when a string cannot be read);
    ``fields``/``filter_reads``: ``(name, source, is_str, mask, sign bit)``; ``lines``: text
    line makers by the extra fields present (:func:`_line_maker`)."""

    __slots__ = ("spec", "name", "formats", "filter", "extras", "fields", "names", "values", "filter_reads",
                 "lines")

    def __init__(self, spec: Any) -> None:
        self.spec, self.name, self.formats, self.filter = spec, spec.name, spec.formats, spec.filter
        self.extras = spec.extras
        self.fields = _prepare(spec.fields)
        self.names = [f[0] for f in self.fields]
        self.values = _compile_values(self.fields)
        self.filter_reads = _prepare([(n,) + r for n, r in spec.filter_reads.items()])
        self.lines: Dict[Any, Any] = {}


def _compile_values(fields: List[Any]) -> Any:
    """One generated function giving a spec's field values (as :func:`_value` gives each):
    a tuple display in one expression, no per-field loop or call but the string reads."""
    body, items = [], []
    for i, (_name, src, is_str, mask, sign) in enumerate(fields):
        if src in ("comm", "pid", "tid", "cpu"):
            expr = {"comm": "comm", "pid": "tgid", "tid": "tid", "cpu": "-1"}[src]
        else:
            raw = src if src in ("nr", "ret") else f"a[{int(src)}]"
            if is_str:
                body.append(f"    s{i} = read(tid, {raw})")
                body.append(f"    if s{i} is FAULT: return None")
                expr = f"s{i}"
            elif sign:
                expr = f"(({raw} & {mask}) ^ {sign}) - {sign}"
            else:
                expr = f"{raw} & {mask}"
        items.append(expr)
    head = ["def values(nr, args, ret, tid, tgid, comm, read):",
            "    a = args if len(args) >= 6 else (tuple(args) + ZEROS)[:6]"]
    src_text = "\n".join(head + body + ["    return (" + "".join(f"{x}, " for x in items) + ")"]) + "\n"
    env: Dict[str, Any] = {"FAULT": _Fault, "ZEROS": (0,) * 6}
    exec(compile(src_text, "<ptrace values>", "exec"), env)  # noqa: S102 - made here from ints and arg indexes
    return env["values"]


def _line_maker(writer: Any, p: _Prep, extra_names: Any) -> Any:
    """``line(ts, tgid, tid, comm, *values)``: the text line ``writer`` would print for the
    Event of ``p`` with these fields (then ``extra_names``' values), made from the writer's
    ``line_source``; None when it cannot (names that are not identifiers, or twice)."""
    all_names = list(p.names) + list(extra_names)
    if len(set(all_names)) != len(all_names):
        return None
    # the struct code of each value (line_source): ints as masked (Q) or sign-extended (q)
    codes = ["" if is_str or src == "comm" else ("q" if sign or src == "cpu" else "Q")
             for _n, src, is_str, _m, sign in p.fields] + [""] * len(extra_names)
    got = writer.line_source(p.name, all_names, p.formats, codes)
    if got is None:
        return None
    env = dict(got["env"])
    env["_C"] = writer.comm
    env["_last"] = [None, ""]  # the prefix (ids, name, probe column) of the last line: a run of one task's
    params = "".join(f", v{i}" for i in range(len(all_names)))
    src_text = "\n".join([
        f"def line(ts, tgid, tid, comm{params}):",
        f"    {got['setup']}",
        "    if t0 is None:",
        "        t0 = W.t0 = ts",
        "    key = (tid, tgid, comm, W._probe_width)",
        "    if key == _last[0]:",
        "        pre = _last[1]",
        "    else:",
        "        cpu = -1",
        "        comm = _C(comm)",
        f"        pre = {got['prefix']}",
        "        _last[0], _last[1] = key, pre",
        f"    return {got['line']}",
    ]) + "\n"
    exec(compile(src_text, f"<ptrace line {p.name}>", "exec"), env)  # noqa: S102 - identifiers checked by line_source
    return env["line"]


def _value(task: Task, src: Any, is_str: bool, mask: int, sign: int, nr: int, args: Any, ret: int,
           read: Any) -> Any:
    """One field's value (``_prepare``'s tuple), ``_Fault`` for a string that cannot be read."""
    if src == "nr":
        raw = nr
    elif src == "ret":
        raw = ret
    elif src == "comm":
        return task.comm
    elif src == "pid":
        return task.tgid
    elif src == "tid":
        return task.tid
    elif src == "cpu":
        return -1
    else:
        raw = args[src] if src < len(args) else 0
    if is_str:
        return read(task.tid, raw)
    raw &= mask
    return raw - (sign << 1) if sign and raw & sign else raw


def _read_str(tid: int, addr: int) -> Any:
    """The string at ``addr`` in ``tid`` (at most STRING_SIZE - 1 bytes), ``_Fault`` if unreadable."""
    data = pt.read_string(tid, addr, STRING_SIZE) if addr else None
    return data.decode("utf-8", "surrogateescape") if data is not None else _Fault


def _cached_reader(strings: Dict[int, Any]) -> Any:
    """:func:`_read_str` reading each address once (a filter and the fields read the same)."""
    def read(tid: int, addr: int) -> Any:
        got = strings.get(addr)
        if got is None:
            got = strings[addr] = _read_str(tid, addr)
        return got
    return read


class _FaultType:
    __slots__ = ()


_Fault = _FaultType()

#: execve and execveat: the only syscalls shown of the child before its exec
_EXECS = {"x86_64": (59, 322), "aarch64": (221, 281)}
#: prctl(2), whose PR_SET_NAME (15, include/uapi/linux/prctl.h) renames the thread
PRCTL = {"x86_64": 157, "aarch64": 167}
PR_SET_NAME = 15


def _seize_error(e: OSError, pid: int, own_child: bool) -> UndertowError:
    """Why ``PTRACE_SEIZE`` failed, for people (man 2 ptrace, Yama's ptrace_scope)."""
    hints = []
    if e.errno == 1:  # EPERM
        scope = _read("/proc/sys/kernel/yama/ptrace_scope")
        if scope:
            hints.append(f"kernel.yama.ptrace_scope is {scope}"
                         + {"1": ": only a parent may trace its child (use -c CMD, or run as root)",
                            "2": ": only root (CAP_SYS_PTRACE) may attach", "3": ": ptrace attach is disabled"}
                         .get(scope, ""))
        if not own_child:
            hints.append("a process of another user, a setuid program, or one already traced (strace, gdb) "
                         "cannot be attached without root")
    return UndertowError(f"cannot ptrace {'the command' if own_child else f'pid {pid}'}: "
                         f"{os.strerror(e.errno)}", hints=hints)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""
