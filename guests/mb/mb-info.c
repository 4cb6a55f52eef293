/*
 * mb-info: prints what the multiboot loader reports: the magic check, the
 * info flags, mem_lower/mem_upper, the command line (QEMU passes the image
 * path, a space, and the -append text) and every memory map entry. Exits
 * with 0x10.
 *
 * Built twice: mb-info.elf (ELF at 1 MiB) and mb-info-flat.bin (a flat image
 * at 2 MiB whose multiboot header carries the load addresses). Both print
 * the same lines for the same machine and command line.
 */
#include "kernel.h"
#include "serial.h"

/* Bounds on what the loader hands over, so a broken structure cannot run away. */
#define MAX_CMDLINE  1024
#define MAX_MMAP     64

static void print_mmap(const struct mb_info *info)
{
	uint32_t addr = info->mmap_addr;
	uint32_t end = info->mmap_addr + info->mmap_length;
	int n = 0;

	while (addr < end && n < MAX_MMAP) {
		const struct mb_mmap_entry *e = (const struct mb_mmap_entry *)(uintptr_t)addr;

		serial_puts("mmap ");
		put_hex(e->base, 16);
		serial_puts(" len ");
		put_hex(e->length, 16);
		serial_puts(" type ");
		serial_put_dec(e->type);
		serial_putc('\n');
		addr += e->size + sizeof(e->size);
		n++;
	}
	serial_puts("mmap entries ");
	serial_put_dec((unsigned long)n);
	serial_putc('\n');
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;
	serial_puts("multiboot magic ok\n");

	serial_puts("flags ");
	put_hex(info->flags, 8);
	serial_putc('\n');

	if (info->flags & MB_INFO_MEMORY) {
		serial_puts("mem_lower ");
		serial_put_dec(info->mem_lower);
		serial_puts(" KiB, mem_upper ");
		serial_put_dec(info->mem_upper);
		serial_puts(" KiB\n");
	} else {
		serial_puts("no mem_lower/mem_upper\n");
	}

	if (info->flags & MB_INFO_CMDLINE) {
		serial_puts("cmdline \"");
		put_guest_string(info->cmdline, MAX_CMDLINE);
		serial_puts("\"\n");
	} else {
		serial_puts("no cmdline\n");
	}

	if (info->flags & MB_INFO_MMAP)
		print_mmap(info);
	else
		serial_puts("no mmap\n");

	return 0x10;
}
