/*
 * elf32-hello and elf64-hello, one source compiled for each word size:
 * plain ELF kernels for pyvmm only (QEMU's -kernel takes an ELF only with a
 * multiboot header or a PVH note, and a 64-bit one only with the note).
 * They check what a loader owes an ELF image, that initialised data was
 * copied and .bss zeroed, print one line and exit:
 *
 *   Hello from a 32-bit ELF kernel (data ok, bss ok)    exit 0x17, ELF32 at 2 MiB
 *   Hello from a 64-bit ELF kernel (data ok, bss ok)    exit 0x16, ELF64 at 1 MiB
 *
 * The 32-bit one also checks that it was entered in protected mode.
 */
#include <stdint.h>

#include "serial.h"

#ifdef __x86_64__
#define BITS        "64"
#define EXIT_STATUS 0x16
#else
#define BITS        "32"
#define EXIT_STATUS 0x17
#endif

/*
 * A value a loader that skipped the data segment would not leave there: a
 * full word, the pattern repeated in the upper half on 64-bit.
 */
#define DATA_PATTERN ((uintptr_t)0x600dda7a600dda7aull)
static volatile uintptr_t data_word = DATA_PATTERN;
/* Not cleared by this kernel: the loader zeroes p_memsz beyond p_filesz. */
static volatile uintptr_t bss_words[256 / sizeof(uintptr_t)];

static int bss_zero(void)
{
	unsigned i;

	for (i = 0; i < sizeof(bss_words) / sizeof(bss_words[0]); i++)
		if (bss_words[i] != 0)
			return 0;
	return 1;
}

#ifdef __x86_64__
/* 64-bit code runs in long mode or not at all: nothing to check. */
static int protected_mode(void)
{
	return 1;
}
#else
static int protected_mode(void)
{
	uint32_t cr0;

	__asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
	return cr0 & 1;
}
#endif

int main(void)
{
	serial_init();
	serial_puts("Hello from a " BITS "-bit ELF kernel (data ");
	serial_puts(data_word == DATA_PATTERN ? "ok" : "NOT LOADED");
	serial_puts(", bss ");
	serial_puts(bss_zero() ? "ok" : "NOT ZERO");
	serial_puts(protected_mode() ? ")\n" : ", NOT IN PROTECTED MODE)\n");
	return EXIT_STATUS;
}
