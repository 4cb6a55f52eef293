/*
 * mb-modules: prints the modules the loader passed (QEMU: -initrd
 * "file args,file2 args2"): their count, and for each one its string,
 * its size, whether it starts on a page boundary (the header asks for
 * that) and the first line of its contents. Addresses are not printed:
 * where modules go is the loader's choice. Exits with 0x11.
 */
#include "kernel.h"
#include "serial.h"

#define MAX_MODS      16
#define MAX_STRING    512
#define MAX_LINE      80	/* a longer first line is cut, with "..." */

static void print_first_line(const struct mb_module *m)
{
	const char *p = (const char *)(uintptr_t)m->mod_start;
	const char *end = (const char *)(uintptr_t)m->mod_end;
	int n = 0;

	serial_puts("  first line \"");
	while (p < end && *p != '\n' && n < MAX_LINE) {
		serial_putc(*p++);
		n++;
	}
	if (p < end && *p != '\n')
		serial_puts("...");
	serial_puts("\"\n");
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	const struct mb_module *mods;
	uint32_t i;

	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;
	if (!(info->flags & MB_INFO_MODS)) {
		serial_puts("no module information\n");
		return EXIT_MISSING;
	}

	serial_puts("modules ");
	serial_put_dec(info->mods_count);
	serial_putc('\n');

	mods = (const struct mb_module *)(uintptr_t)info->mods_addr;
	for (i = 0; i < info->mods_count && i < MAX_MODS; i++) {
		const struct mb_module *m = &mods[i];

		serial_puts("module ");
		serial_put_dec(i);
		serial_puts(" \"");
		put_guest_string(m->string, MAX_STRING);
		serial_puts("\"\n  ");
		serial_put_dec(m->mod_end - m->mod_start);
		serial_puts(" bytes, ");
		serial_puts(m->mod_start & 0xfff ? "NOT page-aligned\n" : "page-aligned\n");
		print_first_line(m);
	}
	return 0x11;
}
