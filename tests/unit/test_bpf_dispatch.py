"""Syscall probes carried by one raw_syscalls program: the plan, the dispatcher, the table."""

from types import SimpleNamespace as NS

from undertow.backends.bpf import dispatch
from undertow.kernel.syscall_table import names, numbers


def probe(target, kind="tracepoint"):
    return NS(ap=NS(kind=kind, target=target))


def test_syscall_numbers_are_the_events_names():
    x86, arm = numbers("x86_64"), numbers("aarch64")
    # UAPI name and entry point differ: the event is named after the entry point
    assert (x86["openat"], x86["getppid"], x86["newstat"], x86["umount"], x86["newuname"]) == (257, 110, 4, 166, 63)
    assert "stat" not in x86 and "umount2" not in x86
    assert (arm["openat"], arm["getppid"], arm["execve"], arm["newfstat"], arm["mmap"]) == (56, 173, 221, 80, 222)
    assert "open" not in arm and arm["clone3"] == 435 and arm["renameat"] == 38
    for table in (names("x86_64"), names("aarch64")):
        assert len(set(table.values())) == len(table)  # one number per event name
    assert numbers("mips") == {}


def test_plan_groups_by_direction_and_number():
    nums = {"openat": 257, "close": 3, "read": 0, "write": 1, "getppid": 110}
    probes = [probe("syscalls:sys_enter_" + n) for n in ("openat", "close", "read", "write")]
    probes += [probe("syscalls:sys_enter_openat"),            # second probe on a number: own attachment
               probe("syscalls:sys_enter_newsyscall"),         # unknown number: own attachment
               probe("syscalls:sys_exit_getppid"),             # one exit probe: below the minimum
               probe("sched:sched_process_exec"), probe("sys_enter", "raw_tracepoint")]
    slots = dispatch.plan(probes, nums)
    assert slots == {"sys_enter": {257: 0, 3: 1, 0: 2, 1: 3}}
    assert dispatch.plan(probes, nums, min_probes=1)["sys_exit"] == {110: 6}
    assert dispatch.plan(probes[:3], nums) == {}


def test_dispatcher_program():
    text = dispatch.program(470, compat_status_off=16).assemble().listing()
    assert "call bpf_tail_call#12" in text and "if r7 > 0x1d6 goto" in text  # 470: numbers above skip
    assert "call bpf_get_current_task#35" in text and "r1 &= 0x2" in text   # TS_COMPAT
    plain = dispatch.program(470).assemble().listing()
    assert "get_current_task" not in plain and "bpf_tail_call#12" in plain
