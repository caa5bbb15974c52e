"""A running ftrace session: a private instance, our probes, and the binary reader.

Lifecycle (DESIGN.md "Own the lifecycle"): remove stale state of dead sessions,
create ``instances/undertow_<pid>_<start>_<pidns>_<n>`` (names: backends/leftovers.py), set its
clock (``mono``, so timestamps compare with CLOCK_MONOTONIC), buffer size and wake-up
threshold, exclude our own threads (``set_event_notrace_pid``), restrict to ``-p PID``
(``set_event_pid`` + ``options/event-fork``), define dynamic probes, set filters,
enable the events, turn tracing on. Each object is recorded *before* it is created, so
an exception that lands between the kernel write and the next line (KeyboardInterrupt,
a raising signal handler) cannot hide it from :meth:`FtraceSession.close`; removing
what was never created is no error. Set-up calls :func:`undertow.stop.check` between
steps. :meth:`FtraceSession.close` undoes all of it in reverse order, can run again
after being interrupted itself (it also runs at interpreter exit until it finished).

Reading: per-CPU ``trace_pipe_raw`` pages decoded by ``ringbuf.PageReader``
(runs of one fixed-size event type in bulk, other records one by one). The
reader is woken on any data until events flow faster than EAGER_EVENTS per
EAGER_WINDOW, then wake-ups are batched by ``buffer_percent``; :meth:`poll` also
drains every CPU when its timeout expires, so each event shows within ~100 ms.
"""

from __future__ import annotations

import atexit
import collections
import errno
import gc
import os
import select
import time
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Deque, Dict, List, Optional, Tuple
    from .compile import EventSpec

from ... import stop
from ...errors import TracefsError, UndertowError
from ...events import Lost, Record, Stats
from ..base import Session
from ..leftovers import next_session_name, remove_stale, report_removed  # noqa: F401 - the name's old home
from .plan import FtracePlan
from .ringbuf import PageReader

# Per-CPU ring buffer: kernel memory allocated for the session only and freed with
# the instance. Measured on 6.18 (2 vCPUs): writing buffer_size_kb costs ~16 ms up to
# 16 MiB (an RCU grace period), then ~0.5 ms per MiB more (64 MiB: 34 ms). 16 MiB
# holds ~320k syscall records per CPU, over a second of a one-CPU openat storm,
# while the reader decodes ~600k records per second: a 1M-call storm was captured
# whole with 1.4, 4 and 16 MiB alike. Overruns are reported, never silent.
DEFAULT_BUFFER_KB = 16384
# Wake-up watermark once events flow (percent of the per-CPU buffer, see
# Documentation/trace/ftrace.rst "buffer_percent"); until then 0, "wake up as
# soon as any data is in the buffer" (commit 623b1f896fa8), so the first events
# show at once instead of at the next poll timeout.
BUFFER_PERCENT = 25
EAGER_EVENTS = 64          # more events than this within EAGER_WINDOW: batch wake-ups
EAGER_WINDOW = 0.1
STATS_EVERY = 1.0
# With -s the kernel writes an event, then its ftrace:kernel_stack record
# (trace_event_buffer_commit -> ftrace_trace_stack): two commits, so a read can
# fall between them. A CPU's last event without its stack is held back until the
# CPU's next read or for this long, then shown with or without a stack.
STACK_HOLD = 0.005
# Reading a page out of the kernel costs ~1 us, decoding its ~80 records ~100x more. Each
# poll() first moves every ready page of every CPU into user memory, then decodes at most
# DECODE_PAGES of them: the kernel buffer is emptied every few milliseconds even while
# the consumer (text formatting, a callback) is slower than a storm, and the backlog waits
# in user memory (up to BACKLOG_BYTES; past that the kernel overruns, and says so).
# 16 MiB (was 256): the user-space backlog is what RSS grows by under a storm the
# consumer cannot follow; the kernel's per-CPU buffers (16 MiB each) hold the rest.
DECODE_PAGES = 64
BACKLOG_BYTES = 16 << 20
# A stop counts what it leaves unread by walking the pages' record headers for at most this
# long (FtraceSession.count_unread), within the second a stop may take.
COUNT_SECONDS = 0.2


class FtraceSession(Session):
    def __init__(self, plan: FtracePlan, kernel: Any) -> None:
        self.plan = plan
        self.kernel = kernel
        self.stats = Stats()
        self.tfs = kernel.tracefs()
        self.inst: Any = None
        self.defined: List[Tuple[str, str]] = []   # (definition file, "group/event")
        self.enabled: List[str] = []               # instance-relative enable files
        self.fds: Dict[int, int] = {}              # fd -> cpu
        self.reader: Optional[PageReader] = None
        self.overrun: Dict[int, int] = {}
        self._closed = False
        self._cleaned = False      # close() ran to its end
        self._ready = False        # _setup() ran to its end
        self.removed_stale: List[str] = []  # what the start removed of killed sessions
        self._next_stats = 0.0
        self._tgid: Dict[int, int] = {}
        self._comm: Dict[int, str] = {}
        self._ksyms: Any = None
        self._poller: Any = None
        self._polls = 0
        self._task: Dict[int, Tuple[int, str]] = {}
        self._saved_at = -1
        self._saved: Dict[int, str] = {}
        self._eager = False        # buffer_percent is 0 (wake on any data) until events flow
        self._eager_since = 0.0
        self._eager_count = 0
        self._held: Dict[int, Tuple[Any, float]] = {}  # cpu -> (event awaiting its stack, since)
        self._backlog: Dict[int, Deque[bytes]] = {}     # cpu -> pages read, not decoded yet
        self._backlog_bytes = 0
        self._mono = False       # trace_clock is mono: timestamps compare with CLOCK_MONOTONIC
        self._cutoff = 0         # after stop_producing: records stamped later are cut (after_stop)

    # ------------------------------------------------------------------ setup
    @classmethod
    def start(cls, plan: FtracePlan, kernel: Any) -> "FtraceSession":
        s = cls(plan, kernel)
        atexit.register(s.close)
        try:
            s._setup()
        except BaseException:
            s.close()
            raise
        return s

    def _setup(self) -> None:
        tfs, plan = self.tfs, self.plan
        check = stop.check
        check()
        try:
            roots = getattr(self.kernel, "roots", None)
            self.removed_stale = remove_stale(tfs, proc=roots.proc if roots is not None else "/proc")
        except (TracefsError, OSError):
            pass  # best effort; never stop a session for someone else's leftovers
        report_removed(self.removed_stale)
        check()
        # recorded before the mkdir: close() removes it whether or not the mkdir finished
        inst = self.inst = tfs.instance(plan.instance)
        try:
            tfs.create_instance(plan.instance)
        except TracefsError as e:
            if getattr(e, "errno", None) == errno.EEXIST:
                self.inst = None  # not ours to remove
            raise
        check()
        # a new instance starts with tracing on: keep it off until everything is set,
        # so tracing_on=1 also tells observers (and tests) the session is ready
        inst.write("tracing_on", "0", append=False)
        try:
            inst.write("trace_clock", "mono", append=False)
            self._mono = True
        except TracefsError:
            inst.write("trace_clock", "local", append=False)
        try:
            inst.write("buffer_size_kb", str(plan.buffer_kb or default_buffer_kb()), append=False)
        except TracefsError:
            pass
        if inst.has("buffer_percent"):
            inst.write("buffer_percent", "0", append=False)
            self._eager = True
        check()
        if plan.stack:
            inst.write("options/stacktrace", "1", append=False)
        if plan.self_pid is not None and inst.has("set_event_notrace_pid"):
            inst.write("set_event_notrace_pid", " ".join(map(str, _tids(plan.self_pid))), append=False)
        if plan.pid is not None:
            tids = _tids(plan.pid)
            if not tids:
                raise UndertowError(f"no process with pid {plan.pid}", hints=["check the pid with ps"])
            inst.write("set_event_pid", " ".join(map(str, tids)), append=False)
            if inst.has("options/event-fork"):
                inst.write("options/event-fork", "1", append=False)
        # No need to clear the buffer: the instance is new, setting trace_clock above
        # resets it anyway, and nothing is enabled yet.
        check()
        self.hp = tfs.header_page()
        self.page_size = self.hp.data_offset + self.hp.data_size
        reader = self.reader = PageReader(self.hp, self.stats, self._task_of, self._task, self._frames)
        for spec in plan.specs:
            check()
            if spec.definition:
                # recorded first: removed at close even if the write is interrupted
                self.defined.append((spec.definition_file or "", f"{spec.group}/{spec.event}"))
                try:
                    tfs.write(spec.definition_file, spec.definition)
                except TracefsError as e:
                    raise explain_definition_error(spec, e) from None
            fmt = shown_format(tfs.event_format(spec.group, spec.event), spec.fields)
            keep = [f.name for f in spec.fields] if spec.fields else None
            # pointers a tracepoint records (user addresses such as a syscall's
            # filename) print as hex; the BPF backend can read what they point to
            formats = {f.name: "x" for f in fmt.fields if f.is_pointer and not f.is_string}
            formats.update({f.name: f.fmt for f in spec.fields if f.fmt})
            for f in fmt.fields:
                # syscall tracepoints store every argument in a 64-bit slot, even
                # an ``int`` (dfd = AT_FDCWD arrives as 0xffffff9c): show the C type
                if f.size == 8 and f.type.strip() in ("int", "pid_t", "int32_t", "s32"):
                    formats[f.name] = "s32"
            reader.add(fmt, spec.probe_name, keep, formats)
            base = f"events/{spec.group}/{spec.event}"
            if spec.filter:
                inst.write(f"{base}/filter", spec.filter, append=False)
            self.enabled.append(f"{base}/enable")
            inst.write(f"{base}/enable", "1", append=False)
        for ev in plan.comm_events:
            self._follow_names(ev)
        if plan.stack:
            try:
                reader.add_stack(tfs.event_format("ftrace", "kernel_stack"))
            except UndertowError:
                pass
        check()
        self._poller = select.poll()
        for cpu in _cpus(inst.path):
            fd = os.open(os.path.join(inst.path, "per_cpu", f"cpu{cpu}", "trace_pipe_raw"),
                         os.O_RDONLY | os.O_NONBLOCK)
            self.fds[fd] = cpu
            self._poller.register(fd, select.POLLIN)
        check()
        inst.write("tracing_on", "1", append=False)
        self._ready = True

    def _follow_names(self, event: str) -> None:
        """Enable ``event`` (task/task_rename) unshown: each of its records sets the name of
        its task for the events read after it, so the COMM column changes at an exec instead
        of keeping the name /proc had at first sight."""
        group, _, name = event.partition("/")
        try:
            fmt = self.tfs.event_format(group, name)
        except (UndertowError, LookupError, OSError):
            return  # an older kernel: names from /proc only
        assert self.reader is not None
        self.reader.add_hook(fmt, self._renamed)
        rel = f"events/{event}/enable"
        self.enabled.append(rel)
        try:
            self.inst.write(rel, "1", append=False)
        except TracefsError:
            pass

    def _renamed(self, d: Dict[str, Any]) -> None:
        """task_rename (an exec, prctl PR_SET_NAME, a write to /proc/PID/comm): ``newcomm``
        is the task's name from here on (``pid``: the task renamed; older kernels: the writer)."""
        new = d.get("newcomm")
        tid = d.get("pid", d.get("common_pid"))
        if isinstance(new, str) and isinstance(tid, int):
            self._comm[tid] = new
            if tid in self._task:
                self._task[tid] = (self._task[tid][0], new)

    # ------------------------------------------------------------------ stopping
    def wake_on(self, fd: int) -> None:
        if self._poller is not None:
            self._poller.register(fd, select.POLLIN)

    def stop_producing(self, at_ns: int) -> None:
        """``tracing_on`` 0: the kernel records nothing more into this instance; records
        stamped after ``at_ns`` already in the buffers are cut when read (``after_stop``)."""
        if self.inst is not None and not self._closed:
            _quiet(self.inst.write, "tracing_on", "0", append=False)
        if self._mono:
            self._cutoff = at_ns

    def pending(self) -> bool:
        if self._closed:
            return False
        if not self._backlog_bytes and not self._held:
            for fd, cpu in self.fds.items():
                self._read_pages(fd, cpu)
        return bool(self._backlog_bytes or self._held)

    def count_unread(self) -> int:
        """Count every record still in the backlog and the kernel buffers as
        ``not_drained`` (made before the stop) or ``after_stop``, without decoding them; returns the former.

        The pages are read and their record headers walked (~5M records/s: a 16 MiB per-CPU
        buffer in ~80 ms) for at most COUNT_SECONDS; what is left after that is taken from
        the kernel's own per-CPU count (``entries`` in ``per_cpu/cpuN/stats``), O(1) but
        measured a few records high (3M-record storms: +1..+8: it also counts the unshown
        task_rename and kernel_stack records, which the walk skips), so only the fallback."""
        if self._closed or self.reader is None:
            return 0
        from .ringbuf import count_records

        cutoff = self._cutoff or (1 << 64)
        skip = frozenset(self.reader.unshown_ids())
        before = len(self._held)
        self._held.clear()
        after = 0
        for q in self._backlog.values():
            for page in q:
                b, a = count_records(page, self.hp, cutoff, skip)
                before += b
                after += a
        self._backlog.clear()
        self._backlog_bytes = 0
        give_up = time.monotonic() + COUNT_SECONDS
        for fd, cpu in self.fds.items():
            while time.monotonic() < give_up:
                try:
                    page = os.read(fd, self.page_size)
                except OSError:
                    page = b""
                if not page:
                    break
                b, a = count_records(page, self.hp, cutoff, skip)
                before += b
                after += a
            else:
                before += self._entries(cpu)  # out of time: the kernel's count of the rest
        self._read_overruns([])
        if before:
            self.stats.not_drained += before
        self.stats.after_stop += after
        return before

    def _entries(self, cpu: int) -> int:
        try:
            text = self.inst.read(f"per_cpu/cpu{cpu}/stats")
        except (UndertowError, OSError):
            return 0
        for line in text.splitlines():
            if line.startswith("entries:"):
                try:
                    return int(line.split()[1])
                except (IndexError, ValueError):
                    return 0
        return 0

    # ------------------------------------------------------------------ reading
    def render_lines(self, writer: Any) -> bool:
        return self.reader is not None and self.reader.set_render(writer)

    def poll(self, timeout: Optional[float] = None, limit: Optional[int] = None) -> List[Record]:
        if self._closed:
            return []
        if self._held:
            timeout = STACK_HOLD if timeout is None else min(timeout, STACK_HOLD)
        if self._backlog_bytes:
            timeout = 0
        ms = -1 if timeout is None else max(0, int(timeout * 1000))
        try:
            self._poller.poll(ms)
        except InterruptedError:
            pass
        for fd, cpu in self.fds.items():
            self._read_pages(fd, cpu)
        out: List[Record] = []
        self._polls += 1
        # Every Event is a GC-tracked object that outlives the batch, so the cyclic
        # collector would run several young-generation passes over the batch while it
        # is built (measured: ~0.8 us of ~3 us per event at 20k events/s). Pause it
        # while decoding; one pass after the batch costs far less. Restored even on
        # error, and left alone if the application had disabled it.
        paused = gc.isenabled()
        if paused:
            gc.disable()
        now = time.monotonic()
        hold = self.reader is not None and self.reader.stack_id is not None
        # a page holds ~30-300 records: ``limit`` records is about limit // 64 pages
        budget = [DECODE_PAGES if limit is None else max(1, min(DECODE_PAGES, limit // 64))]
        try:
            for fd, cpu in self.fds.items():
                if not hold:
                    self._drain(fd, cpu, out, budget)
                    continue
                held = self._held.pop(cpu, None)
                n0 = len(out)
                if held is not None:
                    out.append(held[0])  # its stack, if read now, attaches to it
                self._drain(fd, cpu, out, budget)
                last = out[-1] if len(out) > n0 else None
                if last is not None and getattr(last, "stack", 0) is None:
                    since = held[1] if held is not None and last is held[0] else now
                    if now - since < STACK_HOLD:
                        out.pop()
                        self._held[cpu] = (last, since)
        finally:
            if paused:
                gc.enable()
        if self._eager and out:
            self._eager_step(now, len(out))
        if now >= self._next_stats:
            self._next_stats = now + STATS_EVERY
            self._read_overruns(out)
        return out

    def _eager_step(self, now: float, n: int) -> None:
        """Switch to batched wake-ups (``buffer_percent``) once more than EAGER_EVENTS
        records arrive within EAGER_WINDOW: a low rate keeps waking the reader per
        event (each shown at once, cheap at that rate), a high rate must not (a
        wake-up per event costs the traced tasks 5-45 us each, DESIGN.md)."""
        if now - self._eager_since > EAGER_WINDOW:
            self._eager_since, self._eager_count = now, 0
        self._eager_count += n
        if self._eager_count > EAGER_EVENTS:
            self._eager = False
            try:
                self.inst.write("buffer_percent", str(BUFFER_PERCENT), append=False)
            except (UndertowError, OSError):
                pass  # stays at 0: more wake-ups, nothing lost

    def _read_pages(self, fd: int, cpu: int) -> None:
        """Move the CPU's ready pages into the backlog (they are decoded by _drain)."""
        q = self._backlog.get(cpu)
        if q is None:
            q = self._backlog[cpu] = collections.deque()
        size = self.page_size
        for _ in range(65536):
            if self._backlog_bytes >= BACKLOG_BYTES:
                return
            try:
                page = os.read(fd, size)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EINTR):
                    return
                raise
            if not page:
                return
            q.append(page)
            self._backlog_bytes += len(page)

    def _drain(self, fd: int, cpu: int, out: List[Record], budget: Optional[List[int]] = None) -> None:
        """Decode the CPU's backlog into ``out``: all of it, or up to ``budget[0]`` pages
        (shared by the CPUs of one poll)."""
        assert self.reader is not None
        page_in = self.reader.page
        q = self._backlog.get(cpu)
        if q is None:
            self._read_pages(fd, cpu)
            q = self._backlog[cpu]
        while q and (budget is None or budget[0] > 0):
            page = q.popleft()
            self._backlog_bytes -= len(page)
            if budget is not None:
                budget[0] -= 1
            if self._cutoff:
                from .ringbuf import cut_page

                cut, _kept, after = cut_page(page, self.hp, self._cutoff)
                self.stats.after_stop += after
                if cut is None:
                    continue
                page = cut
            page_in(page, cpu, out)

    def _frames(self, page: bytes, start: int, end: int) -> List[Tuple[int, Optional[str], int, Optional[str]]]:
        """``struct stack_entry``: ``int size`` (number of entries) then ``caller[]``.

        The format file says ``caller[8]`` but the record holds ``size`` entries
        (kernel/trace/trace_entries.h, FTRACE_STACK_ENTRIES is only the print limit).
        """
        n = int.from_bytes(page[start + 8: start + 12], "little", signed=True)
        stop = min(end, start + 16 + 8 * max(0, min(n, 512)))
        callers = [int.from_bytes(page[o: o + 8], "little") for o in range(start + 16, stop - 7, 8)]
        frames = []
        if self._ksyms is None:
            try:
                self._ksyms = self.kernel.kallsyms()
            except (UndertowError, OSError):
                self._ksyms = False
        for addr in callers:
            if not addr or addr == 0xFFFFFFFFFFFFFFFF:
                continue
            sym = None
            if self._ksyms:
                sym = self._ksyms.symbolize(addr)
            if sym:
                frames.append((addr, sym[0], sym[1], sym[2]))
            else:
                frames.append((addr, None, 0, None))
        return frames

    def _read_overruns(self, out: List[Record]) -> None:
        for cpu in set(self.fds.values()):
            try:
                text = self.inst.read(f"per_cpu/cpu{cpu}/stats")
            except (UndertowError, OSError):
                continue
            for line in text.splitlines():
                if line.startswith("overrun:"):
                    try:
                        n = int(line.split()[1])
                    except (IndexError, ValueError):
                        break
                    self.overrun[cpu] = n
                    if self.reader is not None:
                        self.reader.overruns(cpu, n, out)
                    break

    def _task_of(self, tid: int) -> Tuple[int, str]:
        """(tgid, comm) of a thread, cached (both best effort, see _tgid_of/_comm_of)."""
        if len(self._task) > 65536:
            self._task.clear()
        t = self._task[tid] = (self._tgid_of(tid), self._comm_of(tid))
        return t

    def _tgid_of(self, tid: int) -> int:
        t = self._tgid.get(tid)
        if t is None:
            t = tid
            try:
                with open(f"/proc/{tid}/status") as f:
                    for line in f:
                        if line.startswith("Tgid:"):
                            t = int(line.split()[1])
                            break
            except (OSError, ValueError):
                pass
            if len(self._tgid) > 65536:
                self._tgid.clear()
            self._tgid[tid] = t
        return t

    def _comm_of(self, tid: int) -> str:
        """Best effort: ftrace records carry only the pid; the name is read from /proc
        at first sight (fetch ``$comm`` in a probe line for the name at the event)."""
        c = self._comm.get(tid)
        if c is None:
            try:
                with open(f"/proc/{tid}/comm", "rb") as f:
                    c = f.read().rstrip(b"\n").decode("utf-8", "surrogateescape")
            except OSError:
                c = self._saved_comm(tid) or ("<...>" if tid else "<idle>")
            if len(self._comm) > 65536:
                self._comm.clear()
            self._comm[tid] = c
        return c

    def _saved_comm(self, tid: int) -> Optional[str]:
        """The name the kernel recorded at the event (``saved_cmdlines``), for tasks
        that exited before we looked in /proc. Re-read at most once per poll."""
        if self._saved_at != self._polls:
            self._saved_at = self._polls
            try:
                text = self.tfs.read("saved_cmdlines")
            except (UndertowError, OSError):
                text = ""
            self._saved = {}
            for line in text.splitlines():
                p, _, name = line.partition(" ")
                if p.isdigit():
                    self._saved[int(p)] = name
        return self._saved.get(tid)

    # ------------------------------------------------------------------ teardown
    def close(self) -> None:
        """Disable, remove the instance, remove the definitions. Every step is idempotent
        (what is gone, or was never made, is skipped), so a close() interrupted by an
        exception runs whole again from the start at the next call or at exit."""
        if self._cleaned:
            return
        self._closed = True
        self._held.clear()
        self._backlog.clear()
        self._backlog_bytes = 0
        for fd in list(self.fds):
            try:
                os.close(fd)
            except OSError:
                pass
            self.fds.pop(fd, None)
        inst = self.inst
        if inst is not None:
            for rel in reversed(self.enabled):
                _quiet(inst.write, rel, "0", append=False)
            _quiet(inst.write, "tracing_on", "0", append=False)
            if not self._ready:
                # an interrupted set-up may have lost an fd between os.open and its record
                # (tfs.write's, a trace_pipe_raw's): an open file keeps rmdir at EBUSY
                _close_fds_under(inst.path)
            try:
                self.tfs.remove_instance(inst.name, timeout=2.0)
            except (UndertowError, OSError):
                pass
        for dfile, ev in reversed(self.defined):
            for _ in range(20):
                try:
                    self.tfs.write(dfile, f"-:{ev}")
                    break
                except TracefsError as e:
                    if getattr(e, "errno", None) != errno.EBUSY:
                        break  # ENOENT: never defined (interrupted) or already removed
                    time.sleep(0.05)
        self._cleaned = True
        try:
            atexit.unregister(self.close)
        except Exception:  # noqa: BLE001
            pass


def shown_format(fmt: Any, fields: List[Any]) -> Any:
    """``fmt`` (an :class:`~undertow.kernel.formats.EventFormat`) as the line shows it: when a
    tracepoint line renames fields (``e sched/sched_switch next=next_pid``), a copy holding
    the common fields and each shown field under its new name (``OutField.src`` -> ``name``;
    one field shown twice is two fields at one offset), so the reader decodes the records
    straight into the names the user gave. Unchanged when nothing is renamed."""
    if not any(f.src is not None and f.src != f.name for f in fields):
        return fmt
    import copy

    from ...kernel.formats import EventFormat

    by = {f.name: f for f in fmt.fields}
    out = [f for f in fmt.fields if f.is_common]
    for of in fields:
        src = by.get(of.src or of.name)
        if src is None:
            continue
        g = copy.copy(src)
        g.name = of.name
        out.append(g)
    return EventFormat(fmt.group, fmt.name, fmt.id, out, fmt.print_fmt, fmt.print_fmt_raw, fmt.long_size, fmt.text)


def _quiet(fn: Any, *a: Any, **kw: Any) -> None:
    try:
        fn(*a, **kw)
    except (UndertowError, OSError):
        pass


def _close_fds_under(path: str) -> None:
    """Close this process's file descriptors open on files below ``path``."""
    prefix = path.rstrip("/") + "/"
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return
    for name in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith(prefix):
            try:
                os.close(int(name))
            except (OSError, ValueError):
                pass


def _tids(pid: int) -> List[int]:
    try:
        return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return []


def _cpus(inst_path: str) -> List[int]:
    out = []
    for name in os.listdir(os.path.join(inst_path, "per_cpu")):
        if name.startswith("cpu") and name[3:].isdigit():
            out.append(int(name[3:]))
    return sorted(out)


def default_buffer_kb() -> int:
    """Per-CPU buffer: DEFAULT_BUFFER_KB, but all CPUs together use at most 5% of RAM
    (and never less than 1 MiB per CPU)."""
    ncpu = max(1, os.cpu_count() or 1)  # the kernel allocates the buffer on every CPU
    try:
        with open("/proc/meminfo") as f:
            total_kb = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        total_kb = 1 << 22
    return max(1024, min(DEFAULT_BUFFER_KB, total_kb // 20 // ncpu))



def explain_definition_error(spec: "EventSpec", err: TracefsError) -> TracefsError:
    """What a refused ``kprobe_events`` line means, said before the kernel's own text.

    A kprobe at ``FUNC+OFFSET`` must sit on an instruction boundary: x86 decodes the
    function from its start up to the address and refuses one inside an instruction
    with EILSEQ (arch/x86/kernel/kprobes/core.c ``can_probe()``, kernel/kprobes.c
    ``check_kprobe_address_safe()``). Other errors are returned unchanged."""
    where = spec.definition.split()[1] if spec.definition and len(spec.definition.split()) > 1 else ""
    if spec.kind in ("kprobe", "kretprobe") and getattr(err, "errno", None) == errno.EILSEQ and "+" in where:
        func, _, off = where.partition("+")
        new = TracefsError(
            f"the kernel refused a kprobe at {where}: +{off} is not the start of an instruction of {func} "
            f"(EILSEQ; the kernel decodes {func} from its entry and a probe must sit on an instruction "
            "boundary)",
            hints=[f"pick an offset from the disassembly, e.g. gdb -batch -ex 'disassemble {func}' "
                   "vmlinux (the '<+N>' column), or objdump -d",
                   f"the kernel said: {err.message}"],
            kernel_log=err.kernel_log)
        new.errno = err.errno  # type: ignore[attr-defined]
        return new
    return err
