"""The tracer: it seizes the tasks, waits for their stops, reads the syscalls and makes the
Events, in the thread that reads them (``session.py`` calls :meth:`Tracer.pump` from ``poll``).

Every ptrace request must come from the thread that seized the tracee (kernel/ptrace.c,
ptrace_check_attach): the reader's. Doing the tracing there, not in a thread of its own,
matters for speed: a tracer thread handing each Event to the reader through the GIL took
~250 us per traced call where one thread takes ~60 us (bench/ptrace_overhead.py). Between
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

import os
import signal
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

from ...errors import UndertowError
from ...events import Event
from ...kernel import ptrace as pt
from .decode import STRING_SIZE, errno_name

__all__ = ["Tracer", "DETACH_SECONDS"]

#: How long a stop waits for the tasks of ``-p`` to reach a stop at which they can be detached.
DETACH_SECONDS = 0.8
_STOP_SIGNALS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
_SYSCALL_TRAP = signal.SIGTRAP | 0x80
_SYSCALL_STATUS = (_SYSCALL_TRAP << 8) | 0x7F
_SECCOMP_STATUS = (pt.EVENT_SECCOMP << 16) | (signal.SIGTRAP << 8) | 0x7F


class Task:
    """A traced thread: its ids, name, and the syscall it is in (``nr``/``args``) when its
    exit is awaited."""

    __slots__ = ("tid", "tgid", "comm", "nr", "args", "quiet", "held")

    def __init__(self, tid: int, tgid: int, quiet: bool = False) -> None:
        self.tid, self.tgid, self.quiet = tid, tgid, quiet
        self.comm: Optional[str] = None
        self.nr: Optional[int] = None
        self.args: Any = ()
        self.held = False  # in a group-stop we left it in (PTRACE_LISTEN)


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
        self._prepared: Dict[int, Any] = {}

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
        if self.stopping and tasks:
            self.release()
        if not tasks:
            self._done()
        return out

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
        if sig == signal.SIGTRAP and event:
            if event == pt.EVENT_SECCOMP:
                self._seccomp_stop(task)
                return
            if event in (pt.EVENT_FORK, pt.EVENT_VFORK, pt.EVENT_CLONE):
                new = pt.event_msg(tid)
                if new not in tasks:
                    tgid = new if event != pt.EVENT_CLONE else _tgid(new)
                    tasks[new] = Task(new, tgid)
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
        info = pt.get_syscall_info(task.tid)
        nr = info.nr
        if info.op == pt.INFO_SECCOMP and info.arch == self.audit_arch:
            if nr == self._prctl and info.args and info.args[0] == PR_SET_NAME:
                task.comm = None  # read again at its next event (the call runs after this stop)
            specs = self.plan.enter.get(nr)
            if specs and (not task.quiet or nr in _EXECS.get(self.plan.arch, ())):
                self._events(task, specs, nr, info.args, 0, False)
            if nr in self.plan.exit:
                task.nr, task.args = nr, info.args
        self._resume(task)

    def _syscall_stop(self, task: Task) -> None:
        info = pt.get_syscall_info(task.tid)
        if info.op == pt.INFO_ENTRY:  # -p: every syscall
            nr = info.nr
            if info.arch == self.audit_arch:
                if nr == self._prctl and info.args and info.args[0] == PR_SET_NAME:
                    task.comm = None
                specs = self.plan.enter.get(nr)
                if specs:
                    self._events(task, specs, nr, info.args, 0, False)
                task.nr, task.args = (nr, info.args) if nr in self.plan.exit else (None, ())
            else:
                task.nr = None
        elif info.op == pt.INFO_EXIT:
            nr = task.nr
            task.nr, task.args = None, ()
            if nr is not None and not task.quiet:
                specs = self.plan.exit.get(nr)
                if specs and task.comm is not None:
                    # nothing more to read from the task: let it run while the event is made
                    self._resume(task)
                    self._events(task, specs, nr, (), info.rval, info.is_error)
                    return
                if specs:
                    self._events(task, specs, nr, (), info.rval, info.is_error)
        self._resume(task)

    # -- events
    def _events(self, task: Task, specs: List[Any], nr: int, args: Any, ret: int, is_error: bool) -> None:
        now = time.monotonic_ns()
        tid = task.tid
        if task.comm is None:
            task.comm = _comm(tid)
        comm = task.comm
        strings: Dict[int, Any] = {}
        prepared = self._prepared
        for spec in specs:
            prep = prepared.get(id(spec))
            if prep is None:
                prep = prepared[id(spec)] = (_prepare(spec.fields),
                                             _prepare([(n,) + r for n, r in spec.filter_reads.items()]))
            fields_p, filter_p = prep
            if spec.filter is not None:
                f = {}
                for name, src, is_str, mask, sign in filter_p:
                    v = self._value(task, src, is_str, mask, sign, nr, args, ret, strings)
                    f[name] = "" if v is _Fault else v
                if not spec.filter({"f": f, "comm": comm, "tid": tid, "pid": task.tgid}):
                    continue
            fields: Dict[str, Any] = {}
            errors: Optional[Dict[str, str]] = None
            for name, src, is_str, mask, sign in fields_p:
                if src.__class__ is int and not is_str:
                    raw = (args[src] if src < len(args) else 0) & mask
                    fields[name] = raw - (sign << 1) if sign and raw & sign else raw
                    continue
                v = self._value(task, src, is_str, mask, sign, nr, args, ret, strings)
                if v is _Fault:
                    fields[name] = ""
                    if errors is None:
                        errors = {}
                    errors[name] = "EFAULT"
                else:
                    fields[name] = v
            for name, make in spec.extras:
                if name == "errno":
                    if is_error:
                        fields[name] = errno_name(ret) or f"E{-ret}"
                    continue
                try:
                    v = make(args, lambda a, n: pt.read_memory(tid, a, n))
                except Exception:  # noqa: BLE001 - a decoding problem shows as no extra, never a crash
                    v = None
                if v is not None:
                    fields[name] = v
            self.out.append(Event(now, -1, task.tgid, tid, comm or "", spec.name, fields, errors=errors,
                                  formats=spec.formats))

    @staticmethod
    def _value(task: Task, src: Any, is_str: bool, mask: int, sign: int, nr: int, args: Any, ret: int,
               strings: Dict[Any, Any]) -> Any:
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
            got = strings.get(src)
            if got is None:
                data = pt.read_string(task.tid, raw, STRING_SIZE) if raw else None
                got = strings[src] = data.decode("utf-8", "surrogateescape") if data is not None else _Fault
            return got
        raw &= mask
        return raw - (sign << 1) if sign and raw & sign else raw

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
