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

    def drain(fd, cpu, out):
        for act in pages.pop(0) if pages else []:
            if isinstance(act, Event):
                out.append(act)
                last[cpu] = act
            else:
                last[cpu].stack = act
    s._drain = drain
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
