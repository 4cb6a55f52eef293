#include "debugcon.h"
#include "format.h"
#include "io.h"
#include "machine.h"

void debugcon_putc(char c)
{
	outb(DEBUGCON_PORT, (uint8_t)c);
}

void debugcon_puts(const char *s)
{
	fmt_puts(debugcon_putc, s);
}

void debugcon_put_hex(uint64_t value, int digits)
{
	fmt_hex(debugcon_putc, value, digits);
}

void debugcon_put_dec(unsigned long value)
{
	fmt_dec(debugcon_putc, value);
}
