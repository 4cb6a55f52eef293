/*
 * emulation-failure: at CPL 0 this host runs guest code through KVM's
 * instruction emulator, which cannot decode XGETBV. After printing "before\n"
 * on the debug console the guest executes one, and the run ends with an
 * internal error (emulation failure) pointing at the XGETBV.
 *
 * XGETBV rather than MOVBE: the emulator does implement MOVBE, and whether
 * it then runs it or raises #UD (a triple fault here) depends on the CPUID
 * the monitor gives the vCPU; XGETBV fails to decode whatever the CPUID.
 * On a host that executes CPL-0 code natively, XGETBV with CR4.OSXSAVE clear
 * raises #UD instead, which with no IDT is a triple fault (shutdown).
 * "after\n" would mean the instruction completed; the guest then halts.
 */
#include <stdint.h>

#include "debugcon.h"
#include "exit.h"

int main(void)
{
	uint32_t lo, hi;

	debugcon_puts("before\n");
	/* ECX = 0 selects XCR0, the one register every XSAVE CPU has. */
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0) : "memory");
	(void)lo;
	(void)hi;
	debugcon_puts("after\n");
	halt();
}
