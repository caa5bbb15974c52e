"""The thin syscall layer: bpf(2) and perf_event_open(2) through ctypes.

The modules below are the only place undertow calls ``bpf(2)`` and
``perf_event_open(2)``; the feature probes (:mod:`undertow.kernel.features`) and the
BPF backend both build on them. They know the ABI only (command numbers, the layouts
of ``union bpf_attr`` and ``struct perf_event_attr``, and how to turn a failing call
into a :class:`~undertow.errors.BPFError` a person can read), nothing about programs.

- :mod:`undertow.kernel.uapi`: the numbers (``enum bpf_cmd``, map/program/attach/link
  types, perf event types, flags, ioctls);
- :mod:`undertow.kernel.rawcall`: libc's ``syscall()``, the syscall numbers, errno
  names and hints, buffers kept alive during a call, closing fds;
- :mod:`undertow.kernel.bpfsys`: ``bpf()`` and its commands (programs, maps, pinning,
  BTF, links, test runs);
- :mod:`undertow.kernel.perfevent`: ``perf_event_open()``, its attrs and ioctls, the
  dynamic PMUs.

This module re-exports all of them, so ``from undertow.kernel import syscalls as sc;
sc.prog_load(...)`` works as before.
"""

from __future__ import annotations

from .bpfsys import (
    LOG_BUF_DEFAULT, LOG_BUF_MAX, ProgLoadResult, bpf, btf_load, iter_create, kernel_version_code, link_create,
    link_create_kprobe_multi, link_create_perf_event, link_create_tracing, link_create_uprobe_multi, map_create,
    map_delete_elem, map_get_next_key, map_lookup_batch, map_lookup_elem, map_update_elem, obj_get, obj_pin,
    possible_cpus, prog_load, prog_test_run, raise_memlock_rlimit, raw_tracepoint_open,
)
from .perfevent import (
    FLAG_BITS, PerfEventAttr, kprobe_attr, parse_format_bit, perf_event_disable, perf_event_enable,
    perf_event_open, perf_event_set_bpf, pmu_format_bit, pmu_type, software_attr, tracepoint_attr, uprobe_attr,
)
from .rawcall import close_fd, closing_fd, errno_name, syscall_numbers
from .uapi import (
    BPF_ANY, BPF_EXIST, BPF_F_ANY_ALIGNMENT, BPF_F_KPROBE_MULTI_RETURN, BPF_F_MMAPABLE, BPF_F_NO_PREALLOC,
    BPF_F_RDONLY_PROG, BPF_F_SLEEPABLE, BPF_F_STRICT_ALIGNMENT, BPF_F_UPROBE_MULTI_RETURN, BPF_NOEXIST,
    BPF_OBJ_NAME_LEN, PERF_ATTR_SIZE_VER5, PERF_ATTR_SIZE_VER7, PERF_ATTR_SIZE_VER8, PERF_EVENT_IOC_DISABLE,
    PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_SET_BPF, PERF_FLAG_FD_CLOEXEC, PERF_SAMPLE_RAW, AttachType, BPFCmd,
    LinkType, MapType, PerfSwConfig, PerfType, ProgType,
)

__all__ = [
    "BPFCmd", "MapType", "ProgType", "AttachType", "LinkType", "PerfType", "PerfSwConfig",
    "bpf", "prog_load", "map_create", "map_lookup_elem", "map_update_elem", "map_delete_elem",
    "map_get_next_key", "map_lookup_batch", "obj_pin", "obj_get", "btf_load", "link_create",
    "raw_tracepoint_open", "PerfEventAttr", "perf_event_open", "perf_event_enable",
    "perf_event_disable", "perf_event_set_bpf", "pmu_type", "pmu_format_bit",
    "raise_memlock_rlimit",
    "close_fd", "closing_fd", "errno_name", "kernel_version_code", "syscall_numbers",
    # also re-exported (public before the split, outside the list above)
    "ProgLoadResult", "iter_create", "link_create_tracing", "link_create_perf_event", "link_create_kprobe_multi",
    "link_create_uprobe_multi", "prog_test_run", "possible_cpus", "parse_format_bit", "kprobe_attr",
    "uprobe_attr", "tracepoint_attr", "software_attr", "FLAG_BITS", "LOG_BUF_DEFAULT", "LOG_BUF_MAX",
    "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST", "BPF_OBJ_NAME_LEN", "BPF_F_STRICT_ALIGNMENT", "BPF_F_ANY_ALIGNMENT",
    "BPF_F_SLEEPABLE", "BPF_F_KPROBE_MULTI_RETURN", "BPF_F_UPROBE_MULTI_RETURN", "BPF_F_NO_PREALLOC",
    "BPF_F_RDONLY_PROG", "BPF_F_MMAPABLE", "PERF_SAMPLE_RAW", "PERF_FLAG_FD_CLOEXEC", "PERF_ATTR_SIZE_VER5",
    "PERF_ATTR_SIZE_VER7", "PERF_ATTR_SIZE_VER8", "PERF_EVENT_IOC_ENABLE", "PERF_EVENT_IOC_DISABLE",
    "PERF_EVENT_IOC_SET_BPF",
]
