/*
 * user-spin (flat 64-bit, debug console): drops to CPL 3 and spins there for
 * ever without an exit, for a debugger's interrupt at CPL 3. With its own
 * GDT, TSS and IDT (the trap library). Prints "user-spin: at cpl 3" (from CPL
 * 3, through the TSS I/O bitmap) before it spins; never ends by itself.
 */
#include <stdint.h>

#include "debugcon.h"
#include "trap.h"

static uint8_t user_stack[4096] __attribute__((aligned(16)));

static uintptr_t spin(uintptr_t arg)
{
	debugcon_puts("user-spin: at cpl 3\n");
	for (;;)
		__asm__ volatile("pause");
	return arg;
}

int main(void)
{
	trap_init();
	user_run(spin, 0, user_stack + sizeof(user_stack));
	return 0;
}
