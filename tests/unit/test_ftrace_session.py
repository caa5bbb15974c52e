"""FtraceSession.poll without a kernel: an event read before its stack record is held back."""

import time

from undertow.backends.ftrace import session as session_mod
from undertow.backends.ftrace.session import FtraceSession
from undertow.events import Event


class FakeKernel:
    def tracefs(self):
        return None


class FakePoller:
    def poll(self, ms):
        self.last_ms = ms
        return []


class FakeReader:
    stack_id = 7


def make(pages):
    """A session whose CPU 0 yields ``pages``: one list of actions per read (an Event to
    append, or a stack to attach to the CPU's last event)."""
    s = FtraceSession(plan=None, kernel=FakeKernel())
    s.reader, s._poller, s.fds = FakeReader(), FakePoller(), {3: 0}
    s._next_stats = float("inf")
    last = {}

    def drain(fd, cpu, out, budget=None):
        for act in pages.pop(0) if pages else []:
            if isinstance(act, Event):
                out.append(act)
                last[cpu] = act
            else:
                last[cpu].stack = act
    s._drain = drain
    s._read_pages = lambda fd, cpu: None
    return s


def ev(n):
    return Event(n, 0, 1, 1, "x", "sched:sched_process_exec", {})


def test_event_waits_for_its_stack_record():
    a, b = ev(1), ev(2)
    s = make([[a, [(1, "f", 0, None)], b], [[(2, "g", 0, None)]]])
    first = s.poll(0.1)
    assert first == [a] and s._poller.last_ms == 100  # b's stack is not in yet
    second = s.poll(0.1)
    assert s._poller.last_ms == int(session_mod.STACK_HOLD * 1000)  # polled soon, not in 100 ms
    assert second == [b] and b.stack == [(2, "g", 0, None)]


def test_event_without_stack_is_released_after_the_hold():
    a = ev(1)
    s = make([[a]])
    assert s.poll(0) == []
    time.sleep(session_mod.STACK_HOLD * 2)
    assert s.poll(0) == [a] and a.stack is None and not s._held


def test_no_hold_without_stacks():
    a = ev(1)
    s = make([[a]])
    s.reader.stack_id = None
    assert s.poll(0) == [a]


def test_pages_are_read_at_once_and_decoded_in_slices(monkeypatch):
    """poll() empties the kernel buffer into the backlog, then decodes DECODE_PAGES pages:
    a slow consumer does not make the kernel overrun."""
    s = FtraceSession(plan=None, kernel=FakeKernel())
    s.page_size = 4096
    decoded = []

    class Reader:
        stack_id = None

        def page(self, page, cpu, out):
            decoded.append(page)
            out.append(page)

    s.reader, s._poller, s.fds, s._next_stats = Reader(), FakePoller(), {3: 0}, float("inf")
    pages = [bytes([i]) * 4096 for i in range(150)]
    reads = iter(pages)

    def fake_read(fd, n):
        try:
            return next(reads)
        except StopIteration:
            raise BlockingIOError from None

    monkeypatch.setattr(session_mod.os, "read", fake_read)
    first = s.poll(1.0)
    assert len(first) == session_mod.DECODE_PAGES and s._backlog_bytes == (150 - 64) * 4096
    assert s.poll(1.0) and s._poller.last_ms == 0  # a backlog: no waiting
    s.poll(1.0)
    assert decoded == pages and s._backlog_bytes == 0
