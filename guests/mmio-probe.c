/*
 * mmio-probe: touches guest-physical addresses beyond RAM (default 128 MiB),
 * which the boot page tables map but no memslot backs, so each access is an
 * MMIO exit. Writes the 32-bit value 0xdeadbeef to 0xd0000000, reads 32 bits
 * from 0xd0000004, prints "mmio read: 0x%08x\n" on the debug console with
 * whatever the monitor supplied, and halts (status 0).
 */
#include <stdint.h>

#include "debugcon.h"
#include "exit.h"

#define MMIO_WRITE_ADDR 0xd0000000ul
#define MMIO_READ_ADDR  0xd0000004ul

int main(void)
{
	volatile uint32_t *wr = (volatile uint32_t *)MMIO_WRITE_ADDR;
	volatile uint32_t *rd = (volatile uint32_t *)MMIO_READ_ADDR;
	uint32_t value;

	*wr = 0xdeadbeef;
	value = *rd;

	debugcon_puts("mmio read: 0x");
	debugcon_put_hex(value, 8);
	debugcon_putc('\n');
	halt();
}
