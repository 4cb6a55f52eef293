/*
 * far-jmp-unbacked: a hostile guest for a monitor's MMIO path. Far
 * transfers whose far pointer (offset, then selector) lies in unbacked
 * guest-physical memory: above RAM but below 4 GiB, where the boot page
 * tables still map it (identity), so every read of the pointer is an MMIO
 * exit the monitor must answer, in the middle of an instruction KVM
 * emulates.
 *
 *   ljmp  *FARPTR      (FF /5, m16:32)
 *   ljmpq *FARPTR      (REX.W FF /5: m16:64 on Intel, m16:32 on AMD)
 *   lcall *FARPTR      (FF /3, m16:32)
 *
 * with FARPTR = 0xc0000000. Whatever the monitor returns, the selector is
 * not a code segment of this guest's GDT (an empty bus reads all-ones:
 * selector 0xffff, beyond the GDT), so each one raises #GP, which the
 * trap library counts and resumes after (exception-table fixup). At CPL 0
 * first, then at CPL 3 (user_run), or only one of them: the host answers
 * ucall SYNC stage 0, args[1] = address of a u32 it may set to 1 (CPL 0
 * only) or 2 (CPL 3 only). Output on the debug console:
 *
 *   far-jmp-unbacked: cpl0 ljmp -> vector 13 error 0xfffc
 *   far-jmp-unbacked: cpl0 ljmpq -> vector 13 error 0xfffc
 *   far-jmp-unbacked: cpl0 lcall -> vector 13 error 0xfffc
 *   far-jmp-unbacked: cpl3 ... (the same three)
 *   traps cpu=0 total=6 v13=6
 *   trap-last cpu=0 vector=13 cpl=3 ...
 *
 * then ucall DONE (status 0). "-> completed" would mean the transfer
 * went through (it cannot, with this GDT). A robust monitor answers each
 * read (or refuses it) and stays stoppable: --timeout and one Ctrl-C must
 * end the run whatever the guest does, also with SPP active (--spp), which
 * changes how MMIO exits are served.
 */
#include <stdint.h>

#include "debugcon.h"
#include "format.h"
#include "trap.h"
#include "ucall.h"

#define FARPTR 0xc0000000ul

static uint8_t user_stack[4096] __attribute__((aligned(16)));
static volatile uint32_t only;	/* 0: both, 1: CPL 0, 2: CPL 3 */

/* Each form, with a fixup: returns 1 if it faulted. */
#define FAR_PROBE(insn)							\
	__asm__ volatile("1: " insn " *(%[p])\n\t"			\
			 "xorl %[f], %[f]\n\t"				\
			 "jmp 3f\n"					\
			 "2: movl $1, %[f]\n"				\
			 "3:\n\t"					\
			 TRAP_FIXUP_ASM(1b, 2b)				\
			 : [f] "=r"(faulted)				\
			 : [p] "r"(FARPTR)				\
			 : "memory")

static void report(const char *cpl, const char *form, int faulted)
{
	const struct trap_state *s = trap_state_of(0);

	debugcon_puts("far-jmp-unbacked: ");
	debugcon_puts(cpl);
	debugcon_putc(' ');
	debugcon_puts(form);
	if (!faulted) {
		debugcon_puts(" -> completed\n");
		return;
	}
	debugcon_puts(" -> vector ");
	debugcon_put_dec(s->last_vector);
	debugcon_puts(" error 0x");
	debugcon_put_hex(s->last_error, 0);
	debugcon_putc('\n');
}

static uintptr_t probes(uintptr_t cpl3)
{
	const char *cpl = cpl3 ? "cpl3" : "cpl0";
	int faulted;

	FAR_PROBE("ljmpl");
	report(cpl, "ljmp", faulted);
	FAR_PROBE("rex.W ljmp");
	report(cpl, "ljmpq", faulted);
	FAR_PROBE("lcalll");
	report(cpl, "lcall", faulted);
	return 0;
}

int main(void)
{
	trap_init();
	ucall_sync(0, (uint64_t)(uintptr_t)&only);
	if (only != 2)
		probes(0);
	if (only != 1)
		user_run(probes, 1, user_stack + sizeof(user_stack));
	trap_print(debugcon_putc, 0);
	ucall_done();
}
