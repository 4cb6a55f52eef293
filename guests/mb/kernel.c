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

/* The command line after its first word, or NULL. */
static const char *cmdline_args(const struct mb_info *info)
{
	const char *s;
	int n = 0;

	if (!(info->flags & MB_INFO_CMDLINE))
		return 0;
	s = (const char *)(uintptr_t)info->cmdline;
	while (n < MAX_CMDLINE && s[n] && s[n] != ' ')
		n++;
	return s + n;
}

/* Does the word at s (ending at a space or NUL) start with `prefix`? Returns its end if so. */
static const char *word_starts(const char *s, const char *prefix)
{
	while (*prefix && *s == *prefix) {
		s++;
		prefix++;
	}
	return *prefix ? 0 : s;
}

int cmdline_has(const struct mb_info *info, const char *word)
{
	const char *s = cmdline_args(info), *end;

	while (s && *s) {
		while (*s == ' ')
			s++;
		end = word_starts(s, word);
		if (end && (*end == ' ' || *end == 0))
			return 1;
		while (*s && *s != ' ')
			s++;
	}
	return 0;
}

static uint32_t parse_number(const char *s)
{
	uint32_t v = 0, base = 10;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	for (;; s++) {
		uint32_t d;

		if (*s >= '0' && *s <= '9')
			d = (uint32_t)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (uint32_t)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (uint32_t)(*s - 'A' + 10);
		else
			return v;
		v = v * base + d;
	}
}

uint32_t cmdline_number(const struct mb_info *info, const char *key, uint32_t fallback)
{
	const char *s = cmdline_args(info), *end;

	while (s && *s) {
		while (*s == ' ')
			s++;
		end = word_starts(s, key);
		if (end && *end == '=')
			return parse_number(end + 1);
		while (*s && *s != ' ')
			s++;
	}
	return fallback;
}
