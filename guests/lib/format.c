#include "format.h"

void fmt_puts(putc_fn putc, const char *s)
{
	while (*s)
		putc(*s++);
}

void fmt_hex(putc_fn putc, uint64_t value, int digits)
{
	static const char hex[] = "0123456789abcdef";

	if (digits <= 0) {
		/* Find the highest non-zero nibble; zero still prints one digit. */
		digits = 1;
		while (digits < 16 && (value >> (4 * digits)) != 0)
			digits++;
	} else if (digits > 16) {
		digits = 16;
	}
	while (digits-- > 0)
		putc(hex[(value >> (4 * digits)) & 0xf]);
}

void fmt_dec(putc_fn putc, unsigned long value)
{
	/* 20 digits hold the largest 64-bit value. */
	char buf[20];
	int n = 0;

	do {
		buf[n++] = (char)('0' + value % 10);
		value /= 10;
	} while (value != 0);
	while (n > 0)
		putc(buf[--n]);
}
