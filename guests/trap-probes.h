/*
 * Exception probes for the trap self-tests (trap-selftest and
 * mb/mb-trap-selftest): each raises one exception with an instruction of
 * its own and returns 1 if the instruction faulted and was resumed at its
 * TRAP_FIXUP address, 0 if it completed (a trap such as #BP or #DB, or no
 * exception at all). They run at CPL 0 and at CPL 3 alike.
 */
#ifndef GUEST_TRAP_PROBES_H
#define GUEST_TRAP_PROBES_H

#include <stdint.h>

#include "trap.h"

/*
 * The body is one faulting instruction at label 1; the fixup (label 2)
 * sets the result to 1; the normal path sets 0.
 */
#define PROBE_ASM(insn)							\
	"1: " insn "\n\t"						\
	"xorl %[faulted], %[faulted]\n\t"				\
	"jmp 3f\n"							\
	"2: movl $1, %[faulted]\n"					\
	"3:\n\t"							\
	TRAP_FIXUP_ASM(1b, 2b)

static inline int probe_ud2(void)
{
	int faulted;

	__asm__ volatile(PROBE_ASM("ud2") : [faulted] "=r"(faulted) : : "memory");
	return faulted;
}

/* #GP(0xfff8): a selector beyond the GDT's limit. DS is unchanged by the fault. */
static inline int probe_gp(void)
{
	int faulted;

	__asm__ volatile(PROBE_ASM("movl %[sel], %%ds")
			 : [faulted] "=r"(faulted)
			 : [sel] "r"(0xfff8u)
			 : "memory");
	return faulted;
}

/* #DE: an unsigned division by zero. */
static inline int probe_de(void)
{
	int faulted;
	uint32_t lo = 1, hi = 0, divisor = 0;

	__asm__ volatile(PROBE_ASM("divl %[d]")
			 : [faulted] "=r"(faulted), "+a"(lo), "+d"(hi)
			 : [d] "r"(divisor)
			 : "memory", "cc");
	return faulted;
}

/* #GP at CPL 3 (hlt is privileged); at CPL 0 it would halt the CPU. */
static inline int probe_hlt(void)
{
	int faulted;

	__asm__ volatile(PROBE_ASM("hlt") : [faulted] "=r"(faulted) : : "memory");
	return faulted;
}

/*
 * #BP: a trap, the handler resumes after the int3 (result 0). The fixup
 * entry covers hosts that turn int3 into #UD (32-bit guests here).
 */
static inline int probe_int3(void)
{
	int faulted;

	__asm__ volatile(PROBE_ASM("int3") : [faulted] "=r"(faulted) : : "memory");
	return faulted;
}

/*
 * #DB: TF set by POPF traps after the instruction that follows; the
 * handler clears TF in the saved flags, so exactly one #DB arrives.
 */
static inline int probe_single_step(void)
{
#ifdef __x86_64__
	__asm__ volatile("pushfq\n\t"
			 "orq $0x100, (%%rsp)\n\t"
			 "popfq\n\t"
			 "nop\n\t"
			 "nop"
			 : : : "memory", "cc");
#else
	__asm__ volatile("pushfl\n\t"
			 "orl $0x100, (%%esp)\n\t"
			 "popfl\n\t"
			 "nop\n\t"
			 "nop"
			 : : : "memory", "cc");
#endif
	return 0;
}

/*
 * A software interrupt to a vector without a gate: #NP on bare hardware,
 * #UD on this host (which cannot deliver software interrupts at all).
 */
static inline int probe_int80(void)
{
	int faulted;

	__asm__ volatile(PROBE_ASM("int $0x80") : [faulted] "=r"(faulted) : : "memory");
	return faulted;
}

#ifdef __x86_64__
/* #PF: a read at 32 GiB, beyond the 4 GiB the boot page tables map. */
static inline int probe_pf(void)
{
	int faulted;
	uint64_t value;

	__asm__ volatile(PROBE_ASM("movq (%[a]), %[v]")
			 : [faulted] "=r"(faulted), [v] "=r"(value)
			 : [a] "r"(0x800000000ull)
			 : "memory");
	(void)value;
	return faulted;
}
#endif

#endif
