"""kernel/functions.py: which symbol a kernel function name attaches to (issue 17), over
a fake /proc/kallsyms: renames, compiler-made copies, near names, function sizes."""

from __future__ import annotations

import re

import pytest

from undertow.kernel.functions import (
    NoSuchFunctionError, attachable_function, clone_suffix, function_size, near_function_names,
)
from undertow.kernel.kallsyms import parse_kallsyms

KALLSYMS = "\n".join([
    "ffffffff81000000 T _stext",
    "ffffffff81001000 t __pfx_kernel_clone",
    "ffffffff81001010 T kernel_clone",
    "ffffffff81001400 t __pfx___netif_receive_skb_core.constprop.0",
    "ffffffff81001410 t __netif_receive_skb_core.constprop.0",
    "ffffffff81001800 t finish_task_switch.isra.0",
    "ffffffff81001900 t finish_task_switch.isra.0.cold",
    "ffffffff81002000 t two_copies.isra.0",
    "ffffffff81002100 t two_copies.constprop.0",
    "ffffffff81002200 t only_cold.cold",
    "ffffffff81002300 t chained.part.0.isra.0",
    "ffffffff81002400 t split_tail.part.0",
    "ffffffff81002500 t split_tail.part.0.cold",
    "ffffffff81003000 T tcp_connect",
    "ffffffff81003400 T do_sys_openat2",
    "ffffffff81003800 T __x64_sys_open",
    "ffffffff81003c00 T inlined_caller",
    "ffffffff82a05000 D jiffies",
    "ffffffffc0001000 t mod_func\t[mymod]",
]) + "\n"


@pytest.fixture()
def ks():
    return parse_kallsyms(KALLSYMS)


def _err(ks, name, **kw) -> NoSuchFunctionError:
    with pytest.raises(NoSuchFunctionError) as ei:
        attachable_function(name, ks, **kw)
    return ei.value


def test_a_function_is_itself(ks):
    fn = attachable_function("kernel_clone", ks)
    assert (fn.symbol, fn.clone, fn.note) == ("kernel_clone", "", "")
    assert attachable_function("mod_func", ks).symbol == "mod_func"


@pytest.mark.parametrize("name,symbol,suffix,kinds", [
    ("__netif_receive_skb_core", "__netif_receive_skb_core.constprop.0", ".constprop.0", "constants propagated"),
    ("finish_task_switch", "finish_task_switch.isra.0", ".isra.0", "arguments rewritten"),   # .cold ignored
    ("chained", "chained.part.0.isra.0", ".part.0.isra.0", "partly inlined, arguments rewritten"),
    ("split_tail", "split_tail.part.0", ".part.0", "partly inlined"),
])
def test_one_compiler_made_copy_is_taken_with_a_note(ks, name, symbol, suffix, kinds):
    fn = attachable_function(name, ks)
    assert (fn.symbol, fn.clone) == (symbol, suffix)
    typed = ("only header views of its arguments are typed, from undertow's table of checked copies; the rest "
             "have no type unless cast") if name == "__netif_receive_skb_core" else "they have no type unless cast"
    assert fn.note == (f"{name} is {symbol} in this kernel (a copy the compiler made, {kinds}); probing it: its "
                       f"arguments may differ from {name}'s, so {typed}")


def test_a_cold_part_is_no_entry(ks):
    e = _err(ks, "only_cold")
    assert e.message == "no function only_cold in this kernel"


def test_several_copies_are_named_not_chosen(ks):
    e = _err(ks, "two_copies")
    assert e.message == "no function two_copies in this kernel: the compiler made 2 copies of it instead"
    assert e.candidates == ["two_copies.constprop.0", "two_copies.isra.0"]
    assert e.hints == ["probe one of them (each is a separate entry point): two_copies.constprop.0, two_copies.isra.0"]


def test_a_renamed_function(ks):
    e = _err(ks, "_do_fork")
    assert e.message == "no function _do_fork in this kernel"
    assert e.candidates[0] == "kernel_clone"
    assert e.hints[0] == "_do_fork became kernel_clone (Linux 5.10)"


def test_old_syscall_names_map_to_the_wrapper(ks):
    e = _err(ks, "sys_open")
    assert e.hints[0] == "sys_open became __x64_sys_open (Linux 4.17, syscall wrappers)"
    assert _err(ks, "SyS_open").candidates[0] == "__x64_sys_open"


def test_near_names(ks):
    e = _err(ks, "tcp_conect")
    assert e.candidates == ["tcp_connect"]
    assert e.hints == ["did you mean tcp_connect?"]
    assert near_function_names("do_sys_openat", ks) == ["do_sys_openat2"]
    # copies count by their base name, padding symbols never
    assert "finish_task_switch" in near_function_names("finish_task_swtch", ks)
    assert not [n for n in near_function_names("kernel_clon", ks) if n.startswith("__pfx_")]


def test_nothing_near(ks):
    e = _err(ks, "xyzzy_frobnicate")
    assert e.candidates == []
    assert e.hints == ["functions are the text symbols of /proc/kallsyms (a module's appear once it is loaded); "
                       "list them with: undertow list 'kprobe:PATTERN'"]


def test_inlined_everywhere_when_btf_knows_it(ks):
    e = _err(ks, "inlined_helper", in_btf=lambda n: n == "inlined_helper")
    assert e.hints[-1] == ("BTF describes inlined_helper but no symbol has its name: the compiler inlined every "
                           "call of it; probe a caller")


def test_a_data_symbol_is_no_function(ks):
    e = _err(ks, "jiffies")
    assert e.message == "jiffies is no function in this kernel (kallsyms type 'D': data)"


@pytest.mark.parametrize("symbol,base,suffix", [
    ("a.constprop.0", "a", ".constprop.0"), ("a.isra.12", "a", ".isra.12"), ("a.llvm.123456", "a", ".llvm.123456"),
    ("a.cold", "a", ""), ("a.isra.0.cold", "a", ""), ("a.constprop", "a", ""), ("ab.isra.0", "a", ""), ("a", "a", ""),
])
def test_clone_suffix(symbol, base, suffix):
    assert clone_suffix(symbol, base) == suffix


def test_function_size(ks):
    assert function_size(ks, "kernel_clone") == 0x3f0   # up to the next symbol (__pfx_ of the next function)
    assert function_size(ks, "nope") is None
    hidden = parse_kallsyms(re.sub(r"(?m)^[0-9a-f]{16}", "0" * 16, KALLSYMS))
    assert function_size(hidden, "kernel_clone") is None   # addresses hidden (kptr_restrict)


def test_text_names_and_size_at(ks):
    names = ks.text_names()
    assert "kernel_clone" in names and "jiffies" not in names and "mod_func" in names
    assert ks.size_at(0xffffffff81003000) == 0x400
