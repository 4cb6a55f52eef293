/*
 * trap-selftest (flat 64-bit, debug console) and mb-trap-selftest
 * (multiboot, 32-bit, COM1; this file built with -DMB_KERNEL): the trap
 * library at work. The guest installs its own GDT, TSS and IDT, provokes
 * exceptions at CPL 0 and then at CPL 3 (through user_run), and prints one
 * line per probe, "cplN NAME faulted|resumed", and the library's counts.
 * 64-bit:
 *
 *   cpl0 ud2 faulted / gp faulted / pf faulted / de faulted / single-step resumed
 *   traps cpu=0 total=5 v0=1 v1=1 v6=1 v13=1 v14=1
 *   trap-last cpu=0 vector=1 cpl=0 rip=0x... cs=0x8 error=0x0 dr6=0xffff4ff0 cr2=0x0
 *   cpl3 int3 resumed / ud2 faulted / gp faulted / pf faulted / de faulted /
 *        single-step resumed / hlt faulted / int 0x80 faulted
 *   cpl3 unknown service -> -1
 *   user_run returned 0x5a at cs 0x8
 *   traps cpu=0 total=13 v0=2 v1=2 v3=1 v6=3 v13=3 v14=2
 *   trap-last cpu=0 vector=6 cpl=3 rip=0x... cs=0x1b error=0x0 dr6=0x0 cr2=0x0
 *
 * int3 runs at CPL 3 only (KVM's CPL-0 emulator lacks it: an emulation
 * failure). `int $0x80` has no gate: #NP on bare hardware, #UD here. The
 * 32-bit kernel has no #PF probe (paging is off), and there the CPL-3 int3
 * faults too: CPL-3 code of a 32-bit guest is emulated as well on this
 * host, and the emulator turns int3 into #UD:
 *
 *   cpl3 int3 faulted ... traps cpu=0 total=11 v0=2 v1=2 v6=4 v13=3
 *
 * Then a #GP with the #GP gate marked not present: the #NP raised while
 * delivering it makes a double fault, whose handler (on its IST stack in
 * 64-bit mode) prints
 *
 *   trap: double fault on cpu 0
 *   traps cpu=0 total=14 ... v8=1 ...
 *   trap-last cpu=0 vector=8 cpl=0 ...
 *
 * and ends the run with debug_exit(TRAP_EXIT_DOUBLE_FAULT): status 247.
 */
#include <stdint.h>

#include "debugcon.h"
#include "exit.h"
#include "format.h"
#include "serial.h"
#include "trap-probes.h"
#include "trap.h"

#ifdef MB_KERNEL
#include "kernel.h"
#define out_putc serial_putc
#define GATE_SIZE 8
#else
#define out_putc debugcon_putc
#define GATE_SIZE 16
#endif

static uint8_t user_stack[4096] __attribute__((aligned(16), section(".noinit")));

static void puts_out(const char *s)
{
	fmt_puts(out_putc, s);
}

static void report(const char *cpl, const char *name, int faulted)
{
	puts_out(cpl);
	out_putc(' ');
	puts_out(name);
	puts_out(faulted ? " faulted\n" : " resumed\n");
}

static uintptr_t user_probes(uintptr_t arg)
{
	report("cpl3", "int3", probe_int3());
	report("cpl3", "ud2", probe_ud2());
	report("cpl3", "gp", probe_gp());
#ifdef __x86_64__
	report("cpl3", "pf", probe_pf());
#endif
	report("cpl3", "de", probe_de());
	report("cpl3", "single-step", probe_single_step());
	report("cpl3", "hlt", probe_hlt());
	report("cpl3", "int 0x80", probe_int80());
	puts_out("cpl3 unknown service -> ");
	puts_out(trap_sys(0x1234, 0) == (uintptr_t)-1 ? "-1\n" : "UNEXPECTED\n");
	return arg;
}

/* Marks the #GP gate not present: the next #GP becomes #NP during delivery, hence #DF. */
static void break_gp_gate(void)
{
	struct {
		uint16_t limit;
		uintptr_t base;
	} __attribute__((packed)) idtr;

	__asm__ volatile("sidt %0" : "=m"(idtr));
	((volatile uint8_t *)idtr.base)[13 * GATE_SIZE + 5] &= 0x7f;
}

static int selftest(void)
{
	uintptr_t back;
	uint16_t cs;

	trap_putc = out_putc;
	trap_init();

	report("cpl0", "ud2", probe_ud2());
	report("cpl0", "gp", probe_gp());
#ifdef __x86_64__
	report("cpl0", "pf", probe_pf());
#endif
	report("cpl0", "de", probe_de());
	report("cpl0", "single-step", probe_single_step());
	trap_print(out_putc, 0);

	back = user_run(user_probes, 0x5a, user_stack + sizeof(user_stack));
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	puts_out("user_run returned 0x");
	fmt_hex(out_putc, back, 0);
	puts_out(" at cs 0x");
	fmt_hex(out_putc, cs, 0);
	out_putc('\n');
	trap_print(out_putc, 0);

	break_gp_gate();
	probe_gp();
	puts_out("no double fault\n");
	return 0x7d;
}

#ifdef MB_KERNEL
int kmain(uint32_t magic, const struct mb_info *info)
{
	(void)info;
	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;
	return selftest();
}
#else
int main(void)
{
	return selftest();
}
#endif
