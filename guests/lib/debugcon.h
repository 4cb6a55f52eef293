/*
 * The one-port debug console at DEBUGCON_PORT. It needs no status polling,
 * so each byte costs exactly one exit; from CPL 3 it works through the TSS
 * I/O permission bitmap.
 */
#ifndef GUEST_DEBUGCON_H
#define GUEST_DEBUGCON_H

#include <stdint.h>

void debugcon_putc(char c);
void debugcon_puts(const char *s);
/* See fmt_hex: digits > 0 zero-pads to that width, <= 0 is minimal; no "0x". */
void debugcon_put_hex(uint64_t value, int digits);
void debugcon_put_dec(unsigned long value);

#endif
