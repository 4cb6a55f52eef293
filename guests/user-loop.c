/*
 * user-loop: a CPU-bound workload at CPL 3, where this host runs guest code
 * natively (CPL-0 code would go through the instruction emulator).
 *
 * Drops to CPL 3, steps a 64-bit linear congruential generator
 *     x[0] = 1,  x[i+1] = (6364136223846793005 * x[i] + 1442695040888963407) mod 2^64
 * ITERATIONS = 10,000,000 times, and prints the final state x[10000000] on
 * the debug console as "user loop done: 0x" + 16 lowercase hex digits + "\n".
 * Expected: "user loop done: 0xe591aa22a1553a81". A test can recompute it in
 * O(log N) with the geometric sum
 *     x[N] = a^N * x[0] + c * (a^N - 1) / (a - 1)   (mod 2^64),
 * e.g. in Python, evaluating (pow(a, N, m*(a-1)) - 1) // (a-1) to keep the
 * division exact, or with a plain loop (about 2 s).
 *
 * Then, still at CPL 3, ends with debug_exit(0x10): status 33.
 */
#include <stdint.h>

#include "debugcon.h"
#include "exit.h"
#include "user.h"

#define ITERATIONS 10000000u
#define LCG_MUL    6364136223846793005ull
#define LCG_ADD    1442695040888963407ull
#define LCG_SEED   1ull

/* Outside .bss: a stack needs no clearing, and CPL-0 clearing is slow here. */
static uint8_t user_stack[4096] __attribute__((aligned(16), section(".noinit")));

static void user_main(void)
{
	uint64_t x = LCG_SEED;

	/* Hide the seed so the compiler cannot fold the loop into a constant. */
	__asm__ volatile("" : "+r"(x));
	for (uint32_t i = 0; i < ITERATIONS; i++)
		x = x * LCG_MUL + LCG_ADD;

	debugcon_puts("user loop done: 0x");
	debugcon_put_hex(x, 16);
	debugcon_putc('\n');
	debug_exit(0x10);
}

int main(void)
{
	enter_user(user_main, user_stack + sizeof(user_stack));
}
