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

#define MAX_CMDLINE 1024

static int digit(char c, uint32_t base)
{
	uint32_t d;

	if (c >= '0' && c <= '9')
		d = (uint32_t)(c - '0');
	else if (c >= 'a' && c <= 'f')
		d = (uint32_t)(c - 'a' + 10);
	else if (c >= 'A' && c <= 'F')
		d = (uint32_t)(c - 'A' + 10);
	else
		return -1;
	return d < base ? (int)d : -1;
}

int cmdline_number(const struct mb_info *info, const char *key, uint32_t *value)
{
	const char *s, *end;
	int word_start = 1;

	if (!(info->flags & MB_INFO_CMDLINE))
		return 0;
	s = (const char *)(uintptr_t)info->cmdline;
	for (end = s + MAX_CMDLINE; s < end && *s; s++) {
		const char *k = key, *p = s;

		if (word_start) {
			while (*k && *p == *k) {
				k++;
				p++;
			}
			if (*k == '\0') {
				uint32_t base = 10, v = 0;
				int d, digits = 0;

				if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
					base = 16;
					p += 2;
				}
				while ((d = digit(*p, base)) >= 0) {
					v = v * base + (uint32_t)d;
					p++;
					digits++;
				}
				if (digits > 0 && (*p == '\0' || *p == ' ' || *p == '\t')) {
					*value = v;
					return 1;
				}
			}
		}
		word_start = *s == ' ' || *s == '\t';
	}
	return 0;
}
