/*
 * elf32-hello: a plain ELF32 kernel at 2 MiB, for pyvmm only (QEMU's
 * -kernel takes an ELF only with a multiboot header or a PVH note). It
 * checks what a loader owes an ELF image, that initialised data was
 * copied and .bss zeroed, prints one line and exits with 0x17:
 *
 *   Hello from a 32-bit ELF kernel (data ok, bss ok)
 */
#include <stdint.h>

#include "serial.h"

/* A value a loader that skipped the data segment would not leave there. */
static volatile uint32_t data_word = 0x600dda7au;
/* Not cleared by this kernel: the loader zeroes p_memsz beyond p_filesz. */
static volatile uint32_t bss_words[64];

static int bss_zero(void)
{
	unsigned i;

	for (i = 0; i < sizeof(bss_words) / sizeof(bss_words[0]); i++)
		if (bss_words[i] != 0)
			return 0;
	return 1;
}

int main(void)
{
	uint32_t cr0;

	serial_init();
	__asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
	serial_puts("Hello from a 32-bit ELF kernel (data ");
	serial_puts(data_word == 0x600dda7au ? "ok" : "NOT LOADED");
	serial_puts(", bss ");
	serial_puts(bss_zero() ? "ok" : "NOT ZERO");
	serial_puts(cr0 & 1 ? ")\n" : ", NOT IN PROTECTED MODE)\n");
	return 0x17;
}
