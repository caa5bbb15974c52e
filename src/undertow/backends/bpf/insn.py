"""eBPF opcodes, registers and helper ids.

Documentation/bpf/standardization/instruction-set.rst; helper numbers from the
``__BPF_FUNC_MAPPER`` list of include/uapi/linux/bpf.h (their order is ABI).
"""

from __future__ import annotations

from ...consts import Consts

# classes
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
# sizes
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
SIZE_BYTES = {W: 4, H: 2, B: 1, DW: 8}
SIZE_NAME = {W: "u32", H: "u16", B: "u8", DW: "u64"}
# modes
IMM, ABS, IND, MEM, ATOMIC = 0x00, 0x20, 0x40, 0x60, 0xC0
# sources
K, X = 0x00, 0x08
# ALU operations
ALU_OPS = {"add": 0x00, "sub": 0x10, "mul": 0x20, "div": 0x30, "or": 0x40, "and": 0x50, "lsh": 0x60,
           "rsh": 0x70, "neg": 0x80, "mod": 0x90, "xor": 0xA0, "mov": 0xB0, "arsh": 0xC0, "end": 0xD0}
ALU_SYM = {0x00: "+=", 0x10: "-=", 0x20: "*=", 0x30: "/=", 0x40: "|=", 0x50: "&=", 0x60: "<<=",
           0x70: ">>=", 0x90: "%=", 0xA0: "^=", 0xB0: "=", 0xC0: "s>>="}
# jump operations
JMP_OPS = {"ja": 0x00, "jeq": 0x10, "jgt": 0x20, "jge": 0x30, "jset": 0x40, "jne": 0x50, "jsgt": 0x60,
           "jsge": 0x70, "call": 0x80, "exit": 0x90, "jlt": 0xA0, "jle": 0xB0, "jslt": 0xC0, "jsle": 0xD0}
JMP_SYM = {0x10: "==", 0x20: ">", 0x30: ">=", 0x40: "&", 0x50: "!=", 0x60: "s>", 0x70: "s>=",
           0xA0: "<", 0xB0: "<=", 0xC0: "s<", 0xD0: "s<="}
# byte swap
TO_LE, TO_BE = 0x00, 0x08
# atomics (imm of an ATOMIC instruction)
ATOMIC_ADD, ATOMIC_FETCH = 0x00, 0x01
# ld_imm64 pseudo sources
PSEUDO_MAP_FD, PSEUDO_MAP_VALUE = 1, 2
# call pseudo source: bpf-to-bpf call
PSEUDO_CALL = 1

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)
FP = R10


class Helper(Consts):
    """BPF helper function ids (include/uapi/linux/bpf.h, ``FN(...)`` order)."""

    map_lookup_elem = 1
    map_update_elem = 2
    map_delete_elem = 3
    probe_read = 4
    ktime_get_ns = 5
    trace_printk = 6
    get_prandom_u32 = 7
    get_smp_processor_id = 8
    tail_call = 12
    get_current_pid_tgid = 14
    get_current_uid_gid = 15
    get_current_comm = 16
    perf_event_output = 25
    get_stackid = 27
    get_current_task = 35
    get_numa_node_id = 42
    probe_read_str = 45
    get_current_cgroup_id = 80
    send_signal = 109
    probe_read_user = 112
    probe_read_kernel = 113
    probe_read_user_str = 114
    probe_read_kernel_str = 115
    jiffies64 = 118
    get_ns_current_pid_tgid = 120
    get_current_ancestor_cgroup_id = 123
    ktime_get_boot_ns = 125
    ringbuf_output = 130
    ringbuf_reserve = 131
    ringbuf_submit = 132
    ringbuf_discard = 133
    ringbuf_query = 134
    d_path = 147
    get_current_task_btf = 158
    get_func_ip = 173
    get_attach_cookie = 174
    get_func_arg = 183
    get_func_ret = 184
    get_func_arg_cnt = 185


# ringbuf flags (bpf_ringbuf_submit/output): no wake-up keeps the consumer batched
BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP = 1, 2
