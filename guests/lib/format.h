/*
 * Number and string formatting shared by the serial and debug-console
 * drivers: each driver supplies only its byte output function.
 */
#ifndef GUEST_FORMAT_H
#define GUEST_FORMAT_H

#include <stdint.h>

typedef void (*putc_fn)(char c);

void fmt_puts(putc_fn putc, const char *s);

/*
 * Lowercase hex without a "0x" prefix. digits > 0 prints exactly that many
 * low-order digits (zero padded); digits <= 0 prints as few as needed.
 */
void fmt_hex(putc_fn putc, uint64_t value, int digits);

/*
 * Unsigned decimal. unsigned long is the native word, so 32-bit guests need
 * no 64-bit division helper from libgcc (none is linked).
 */
void fmt_dec(putc_fn putc, unsigned long value);

#endif
