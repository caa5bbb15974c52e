"""`undertow exit`: processes that end, with exit status, killing signal, core dump and lifetime.

One BPF program on ``sched:sched_process_exit`` (every kernel), for thread-group leaders
(``pid == tid``: a process, not each of its threads). The task is read through BTF at the
tracepoint, where ``do_exit()`` has already stored the code:

- ``task->exit_code`` (``status << 8 | signal | 0x80 core``) and, for a group exit
  (``exit_group()``, a fatal signal), ``task->signal->group_exit_code``;
- lifetime = now - ``task->start_time`` (both CLOCK_MONOTONIC ns);
- parent = ``task->real_parent->tgid``.
"""

from __future__ import annotations

import signal
TYPE_CHECKING = False  # typing is not imported at run time: docs/contributing.md
if TYPE_CHECKING:
    from typing import Any, Dict

__all__ = ["PROGRAM", "parse_record"]

PROGRAM = r"""
tracepoint:sched:sched_process_exit /pid == tid/
{
  $t = (struct task_struct *)curtask;
  printf("%d %d %d %d %d", $t->exit_code, $t->signal->group_exit_code, nsecs - $t->start_time,
         $t->real_parent->tgid, uid);
}
"""


def parse_record(rec: Any) -> Dict[str, Any]:
    code, group, life, ppid, uid = rec.values
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
    }
