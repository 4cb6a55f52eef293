#include "kernel.h"
#include "serial.h"

int kernel_init(uint32_t magic)
{
	serial_init();
	if (magic == MB_BOOTLOADER_MAGIC)
		return 1;
	serial_puts("bad multiboot magic ");
	put_hex(magic, 8);
	serial_putc('\n');
	return 0;
}

void put_hex(uint64_t value, int digits)
{
	serial_puts("0x");
	serial_put_hex(value, digits);
}

void put_guest_string(uint32_t addr, uint32_t max)
{
	const char *s = (const char *)(uintptr_t)addr;

	while (max-- > 0 && *s)
		serial_putc(*s++);
}
