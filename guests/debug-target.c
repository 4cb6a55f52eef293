/*
 * debug-target (flat 64-bit, CPL 0, debug console): a small, fixed program
 * for breakpoints, watchpoints and single steps set by the monitor. With its
 * own GDT, TSS and IDT (the trap library), so a #DB or #BP that the monitor
 * let through into the guest is counted, and reported at the end.
 *
 *   bump() is called 3 times at CPL 0, then 3 times at CPL 3 (user_run);
 *   each call adds its argument (1, 2, 3) to `counter` (one 8-byte store)
 *   and stores it in `last_call`. Prints:
 *     debug-target: cpl0 counter 0x6
 *     debug-target: counter 0xc
 *     traps cpu=0 total=0
 *     trap-last cpu=0 none
 *     debug-target: done
 *   then debug_exit(0x31): status 99. A handler that changes `counter`
 *   changes the first line.
 */
#include <stdint.h>

#include "debugcon.h"
#include "exit.h"
#include "trap.h"

volatile uint64_t counter;
volatile uint64_t last_call;

__attribute__((noinline)) void bump(uint64_t by)
{
	counter += by;
	last_call = by;
}

static uint8_t user_stack[4096] __attribute__((aligned(16)));

static uintptr_t three_bumps(uintptr_t arg)
{
	for (uint64_t i = 1; i <= 3; i++)
		bump(i);
	return arg;
}

int main(void)
{
	trap_init();
	three_bumps(0);
	debugcon_puts("debug-target: cpl0 counter 0x");
	debugcon_put_hex(counter, 0);
	debugcon_putc('\n');
	user_run(three_bumps, 0, user_stack + sizeof(user_stack));
	debugcon_puts("debug-target: counter 0x");
	debugcon_put_hex(counter, 0);
	debugcon_putc('\n');
	trap_print(debugcon_putc, 0);
	debugcon_puts("debug-target: done\n");
	debug_exit(0x31);
}
