"""`undertow exit`: processes that end, with exit status, killing signal, core dump and lifetime.

One BPF program on ``sched:sched_process_exit`` (every kernel), for thread-group leaders
(``pid == tid``: a process, not each of its threads). The task is read through BTF at the
tracepoint, where ``do_exit()`` has already stored the code:

- ``task->exit_code`` (``status << 8 | signal | 0x80 core``) and, for a group exit
  (``exit_group()``, a fatal signal), ``task->signal->group_exit_code``;
- lifetime = now - ``task->start_time`` (both CLOCK_MONOTONIC ns);
- parent = ``task->real_parent->tgid``;
- ``netns``/``pidns``: ``nsproxy->net_ns->ns.inum`` and the task's own pid namespace
  (``thread_pid->numbers[level].ns->ns.inum``), the inode numbers ``/proc/PID/ns/{net,pid}``
  show. ``do_exit()`` fires the tracepoint before ``exit_task_namespaces()`` clears
  ``nsproxy`` (kernel/exit.c), so both are still there;
- ``argv``: the argument area (``mm->arg_start .. arg_end``, first
  :data:`~undertow.tools.execs.ARGV_MAX` bytes) where the task still has its ``mm`` at the
  tracepoint (kernels that fire it before ``exit_mm()``: 6.18 here). Where it does not (the
  lab's 6.1 and 6.12), ``syscalls:sys_enter_exit_group`` sends the area first, for processes
  that end by ``exit_group(2)`` (not for those a signal kills); the program stops sending
  those once an exit showed the ``mm`` still there (``@mm_at_exit``). For processes a signal
  kills, ``signal:signal_deliver`` sends it: ``get_signal()`` fires it in the dying task, mm
  still there, for a signal whose action is the default and the default kills (every signal
  but SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGWINCH: signal(7)), and
  also for the SIGKILL a group exit sends every thread (kernel/signal.c, the
  ``SIGNAL_GROUP_EXIT`` path); only the group leader's is sent. It is the area as the process
  left it: a process that rewrote it (``setproctitle``) shows the rewritten text.
"""

from __future__ import annotations

import signal
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

__all__ = ["PROGRAM", "SETTINGS", "parse_record", "Parser"]

#: the argument area read whole up to ARGV_MAX (tools/execs.py)
SETTINGS = {"bufsize": 4096}

PROGRAM = r"""
tracepoint:sched:sched_process_exit /pid == tid/
{
  $t = (struct task_struct *)curtask;
  $pn = $t->thread_pid;
  $mm = $t->mm;
  $len = $mm != 0 ? $mm->arg_end - $mm->arg_start : 0;
  if ($mm != 0) { @mm_at_exit = 1; }
  printf("%d %d %d %d %d %d %d %d %r", $t->exit_code, $t->signal->group_exit_code, nsecs - $t->start_time,
         $t->real_parent->tgid, uid, $t->nsproxy->net_ns->ns.inum, $pn->numbers[$pn->level].ns->ns.inum,
         $len, buf(uptr($mm->arg_start), $len));
}

tracepoint:syscalls:sys_enter_exit_group /@mm_at_exit == 0/
{
  $mm = ((struct task_struct *)curtask)->mm;
  $len = $mm->arg_end - $mm->arg_start;
  printf("%s %d %r", "argv", $len, buf(uptr($mm->arg_start), $len));
}

tracepoint:signal:signal_deliver /@mm_at_exit == 0 && pid == tid && args.sa_handler == 0 &&
                                  (args.sig < 17 || args.sig > 23) && args.sig != 28/
{
  $mm = ((struct task_struct *)curtask)->mm;
  $len = $mm != 0 ? $mm->arg_end - $mm->arg_start : 0;
  printf("%s %d %r", "argv", $len, buf(uptr($mm->arg_start), $len));
}
"""


class Parser:
    """Records to exit events: the argument area an ``exit_group(2)`` or a fatal signal's
    delivery sent (kernels whose ``sched_process_exit`` comes after ``exit_mm()``) is kept by
    pid until that process's exit."""

    def __init__(self) -> None:
        self.argv: Dict[int, Tuple[int, bytes]] = {}

    def __call__(self, rec: Any) -> Optional[Dict[str, Any]]:
        if len(rec.values) == 3:  # "argv", length, area: at exit_group(2)
            if len(self.argv) > 4096:  # exits filtered out or lost: do not grow
                self.argv.clear()
            self.argv[rec.pid] = (rec.values[1], rec.values[2])
            return None
        return parse_record(rec, self.argv.pop(rec.pid, None))


def parse_record(rec: Any, at_exit_group: Optional[Tuple[int, bytes]] = None) -> Dict[str, Any]:
    """One ``sched_process_exit`` record -> the event; ``at_exit_group``: the (length, area)
    the process's ``exit_group(2)`` sent, used when the exit record has no area."""
    from .execs import split_argv

    code, group, life, ppid, uid, netns, pidns, length, data = rec.values
    argv: Optional[List[str]] = None
    truncated = False
    if not (length > 0 and data.strip(b"\x00")) and at_exit_group is not None:
        length, data = at_exit_group  # no mm at the tracepoint (exit_mm() ran first)
    if length > 0 and data.strip(b"\x00"):  # else unknown: /proc may tell
        argv, truncated = split_argv(data, length)
    raw = group or code
    sig = raw & 0x7F
    try:
        signame = signal.Signals(sig).name if sig else None
    except ValueError:
        signame = str(sig)
    return {
        "ts": rec.ts, "pid": rec.pid, "ppid": ppid, "uid": uid, "comm": rec.comm,
        "status": None if sig else (raw >> 8) & 0xFF, "signal": signame, "core": bool(raw & 0x80),
        "exit_code": raw, "lifetime_s": round(life / 1e9, 6),
        "netns": netns or None, "pidns": pidns or None, "argv": argv, "argv_truncated": truncated,
    }
