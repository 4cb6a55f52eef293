/*
 * dirty-pages: writes one word into each of 2048 pages (8 MiB from 4 MiB up),
 * then sends ucall SYNC (stage 0), and does it again with other values, four
 * rounds in all, then prints the sum of what it wrote and halts (status 0).
 * Between two SYNCs it dirties more pages than a small dirty ring holds, so
 * a monitor logging dirty pages through KVM's ring must empty it mid-run.
 * One store per page keeps the CPL-0 loop short (it is emulated here).
 */
#include <stdint.h>

#include "exit.h"
#include "serial.h"
#include "ucall.h"

#define BASE   0x400000ul
#define PAGES  2048
#define ROUNDS 4

int main(void)
{
	uint64_t sum = 0;
	int round, i;

	serial_init();
	for (round = 1; round <= ROUNDS; round++) {
		for (i = 0; i < PAGES; i++) {
			volatile uint64_t *word = (volatile uint64_t *)(BASE + 4096ul * i);

			*word += (uint64_t)round * i;
		}
		ucall_sync(0, round);
	}
	for (i = 0; i < PAGES; i++)
		sum += *(volatile uint64_t *)(BASE + 4096ul * i);
	serial_puts("dirty-pages: sum ");
	serial_put_dec(sum);
	serial_putc('\n');
	halt();
}
