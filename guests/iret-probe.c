/*
 * iret-probe (flat 64-bit, debug console) and mb-iret-probe (multiboot,
 * 32-bit, COM1; this file built with -DMB_KERNEL): which privilege
 * transitions this host performs. The trap library is installed first, so
 * any exception is counted and reported instead of becoming a triple fault.
 *
 * Variants, run in this order, or only the one chosen (64-bit: the host
 * answers ucall SYNC stage 0, args[1] = address of a u32 it may set to the
 * variant number; 32-bit: "variant=N" on the command line):
 *
 *   1 iret-0-0   iret at CPL 0 to CPL 0 (a frame built by hand)
 *   2 iret-0-3   iret at CPL 0 to CPL 3 (the user code comes back through
 *                the trap library's exit service)
 *   3 iret-3-3   iret at CPL 3 to CPL 3
 *   4 iret-3-0   iret at CPL 3 to CPL 0: must raise #GP (the selector's
 *                RPL is below CPL), caught with a fixup
 *   5 exc-0      ud2 at CPL 0; the library's handler returns to CPL 0
 *   6 exc-3      ud2 at CPL 3; the handler returns to CPL 3
 *   7 lret-0-0   far return at CPL 0 to CPL 0
 *   8 syscall    64-bit: SYSCALL from CPL 3 into a LSTAR stub that reads CS
 *                and tries mov from CR0, then iretq back to CPL 3.
 *                32-bit: SYSENTER from CPL 3 into a stub that reads CS and
 *                tries mov from CR0, then SYSEXIT.
 *
 * Each prints "iret-probe: NAME ok" (8 adds " cs=0xS cr0 read|faulted"),
 * or "iret-probe: NAME FAULTED" if the fixup caught an exception where
 * none belongs, followed by " (vector N)" if the variant raised an
 * exception (5 and 6 raise #UD, 6; 4 must raise #GP, 13); the run ends
 * with the trap counts, "iret-probe: done" and debug_exit(0x20) (status
 * 65). A transition the host cannot perform ends the run at that variant
 * (an emulation failure: pyvmm's internal-error status 10). On this host,
 * 64-bit: all eight ok, but variant 8 reports cs=0x33 and a #GP from mov
 * cr0: SYSCALL stays at CPL 3. 32-bit: variants 1 and 2 end the run
 * (emulation failure at iretl); 3 FAULTED (vector 6); 4 ok but with
 * vector 6, not 13; 5-7 ok; 8 ok with cs=0x8 and cr0 read. Under QEMU's
 * TCG (a CPU model with no such gaps) mb-iret-probe prints all eight ok,
 * 4 with vector 13.
 */
#include <stdint.h>

#include "debugcon.h"
#include "exit.h"
#include "format.h"
#include "serial.h"
#include "trap.h"
#include "ucall.h"

#ifdef MB_KERNEL
#include "kernel.h"
#define out_putc serial_putc
#else
#define out_putc debugcon_putc
#endif

#define NVARIANTS 8

static uint8_t user_stack[4096] __attribute__((aligned(16), section(".noinit")));
static volatile uint32_t variant;	/* 0: all */

/* The line for one variant; names the last exception if the variant raised any. */
static void say(const char *name, const char *what, uint32_t traps_before)
{
	const struct trap_state *s = trap_state_of(0);

	fmt_puts(out_putc, "iret-probe: ");
	fmt_puts(out_putc, name);
	out_putc(' ');
	fmt_puts(out_putc, what);
	if (s->total != traps_before) {
		fmt_puts(out_putc, " (vector ");
		fmt_dec(out_putc, s->last_vector);
		out_putc(')');
	}
	out_putc('\n');
}

/* 1: iret at CPL 0 to the next instruction, same CPL and stack. */
static int iret_0_0(void)
{
	int faulted;

#ifdef __x86_64__
	__asm__ volatile("movq %%rsp, %%rax\n\t"
			 "pushq %[ss]\n\t"
			 "pushq %%rax\n\t"
			 "pushfq\n\t"
			 "pushq %[cs]\n\t"
			 "leaq 1f(%%rip), %%rax\n\t"
			 "pushq %%rax\n"
			 "4: iretq\n"
			 "1: xorl %[f], %[f]\n\t"
			 "jmp 3f\n"
			 "2: movl $1, %[f]\n\t"
			 "addq $40, %%rsp\n"
			 "3:\n\t"
			 TRAP_FIXUP_ASM(4b, 2b)
			 : [f] "=r"(faulted)
			 : [cs] "i"(TRAP_SEL_KERNEL_CODE), [ss] "i"(TRAP_SEL_KERNEL_DATA)
			 : "rax", "memory");
#else
	__asm__ volatile("pushfl\n\t"
			 "pushl %[cs]\n\t"
			 "pushl $1f\n"
			 "4: iretl\n"
			 "1: xorl %[f], %[f]\n\t"
			 "jmp 3f\n"
			 "2: movl $1, %[f]\n\t"
			 "addl $12, %%esp\n"
			 "3:\n\t"
			 TRAP_FIXUP_ASM(4b, 2b)
			 : [f] "=r"(faulted)
			 : [cs] "i"(TRAP_SEL_KERNEL_CODE)
			 : "memory");
#endif
	return faulted;
}

/* 3 and 4: iret at CPL 3 to the next instruction, with CS/SS for `cpl`. */
static int iret_from_3(int to_cpl)
{
	int faulted;
	uintptr_t cs = to_cpl ? TRAP_SEL_USER_CODE : TRAP_SEL_KERNEL_CODE;
	uintptr_t ss = to_cpl ? TRAP_SEL_USER_DATA : TRAP_SEL_KERNEL_DATA;

#ifdef __x86_64__
	__asm__ volatile("movq %%rsp, %%rax\n\t"
			 "pushq %[ss]\n\t"
			 "pushq %%rax\n\t"
			 "pushfq\n\t"
			 "pushq %[cs]\n\t"
			 "leaq 1f(%%rip), %%rax\n\t"
			 "pushq %%rax\n"
			 "4: iretq\n"
			 "1: xorl %[f], %[f]\n\t"
			 "jmp 3f\n"
			 "2: movl $1, %[f]\n\t"
			 "addq $40, %%rsp\n"
			 "3:\n\t"
			 TRAP_FIXUP_ASM(4b, 2b)
			 : [f] "=r"(faulted)
			 : [cs] "r"(cs), [ss] "r"(ss)
			 : "rax", "memory");
#else
	(void)ss;	/* same-privilege iretl pops no stack */
	__asm__ volatile("pushfl\n\t"
			 "pushl %[cs]\n\t"
			 "pushl $1f\n"
			 "4: iretl\n"
			 "1: xorl %[f], %[f]\n\t"
			 "jmp 3f\n"
			 "2: movl $1, %[f]\n\t"
			 "addl $12, %%esp\n"
			 "3:\n\t"
			 TRAP_FIXUP_ASM(4b, 2b)
			 : [f] "=r"(faulted)
			 : [cs] "r"(cs)
			 : "memory");
#endif
	return faulted;
}

static int ud2_probe(void)
{
	int faulted;

	__asm__ volatile("1: ud2\n\t"
			 "xorl %[f], %[f]\n\t"
			 "jmp 3f\n"
			 "2: movl $1, %[f]\n"
			 "3:\n\t"
			 TRAP_FIXUP_ASM(1b, 2b)
			 : [f] "=r"(faulted) : : "memory");
	return faulted;
}

/* 7: a far return to CPL 0's own code selector. */
static int lret_0_0(void)
{
	int faulted;

#ifdef __x86_64__
	__asm__ volatile("pushq %[cs]\n\t"
			 "leaq 1f(%%rip), %%rax\n\t"
			 "pushq %%rax\n"
			 "4: lretq\n"
			 "1: xorl %[f], %[f]\n\t"
			 "jmp 3f\n"
			 "2: movl $1, %[f]\n\t"
			 "addq $16, %%rsp\n"
			 "3:\n\t"
			 TRAP_FIXUP_ASM(4b, 2b)
			 : [f] "=r"(faulted)
			 : [cs] "i"(TRAP_SEL_KERNEL_CODE)
			 : "rax", "memory");
#else
	__asm__ volatile("pushl %[cs]\n\t"
			 "pushl $1f\n"
			 "4: lretl\n"
			 "1: xorl %[f], %[f]\n\t"
			 "jmp 3f\n"
			 "2: movl $1, %[f]\n\t"
			 "addl $8, %%esp\n"
			 "3:\n\t"
			 TRAP_FIXUP_ASM(4b, 2b)
			 : [f] "=r"(faulted)
			 : [cs] "i"(TRAP_SEL_KERNEL_CODE)
			 : "memory");
#endif
	return faulted;
}

/*
 * 8: the fast system call's entry stub. Reads CS into `entry_cs` and tries
 * mov from CR0 (with a fixup): a stub that still runs at CPL 3 faults.
 */
static volatile uintptr_t entry_cs, entry_cr0_faulted;
void fast_call_entry(void);
#ifdef __x86_64__
__asm__(".pushsection .text\n"
	"fast_call_entry:\n\t"
	"movq %cs, %rax\n\t"
	"movq %rax, entry_cs(%rip)\n\t"
	"movq $1, entry_cr0_faulted(%rip)\n"
	"1: movq %cr0, %rax\n\t"
	"movq $0, entry_cr0_faulted(%rip)\n"
	/* Back to CPL 3 with iretq (no SYSRET in this host's emulator); RSP is the caller's. */
	"2: movq %rsp, %rax\n\t"
	"pushq $0x23\n\t"
	"pushq %rax\n\t"
	"pushq %r11\n\t"
	"pushq $0x1b\n\t"
	"pushq %rcx\n\t"
	"iretq\n\t"
	TRAP_FIXUP_ASM(1b, 2b)
	".popsection");
#else
__asm__(".pushsection .text\n"
	"fast_call_entry:\n\t"
	"movl %cs, %eax\n\t"
	"movl %eax, entry_cs\n\t"
	"movl $1, entry_cr0_faulted\n"
	"1: movl %cr0, %eax\n\t"
	"movl $0, entry_cr0_faulted\n"
	"2: sysexit\n\t"	/* ECX, EDX: the caller's ESP and EIP */
	TRAP_FIXUP_ASM(1b, 2b)
	".popsection");
#endif

static void wrmsr(uint32_t msr, uint64_t value)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)));
}

static void fast_call(void)
{
#ifdef __x86_64__
	__asm__ volatile("syscall" : : : "rax", "rcx", "r11", "memory");
#else
	__asm__ volatile("movl %%esp, %%ecx\n\t"
			 "movl $1f, %%edx\n\t"
			 "sysenter\n"
			 "1:"
			 : : : "eax", "ecx", "edx", "memory");
#endif
}

static void fast_call_setup(void)
{
#ifdef __x86_64__
	uint32_t lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0xc0000080u));
	wrmsr(0xc0000080u, ((uint64_t)hi << 32 | lo) | 1);	/* EFER.SCE */
	wrmsr(0xc0000081u, (uint64_t)TRAP_SEL_KERNEL_CODE << 32);	/* STAR: CS 0x08, SS 0x10 */
	wrmsr(0xc0000082u, (uintptr_t)fast_call_entry);	/* LSTAR */
	wrmsr(0xc0000084u, 0x700);	/* FMASK: TF, IF, DF */
#else
	static uint8_t entry_stack[256] __attribute__((aligned(16)));

	wrmsr(0x175, (uintptr_t)(entry_stack + sizeof(entry_stack)));	/* SYSENTER_ESP */
	wrmsr(0x176, (uintptr_t)fast_call_entry);	/* SYSENTER_EIP; CS set by the library */
#endif
}

static uintptr_t user_part(uintptr_t which)
{
	switch (which) {
	case 2:
		return 0;	/* arriving here is the test */
	case 3:
		return (uintptr_t)iret_from_3(3);
	case 4:
		return (uintptr_t)iret_from_3(0);
	case 6:
		return (uintptr_t)ud2_probe();
	case 8:
		fast_call();
		return 0;
	}
	return 0;
}

/* 2: like user_run, but entered with iret whatever the word size. */
uintptr_t user_run_by_iret(uintptr_t (*fn)(uintptr_t), uintptr_t arg, void *user_stack);
#ifdef __x86_64__
__asm__(".pushsection .text\n"
	"user_run_by_iret:\n\t"
	"jmp user_run\n\t"	/* the library's user_run enters CPL 3 with iretq */
	".popsection");
#else
__asm__(".pushsection .text\n"
	"user_run_by_iret:\n\t"
	"pushl %ebp\n\t"
	"pushl %ebx\n\t"
	"pushl %esi\n\t"
	"pushl %edi\n\t"
	"call trap_cpu\n\t"
	"movl %esp, trap_user_ctx(, %eax, 4)\n\t"
	"movl 28(%esp), %ecx\n\t"
	"andl $-16, %ecx\n\t"
	"subl $16, %ecx\n\t"
	"movl 24(%esp), %eax\n\t"
	"movl %eax, 4(%ecx)\n\t"
	"movl $user_exit_stub_by_iret, (%ecx)\n\t"
	"movl 20(%esp), %edx\n\t"
	"pushl $0x23\n\t"
	"pushl %ecx\n\t"
	"pushl $2\n\t"
	"pushl $0x1b\n\t"
	"pushl %edx\n\t"
	"iretl\n"
	"user_exit_stub_by_iret:\n\t"
	"pushl %eax\n\t"
	"pushl $0\n\t"
	"jmp user_exit\n\t"
	".popsection");
#endif

static void run_variant(uint32_t v)
{
	static const char *const names[NVARIANTS + 1] = {
		"", "iret-0-0", "iret-0-3", "iret-3-3", "iret-3-0",
		"exc-0", "exc-3", "lret-0-0", "syscall",
	};
	const char *name = names[v];
	uintptr_t faulted = 0;
	uint32_t before = trap_state_of(0)->total;

	switch (v) {
	case 1:
		faulted = (uintptr_t)iret_0_0();
		break;
	case 2:
		faulted = user_run_by_iret(user_part, 2, user_stack + sizeof(user_stack));
		break;
	case 5:
		/* A fault here is the point: the handler must come back. */
		ud2_probe();
		break;
	case 6:
		user_run(user_part, 6, user_stack + sizeof(user_stack));
		break;
	case 7:
		faulted = (uintptr_t)lret_0_0();
		break;
	case 3:
	case 4:
		faulted = user_run(user_part, v, user_stack + sizeof(user_stack));
		break;
	case 8:
		fast_call_setup();
		user_run(user_part, 8, user_stack + sizeof(user_stack));
		fmt_puts(out_putc, "iret-probe: syscall ok cs=0x");
		fmt_hex(out_putc, entry_cs, 0);
		fmt_puts(out_putc, entry_cr0_faulted ? " cr0 faulted\n" : " cr0 read\n");
		return;
	}
	/* Variant 4 must fault: resuming at its fixup is success. */
	if (v == 4)
		faulted = !faulted;
	say(name, faulted ? "FAULTED" : "ok", before);
}

#ifdef MB_KERNEL
/* "variant=N" anywhere on the command line, N a single digit. */
static uint32_t cmdline_variant(const struct mb_info *info)
{
	const char *s;

	if (!(info->flags & MB_INFO_CMDLINE))
		return 0;
	for (s = (const char *)(uintptr_t)info->cmdline; *s; s++)
		if (s[0] == 'v' && s[1] == 'a' && s[2] == 'r' && s[3] == 'i' && s[4] == 'a' &&
		    s[5] == 'n' && s[6] == 't' && s[7] == '=' && s[8] >= '0' && s[8] <= '9')
			return (uint32_t)(s[8] - '0');
	return 0;
}
#endif

static int probe_all(void)
{
	uint32_t v, chosen = variant;

	for (v = 1; v <= NVARIANTS; v++)
		if (chosen == 0 || chosen == v)
			run_variant(v);
	trap_print(out_putc, 0);
	fmt_puts(out_putc, "iret-probe: done\n");
	return 0x20;
}

#ifdef MB_KERNEL
int kmain(uint32_t magic, const struct mb_info *info)
{
	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;
	trap_putc = out_putc;
	trap_init();
	variant = cmdline_variant(info);
	return probe_all();
}
#else
int main(void)
{
	trap_init();
	ucall_sync(0, (uint64_t)(uintptr_t)&variant);
	return probe_all();
}
#endif
