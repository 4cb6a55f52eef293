/* Polled 16550 driver for the UART at COM1_PORT. */
#ifndef GUEST_SERIAL_H
#define GUEST_SERIAL_H

#include <stdint.h>

void serial_init(void);
void serial_putc(char c);
void serial_puts(const char *s);
/* See fmt_hex: digits > 0 zero-pads to that width, <= 0 is minimal; no "0x". */
void serial_put_hex(uint64_t value, int digits);
void serial_put_dec(unsigned long value);

#endif
