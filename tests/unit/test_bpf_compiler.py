"""The general BPF code generator (backends/bpf/compiler.py), against fixture formats and declared types.

One test per IR node family, and one per verifier pitfall of DESIGN.md showing the generator
avoids it. No kernel needed: the live tier (tests/live/test_run_live.py) loads the same
shapes into the real verifier.
"""

import re

import pytest

from undertow.backends.bpf.codegen import Unsupported
from undertow.backends.bpf.compiler import LOOP_LIMIT, compile_program
from undertow.backends.bpf.asm import Asm
from undertow.backends.bpf import insn as I
from undertow.kernel.arch import get_arch
from undertow.lang.bt import parse_program
from undertow.lang.resolve import resolve

from lang_fakes import TYPES, FakeKernel


def compile_bt(text, **kw):
    p = parse_program(text)
    resolve(p, FakeKernel(), strict_kprobes=False, types=TYPES, arch="x86_64")
    return compile_program(p, arch=get_arch("x86_64"), self_pid=kw.get("self_pid", 4321), pid=kw.get("pid"),
                           output=kw.get("output", "ringbuf"))


def listing(c, i=0):
    return c.probes[i].program.listing()


# ------------------------------------------------------------------ nodes


def test_builtins():
    c = compile_bt('tracepoint:syscalls:sys_enter_openat { printf("%d %d %s %d %d %d %d %d\\n", pid, tid, comm, '
                   'uid, gid, cpu, nsecs, cgroup); }')
    t = listing(c)
    for helper in ("get_current_pid_tgid#14", "get_current_comm#16", "get_current_uid_gid#15",
                   "get_smp_processor_id#8", "ktime_get_ns#5", "get_current_cgroup_id#80"):
        assert f"call bpf_{helper}" in t, helper
    a = c.actions[0]
    assert a.kind == "printf" and [s.kind for _o, s in a.args] == ["int", "int", "str", "int", "int", "int",
                                                                   "int", "int"]


def test_tracepoint_fields_sized_and_aligned_from_the_format():
    c = compile_bt("tracepoint:syscalls:sys_enter_openat { @[args.flags, args.dfd] = count(); }")
    t = listing(c)
    # flags and dfd are 8-byte syscall argument slots in the format: u64 loads at their offsets
    assert re.search(r"r0 = \*\(u64 \*\)\(r6 \+(32|0x20)\)", t)
    assert re.search(r"r0 = \*\(u64 \*\)\(r6 \+(16|0x10)\)", t)


def test_user_string_of_a_syscall_argument_and_fault_counting():
    c = compile_bt('tracepoint:syscalls:sys_enter_openat { printf("%s\\n", str(args.filename)); }')
    t = listing(c)
    assert "call bpf_probe_read_user_str#114" in t
    # a failed read (-EFAULT at syscall entry) is counted in lost[2]
    assert "if r0 s>= 0x0 goto" in t and "lock *(u64 *)(r0 +0) += r1" in t


def test_data_loc_string():
    c = compile_bt('tracepoint:sched:sched_process_exec { printf("%s\\n", str(args.filename)); }')
    t = listing(c)
    assert "&= 0xffff" in t and "call bpf_probe_read_kernel_str#115" in t


def test_member_chain_through_a_cast():
    c = compile_bt("kprobe:do_exit { printf(\"%d\\n\", ((struct task_struct *)curtask)->mm->mm_users.counter); }")
    t = listing(c)
    assert "call bpf_get_current_task#35" in t
    assert t.count("call bpf_probe_read_kernel#113") >= 2    # ->mm, then ->mm_users.counter


def test_kprobe_arguments_from_pt_regs():
    c = compile_bt('kprobe:do_sys_openat2 { printf("%d %d\\n", arg0, arg1); }')
    t = listing(c)
    assert "r0 = *(u64 *)(r6 +112)" in t or "r0 = *(u64 *)(r6 +0x70)" in t   # rdi
    assert "r0 = *(u64 *)(r6 +104)" in t or "r0 = *(u64 *)(r6 +0x68)" in t   # rsi


def test_uprobe_strings_are_user_reads():
    from undertow.kernel.elf import ELFFile

    with ELFFile("/bin/bash") as f:
        addr = min(s.value for s in f.symbols() if s.defined and s.type == "FUNC" and s.size > 8)
    c = compile_bt('uprobe:/bin/bash:%#x { printf("%%s\\n", str(arg0)); }' % (addr + 4))
    assert "call bpf_probe_read_user_str#114" in listing(c)


def test_map_aggregations_layouts():
    c = compile_bt("tracepoint:syscalls:sys_enter_openat { @c[comm] = count(); @s = sum(args.flags); "
                   "@m = min(args.flags); @a = avg(args.flags); @h = hist(args.flags); "
                   "@l = lhist(args.flags, 0, 100, 10); @v[pid] = nsecs; }")
    m = c.maps
    assert m["@c"].percpu and m["@c"].key_size == 16 and m["@c"].value_size == 8
    assert m["@m"].value_size == 16 and m["@a"].value_size == 16      # value + set flag / count + total
    assert m["@h"].key_size == 16 and m["@l"].lhist == (0, 100, 10)   # key + bucket
    assert not m["@v"].percpu and m["@v"].agg == "assign"


def test_maps_read_in_the_kernel_are_shared():
    c = compile_bt("kprobe:do_exit { @start[tid] = nsecs; @n = count(); } "
                   "kretprobe:do_sys_openat2 /@start[tid]/ { @lat = hist(nsecs - @start[tid]); "
                   "delete(@start[tid]); if (@n > 3) { exit(); } }")
    assert not c.maps["@n"].percpu                 # read in the kernel: one shared value
    assert c.maps["@lat"].percpu
    t = listing(c, 1)
    assert "call bpf_map_delete_elem#3" in t


def test_log2_histogram_buckets_and_linear_buckets():
    c = compile_bt("tracepoint:syscalls:sys_enter_openat { @h = hist(args.flags); @l = lhist(args.flags, 0, 100, 10); }")
    t = listing(c)
    assert t.count(">>= 0x20") >= 2 and ">>= 0x10" in t and ">>= 0x1\n" in t
    assert "/= 0xa" in t


def test_control_flow_if_ternary_while_unroll():
    c = compile_bt("tracepoint:syscalls:sys_enter_openat { $i = 0; while ($i < 5) { $i++; if ($i == 3) { break; } } "
                   "unroll(3) { @u = count(); } @t[$i > 2 ? \"big\" : \"small\"] = count(); }")
    t = listing(c)
    assert f">= {hex(LOOP_LIMIT)} goto" in t                # every while loop is bounded
    assert t.count("call bpf_map_lookup_elem#1") >= 3 + 1


def test_printf_records_are_reserved_and_submitted_without_wakeup():
    c = compile_bt('BEGIN { printf("hi %d\\n", 1); exit(); }')
    t = listing(c)
    assert "call bpf_ringbuf_reserve#131" in t and "call bpf_ringbuf_submit#132" in t
    assert re.search(r"r2 = 0x1\n.*call bpf_ringbuf_submit", t, re.S)   # BPF_RB_NO_WAKEUP
    assert c.probes[0].prog_type == "RAW_TRACEPOINT"                   # BEGIN runs by BPF_PROG_TEST_RUN
    assert [a.kind for a in c.actions] == ["printf", "exit"]


def test_string_compare_with_a_literal():
    c = compile_bt('tracepoint:syscalls:sys_enter_openat /comm == "bash"/ { @ = count(); }')
    t = listing(c)
    for ch in b"bash\x00":
        assert f"!= {hex(ch)} goto" in t


def test_unsupported_nodes_carry_their_span():
    p = parse_program('tracepoint:syscalls:sys_enter_openat { printf("%s\\n", path(args.filename)); }')
    with pytest.raises(Exception) as ei:
        resolve(p, FakeKernel(), strict_kprobes=False, types=TYPES, arch="x86_64")
    assert "path()" in str(ei.value)


# ------------------------------------------------------------------ verifier pitfalls (DESIGN.md)


def test_pitfall_64bit_constants_use_ld_imm64():
    c = compile_bt("tracepoint:syscalls:sys_enter_openat { @x = 0x123456789abc; }")
    assert "0x123456789abc ll" in listing(c)


def test_pitfall_every_map_lookup_is_null_checked():
    c = compile_bt("tracepoint:syscalls:sys_enter_openat { @c[comm] = count(); @s = @s + 1; @h = hist(@s); }")
    lines = listing(c).splitlines()
    for i, line in enumerate(lines):
        if "call bpf_map_lookup_elem#1" in line:
            nxt = next(l for l in lines[i + 1:] if re.match(r"\s*\d+:", l))
            assert re.search(r"if r0 [!=]= 0x0 goto", nxt), nxt


def test_pitfall_r0_is_set_before_every_exit():
    c = compile_bt('tracepoint:syscalls:sys_enter_openat /pid == 1/ { if (comm == "x") { return; } @ = count(); }')
    lines = [l for l in listing(c).splitlines() if re.match(r"\s*\d+:", l)]
    for i, line in enumerate(lines):
        if "exit" in line.split(")")[-1] and "(95)" in line:
            assert "r0 = 0x0" in lines[i - 1]


def test_pitfall_stack_limit_is_a_diagnostic():
    big = ", ".join(f"str(args.filename, {60 + i})" for i in range(9))   # 9 x 64-byte strings
    with pytest.raises(Unsupported) as ei:
        compile_bt("tracepoint:syscalls:sys_enter_openat { @[" + big + "] = count(); }")
    assert "512 bytes" in ei.value.message and ei.value.span is not None


def test_pitfall_variable_sizes_are_masked():
    c = compile_bt("tracepoint:syscalls:sys_enter_openat { $n = args.flags; printf(\"%s\\n\", str(args.filename, $n)); }")
    assert "&= 0xfff" in listing(c)


def test_pitfall_values_survive_helper_calls():
    c = compile_bt("kprobe:do_exit { @start[tid] = nsecs; } kretprobe:do_sys_openat2 { @d = sum(nsecs - @start[tid]); }")
    t = listing(c, 1)
    # nsecs is computed first, spilled to the stack, and reloaded after the map lookup's call
    first = t.index("call bpf_ktime_get_ns#5")
    assert re.search(r"\*\(u64 \*\)\(r10 -\d+\) = r0", t[first:])


def test_pitfall_map_keys_are_zeroed_first():
    c = compile_bt('tracepoint:syscalls:sys_enter_openat { @[str(args.filename, 10), pid] = count(); }')
    t = listing(c)
    body = t.index("; mapupdate")  # after the stop-flag check every probe starts with
    lookup = t.index("call bpf_map_lookup_elem#1", body)
    assert t[body:lookup].count("= 0x0") >= 3             # 24-byte key: three zeroed words


def test_pitfall_own_pid_is_excluded_and_unreachable_code_pruned():
    c = compile_bt("tracepoint:syscalls:sys_enter_openat { exit(); @never = count(); }", self_pid=999)
    t = listing(c)
    assert "if r0 == 0x3e7 goto" in t
    # an interval's tick runs whatever task it interrupts, this process included
    assert "if r0 == 0x3e7 goto" not in listing(compile_bt("interval:s:1 { exit(); }", self_pid=999))
    a = Asm()
    a.mov64(I.R0, 0).exit_()
    a.mov64(I.R1, 1).exit_()                              # dead: would be "unreachable insn"
    assert a.prune() == 2 and len(a.assemble()) == 2


def test_records_through_the_ring_buffer_or_the_perf_buffer():
    prog = 'tracepoint:syscalls:sys_enter_openat { printf("%d\\n", pid); }'
    ring = listing(compile_bt(prog))
    assert "bpf_ringbuf_reserve#131" in ring and "bpf_ringbuf_submit#132" in ring and "perf_event_output" not in ring
    perf = listing(compile_bt(prog, output="perfbuf"))
    assert "bpf_perf_event_output#25" in perf and "ringbuf" not in perf
    assert "r3 = 0xffffffff" in perf          # BPF_F_CURRENT_CPU
    assert "map_lookup_elem" in perf          # the per-CPU scratch record


def test_a_number_cast_to_a_pointer_in_begin_is_read_with_probe_read():
    # bpftrace 0.17 gives such a pointer no address space in BEGIN/profile/interval/...
    # (find_addrspace), and reads it with bpf_probe_read: a user address (0) fails with
    # -EFAULT, which -kk reports as "probe_read" (-14), not probe_read_kernel's -ERANGE
    c = compile_bt("BEGIN { $t = ((struct task_struct *)0)->pid; exit(); }")
    t = listing(c)
    assert "call bpf_probe_read#4" in t and "probe_read_kernel#113" not in t
    c = compile_bt("interval:s:1 { $t = ((struct task_struct *)0)->pid; exit(); }")
    assert "call bpf_probe_read#4" in listing(c)
    # curtask is a kernel address (bpftrace: AddrSpace::kernel); a kprobe's pointers too
    c = compile_bt('BEGIN { printf("%d\\n", ((struct task_struct *)curtask)->pid); exit(); }')
    assert "call bpf_probe_read_kernel#113" in listing(c)
    c = compile_bt("kprobe:do_exit { $t = ((struct task_struct *)0)->pid; }")
    assert "call bpf_probe_read_kernel#113" in listing(c)


def test_exit_tells_user_space_and_leaves_the_other_probes_running():
    # bpftrace 0.17: the probes go on until user space has read the exit record and
    # detached them (bpf/runtime.py): exit() writes no stop flag itself
    c = compile_bt("tracepoint:syscalls:sys_enter_openat { @n = count(); exit(); }")
    t = listing(c)
    assert [a.kind for a in c.actions] == ["exit"]
    after = t[t.index("; exit"):]
    assert "call bpf_ringbuf_submit#132" in after
    assert "*(u64 *)(r0 +0) = 0x1" not in t      # no state[0] = 1 (the stop flag)


def test_debugf_is_bpf_trace_printk_with_at_most_three_arguments():
    c = compile_bt('BEGIN { debugf("debugf %s %d %x", "a", 1, 16); exit(); }')
    t = listing(c)
    call = t.index("call bpf_trace_printk#6")
    assert "r2 = 0x10" in t[:call]                       # "debugf %s %d %x" and its NUL: 16 bytes
    assert "r3 = r10" in t[:call]                        # "a": its address on the stack
    assert [a.kind for a in c.actions] == ["exit"]        # nothing for user space to print


@pytest.mark.parametrize("prog,msg", [
    ('debugf("%d %d %d %d", 1, 2, 3, 4)', "debugf: Cannot use more than 3 conversion specifiers"),
    ('debugf("%d", 1, 2)', r"debugf: Too many arguments for format string \(2 supplied, 1 expected\)"),
    ('debugf("%d %d", 1)', r"debugf: Not enough arguments for format string \(1 supplied, 2 expected\)"),
    ('debugf("%c", 1)', "debugf: Unknown format string token: %c"),
    ('debugf("%s", 1)', r"debugf: %s specifier expects a value of type string \(integer supplied\)"),
])
def test_debugf_format_errors_are_bpftraces(prog, msg):
    from undertow.errors import TypeCheckError

    with pytest.raises(TypeCheckError, match=msg):
        compile_bt("BEGIN { " + prog + "; exit(); }")


def test_debugf_warns_as_bpftrace():
    p = parse_program('BEGIN { debugf("x"); exit(); }')
    resolve(p, FakeKernel(), strict_kprobes=False, types=TYPES, arch="x86_64")
    assert any("The debugf() builtin is not recommended for production use" in w.message for w in p.warnings)
