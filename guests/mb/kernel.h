/*
 * What the multiboot kernels in this directory share: the GDT that start.S
 * loads, the entry point it calls, and small helpers.
 */
#ifndef MB_KERNEL_H
#define MB_KERNEL_H

/* Selectors of the GDT in start.S (a multiboot loader leaves GDTR undefined). */
#define KERNEL_CS 0x08
#define KERNEL_DS 0x10

/* Statuses a kernel returns when something it checks is wrong. */
#define EXIT_BAD_MAGIC   0x7f	/* EAX was not the multiboot loader magic */
#define EXIT_MISSING     0x7e	/* the loader left out information the kernel needs */
#define EXIT_FAILED      0x7d	/* the kernel's own check failed */

#ifndef __ASSEMBLER__
#include <stdint.h>

#include "multiboot.h"

/*
 * Called by start.S with EAX and EBX as the loader left them, on the boot
 * stack, with .bss cleared and interrupts off. The return value goes to
 * debug_exit(), so the run ends with status (value << 1) | 1.
 */
int kmain(uint32_t magic, const struct mb_info *info);

/*
 * Checks the loader magic and sets up COM1. Prints a line and returns 0 if
 * the magic is wrong (the caller then exits with EXIT_BAD_MAGIC).
 */
int kernel_init(uint32_t magic);

/* Prints "0x" and the value in hex: `digits` digits, zero-padded, or as few as needed if 0. */
void put_hex(uint64_t value, int digits);

/*
 * Finds the word "KEY=N" on the multiboot command line (key given with its
 * '='; N decimal or 0x hex) and stores N. Returns 0 if there is no such
 * word or N is not a number.
 */
int cmdline_number(const struct mb_info *info, const char *key, uint32_t *value);

/* Prints a string that the loader placed in memory, at most `max` bytes. */
void put_guest_string(uint32_t addr, uint32_t max);

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" : : : "memory");
}
#endif

#endif
