/*
 * msr-probe (flat 64-bit, CPL 0, debug console): RDMSR and WRMSR for the
 * MSR-exit tests. With its own GDT, TSS and IDT (the trap library), so a #GP
 * is counted and reported rather than a triple fault. In order:
 *
 *   1. wrmsr LSTAR <- 0xffffffff81a00000, then rdmsr LSTAR:
 *        msr-probe: lstar 0xffffffff81a00000          (the write stood)
 *   2. rdmsr 0x40000f00 (an index KVM does not implement: #GP without a
 *      handler):
 *        msr-probe: read 0x40000f00 0x...              or  read 0x40000f00 -> #GP
 *   3. wrmsr SYSENTER_EIP <- 0x1000, then rdmsr SYSENTER_EIP:
 *        msr-probe: sysenter_eip 0x...                 (0x1000 unless a handler changed it)
 *   4. rdmsr 0x40000f01 and wrmsr 0x40000f01 <- 5:
 *        msr-probe: read 0x40000f01 0x... (or -> #GP), write 0x40000f01 -> ok (or -> #GP)
 *   5. the trap counts (`traps cpu=0 total=N v13=N`, the last exception),
 *      then `msr-probe: done` and debug_exit(0x30): status 97.
 *
 * A #GP on any of these is resumed at its fixup and reported as "#GP".
 */
#include <stdint.h>

#include "debugcon.h"
#include "exit.h"
#include "trap.h"

#define MSR_LSTAR        0xc0000082u
#define MSR_SYSENTER_EIP 0x176u
#define MSR_ANSWERED     0x40000f00u
#define MSR_REFUSED      0x40000f01u

/* Returns 1 if rdmsr faulted (#GP, resumed at the fixup). */
static int rdmsr_checked(uint32_t index, uint64_t *value)
{
	uint32_t lo = 0, hi = 0;
	int faulted;

	__asm__ volatile("1: rdmsr\n\t"
			 "xorl %[f], %[f]\n\t"
			 "jmp 3f\n"
			 "2: movl $1, %[f]\n"
			 "3:\n\t"
			 TRAP_FIXUP_ASM(1b, 2b)
			 : [f] "=r"(faulted), "+a"(lo), "+d"(hi)
			 : "c"(index)
			 : "memory");
	*value = ((uint64_t)hi << 32) | lo;
	return faulted;
}

static int wrmsr_checked(uint32_t index, uint64_t value)
{
	int faulted;

	__asm__ volatile("1: wrmsr\n\t"
			 "xorl %[f], %[f]\n\t"
			 "jmp 3f\n"
			 "2: movl $1, %[f]\n"
			 "3:\n\t"
			 TRAP_FIXUP_ASM(1b, 2b)
			 : [f] "=r"(faulted)
			 : "c"(index), "a"((uint32_t)value), "d"((uint32_t)(value >> 32))
			 : "memory");
	return faulted;
}

static void report_read(const char *what, uint32_t index)
{
	uint64_t value;

	debugcon_puts("msr-probe: ");
	debugcon_puts(what);
	if (rdmsr_checked(index, &value)) {
		debugcon_puts(" -> #GP\n");
		return;
	}
	debugcon_puts(" 0x");
	debugcon_put_hex(value, 0);
	debugcon_putc('\n');
}

static void report_write(const char *what, uint32_t index, uint64_t value)
{
	debugcon_puts("msr-probe: ");
	debugcon_puts(what);
	debugcon_puts(wrmsr_checked(index, value) ? " -> #GP\n" : " -> ok\n");
}

int main(void)
{
	trap_init();
	report_write("write lstar", MSR_LSTAR, 0xffffffff81a00000ull);
	report_read("lstar", MSR_LSTAR);
	report_read("read 0x40000f00", MSR_ANSWERED);
	report_write("write sysenter_eip", MSR_SYSENTER_EIP, 0x1000);
	report_read("sysenter_eip", MSR_SYSENTER_EIP);
	report_read("read 0x40000f01", MSR_REFUSED);
	report_write("write 0x40000f01", MSR_REFUSED, 5);
	trap_print(debugcon_putc, 0);
	debugcon_puts("msr-probe: done\n");
	debug_exit(0x30);
}
