/*
 * The body of snap-prot and snap-long, the guests the snapshot tests cut in
 * two: ROUNDS rounds, each of which steps a 64-bit LCG kept in memory,
 * writes the round's value into one of four pages of a scratch area (so RAM
 * changes between snapshot points), prints
 *
 *   round N: lcg 0x................ page P sum 0x........
 *
 * on COM1 and then sends ucall SYNC(1, N). After the last round it prints
 * "rounds done" and sends ucall DONE (status 0). A restore that loses any
 * RAM page, register or the UART's line settings changes a later line.
 */
#include <stdint.h>

#include "serial.h"
#include "ucall.h"

#define ROUNDS 8
#define SCRATCH_PAGES 4

static uint8_t scratch[SCRATCH_PAGES][4096] __attribute__((aligned(4096)));
static volatile uint64_t lcg = 0x2545f4914f6cdd1dull;

static uint32_t page_sum(const uint8_t *p)
{
	uint32_t sum = 0;
	for (int i = 0; i < 4096; i += 256)
		sum = sum * 31 + p[i];
	return sum;
}

int main(void)
{
	serial_init();
	for (uint32_t round = 1; round <= ROUNDS; round++) {
		lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t page = (uint32_t)(lcg >> 60) % SCRATCH_PAGES;
		for (int i = 0; i < 4096; i += 256)
			scratch[page][i] += (uint8_t)(lcg >> 8) + (uint8_t)round;
		serial_puts("round ");
		serial_put_dec(round);
		serial_puts(": lcg 0x");
		serial_put_hex(lcg, 16);
		serial_puts(" page ");
		serial_put_dec(page);
		serial_puts(" sum 0x");
		serial_put_hex(page_sum(scratch[page]), 8);
		serial_puts("\n");
		ucall_sync(1, round);
	}
	serial_puts("rounds done\n");
	ucall_done();
}
