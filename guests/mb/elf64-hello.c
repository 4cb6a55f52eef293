/*
 * elf64-hello: a plain ELF64 kernel at 1 MiB, for pyvmm only (QEMU's
 * -kernel refuses 64-bit ELF without a PVH note). It checks what a loader
 * owes an ELF image, that initialised data was copied and .bss zeroed,
 * prints one line and exits with 0x16:
 *
 *   Hello from a 64-bit ELF kernel (data ok, bss ok)
 */
#include <stdint.h>

#include "serial.h"

/* A value a loader that skipped the data segment would not leave there. */
static volatile uint64_t data_word = 0x600dda7a600dda7aull;
/* Not cleared by this kernel: the loader zeroes p_memsz beyond p_filesz. */
static volatile uint64_t bss_words[32];

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
	serial_init();
	serial_puts("Hello from a 64-bit ELF kernel (data ");
	serial_puts(data_word == 0x600dda7a600dda7aull ? "ok" : "NOT LOADED");
	serial_puts(", bss ");
	serial_puts(bss_zero() ? "ok" : "NOT ZERO");
	serial_puts(")\n");
	return 0x16;
}
