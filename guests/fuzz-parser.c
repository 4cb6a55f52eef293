/*
 * fuzz-parser: a record parser for the snapshot fuzzing example and tests,
 * fed one input per run by the host.
 *
 * It loads its own GDT/IDT (trap library: an exception is reported on COM1
 * and ends the run with debug_exit(TRAP_EXIT_UNEXPECTED), status 245), then
 * sends ucall SYNC(0, &mailbox): the host snapshots there, writes an input
 * into the mailbox and resets to that point after each input. The mailbox
 * is a u32 length and up to 252 bytes. Records, one op byte and its args:
 *
 *   'S' idx val  table[idx] = val; the table is 128 bytes at the start of a
 *                page whose second 128 bytes the host may protect with SPP,
 *                so idx >= 128 is a write the host sees as a violation
 *   'D' a b      a / b with DIV (b = 0: #DE, the crash the example finds)
 *   'P' n        one 8-byte store into scratch page n % 16 (dirties a page)
 *   'E'          end of input
 *
 * Anything else ends parsing as well. Then SYNC(2, records parsed) and
 * ucall DONE (status 0). All code runs at CPL 0 and takes a few hundred
 * instructions per input.
 */
#include <stdint.h>

#include "trap.h"
#include "ucall.h"

struct mailbox {
	uint32_t length;
	uint8_t data[252];
};

static struct mailbox mailbox __attribute__((aligned(256)));
static volatile uint8_t table_page[4096] __attribute__((aligned(4096)));
static volatile uint64_t scratch[16][512] __attribute__((aligned(4096)));
static volatile uint32_t quotient;

static uint32_t divide(uint32_t a, uint32_t b)
{
	uint32_t q, r;
	__asm__ volatile("divl %4" : "=a"(q), "=d"(r) : "a"(a), "d"(0), "rm"(b));
	(void)r;
	return q;
}

int main(void)
{
	trap_init();
	ucall_sync(0, (uint64_t)(uintptr_t)&mailbox);
	uint32_t len = mailbox.length > sizeof(mailbox.data) ? sizeof(mailbox.data) : mailbox.length;
	uint32_t pos = 0, records = 0;
	while (pos < len) {
		uint8_t op = mailbox.data[pos];
		if (op == 'S' && pos + 2 < len) {
			table_page[mailbox.data[pos + 1]] = mailbox.data[pos + 2];
			pos += 3;
		} else if (op == 'D' && pos + 2 < len) {
			quotient = divide(mailbox.data[pos + 1], mailbox.data[pos + 2]);
			pos += 3;
		} else if (op == 'P' && pos + 1 < len) {
			scratch[mailbox.data[pos + 1] % 16][0] += 1 + records;
			pos += 2;
		} else {
			break;
		}
		records++;
	}
	ucall_sync(2, records);
	ucall_done();
}
