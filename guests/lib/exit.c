#include <stdint.h>

#include "exit.h"
#include "io.h"
#include "machine.h"

void halt(void)
{
	/* A loop, not a single hlt: an NMI or a spurious wake-up must not fall through. */
	for (;;)
		__asm__ volatile("cli; hlt" : : : "memory");
}

void debug_exit(int v)
{
	/* A 32-bit write so values above 255 survive; the port takes any width. */
	outl(DEBUG_EXIT_PORT, (uint32_t)v);
	halt();
}
