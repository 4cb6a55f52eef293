#include "serial.h"
#include "format.h"
#include "io.h"
#include "machine.h"

/*
 * 8 data bits, no parity, one stop bit, interrupts off. The divisor latch is
 * deliberately left alone: baud rate means nothing to a virtual UART, and a
 * device model that does not implement DLAB would otherwise print the
 * divisor bytes written to offset 0.
 */
void serial_init(void)
{
	outb(COM1_PORT + UART_IER, 0x00);
	outb(COM1_PORT + UART_LCR, 0x03);
	outb(COM1_PORT + UART_MCR, 0x03);	/* DTR | RTS */
}

/* No '\n' -> "\r\n" translation: the host prints bytes exactly as sent. */
void serial_putc(char c)
{
	while (!(inb(COM1_PORT + UART_LSR) & UART_LSR_THRE))
		;
	outb(COM1_PORT + UART_THR, (uint8_t)c);
}

void serial_puts(const char *s)
{
	fmt_puts(serial_putc, s);
}

void serial_put_hex(uint64_t value, int digits)
{
	fmt_hex(serial_putc, value, digits);
}

void serial_put_dec(unsigned long value)
{
	fmt_dec(serial_putc, value);
}
