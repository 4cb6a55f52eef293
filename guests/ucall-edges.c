/*
 * ucall-edges: what is and is not a ucall. Steps, each announced on the
 * debug console:
 *   1. bad magic: a PRINT struct whose magic is off by one bit and whose
 *      result field is preset to 0x7fffffff; the guest then prints the
 *      field (a host that refused the struct has not written to it) and the
 *      message must not appear;
 *   2. narrow: the address of a well-formed PRINT struct sent by 8- and
 *      16-bit OUTs to 0x1000 and by OUTs of each size to 0x1001-0x1003; none
 *      is a ucall, so its message ("narrow write taken as a ucall") must not
 *      appear;
 *   3. read: a 32-bit IN from 0x1000, printed;
 *   4. flood: FLOOD ucalls with the bad-magic struct of step 1, for the
 *      host's rate limit on the lines a guest can make it print;
 * then a well-formed ucall DONE.
 */
#include <stdint.h>

#include "debugcon.h"
#include "io.h"
#include "machine.h"
#include "ucall.h"

#define FLOOD 1000

static struct pyvmm_ucall bad __attribute__((aligned(64)));
static struct pyvmm_ucall good __attribute__((aligned(64)));

static void put_result(const char *what, uint32_t value)
{
	debugcon_puts(what);
	debugcon_put_hex(value, 8);
	debugcon_putc('\n');
}

int main(void)
{
	uint32_t addr = (uint32_t)(uintptr_t)&good;
	int i;

	debugcon_puts("ucall-edges: bad magic\n");
	bad.magic = UCALL_MAGIC ^ 0x100;
	bad.cmd = UCALL_PRINT;
	bad.msg = (uint64_t)(uintptr_t)"bad magic taken as a ucall";
	bad.result = 0x7fffffff;
	ucall_raw((uint32_t)(uintptr_t)&bad);
	__asm__ volatile("" : : : "memory");
	put_result("ucall-edges: result 0x", (uint32_t)bad.result);

	debugcon_puts("ucall-edges: narrow\n");
	good.magic = UCALL_MAGIC;
	good.cmd = UCALL_PRINT;
	good.msg = (uint64_t)(uintptr_t)"narrow write taken as a ucall";
	outb(UCALL_PORT, (uint8_t)addr);
	outw(UCALL_PORT, (uint16_t)addr);
	outl(UCALL_PORT + 1, addr);
	outl(UCALL_PORT + 2, addr);
	outl(UCALL_PORT + 3, addr);
	outw(UCALL_PORT + 2, (uint16_t)addr);
	outb(UCALL_PORT + 3, (uint8_t)addr);

	debugcon_puts("ucall-edges: read\n");
	put_result("ucall-edges: in 0x", inl(UCALL_PORT));

	debugcon_puts("ucall-edges: flood\n");
	for (i = 0; i < FLOOD; i++)
		ucall_raw((uint32_t)(uintptr_t)&bad);

	debugcon_puts("ucall-edges: done\n");
	ucall_done();
}
