/*
 * bad-ucall: a hostile guest for the ucall port. The host must reject each
 * malformed call (bounds-checked against guest RAM) without crashing:
 *   1. the struct pointer itself is outside RAM (0xfffff000);
 *   2. a well-formed PRINT struct whose msg pointer is outside RAM.
 * A debug-console line before each step shows how far the guest got; after
 * step 2 it reports the struct's result field (preset to 0x7fffffff, so an
 * untouched field is recognisable). Then ucall DONE: status 0 if the host
 * resumed after both rejections.
 */
#include <stdint.h>

#include "debugcon.h"
#include "ucall.h"

#define OUTSIDE_RAM 0xfffff000u

static struct pyvmm_ucall bad __attribute__((aligned(64)));

int main(void)
{
	debugcon_puts("bad-ucall: struct outside RAM\n");
	ucall_raw(OUTSIDE_RAM);

	debugcon_puts("bad-ucall: msg outside RAM\n");
	bad.magic = UCALL_MAGIC;
	bad.cmd = UCALL_PRINT;
	bad.msg = OUTSIDE_RAM;
	bad.result = 0x7fffffff;
	ucall_raw((uint32_t)(uintptr_t)&bad);
	__asm__ volatile("" : : : "memory");
	debugcon_puts("bad-ucall: result 0x");
	debugcon_put_hex((uint32_t)bad.result, 8);
	debugcon_putc('\n');

	ucall_done();
}
