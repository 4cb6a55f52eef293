/*
 * mb-atomics: N CPUs update shared counters with atomic instructions, for
 * tests of a monitor that emulates writes to protected memory: a locked
 * instruction the monitor splits into a read and a separate write loses
 * updates when CPUs race, and the totals show it.
 *
 * Command line (-append): "iter=N" rounds per CPU (default 3000), "cpus=N"
 * CPUs to use (default: every CPU in the ACPI MADT; at most that many).
 *
 * The BSP finds the CPUs (ACPI MADT), installs the trap library (own GDT,
 * one TSS per CPU, IDT) and prints
 *
 *   mb-atomics: 4 cpus, 3000 iterations each, counters at 0x00104000
 *
 * then sends ucall SYNC stage 0 with args[1] = the counters' page (4 KiB,
 * nothing else on it) so the host can protect it before any CPU writes
 * there, and starts the APs (INIT, SIPI, SIPI). Every CPU, the BSP
 * included, installs the trap library for itself and drops to CPL 3
 * (user_run; SYSEXIT, since 32-bit iret is not available here), waits at a
 * barrier until all N are there, and does ITER rounds of each, in turn:
 *
 *   lock addl $1, add_counter
 *   lock xaddl (1), xadd_counter
 *   a lock cmpxchgl loop incrementing cmpxchg_counter (retries counted)
 *   spinlock (xchg) ... spin_counter++ (a plain load and store) ... unlock
 *   xchgl of a token of its own (rank << 16 | round, plus 1) into swap,
 *   adding up the values it gets back
 *   lock adcl $2, adc_counter with CF = the round's low bit (adds 2 or 3)
 *   lock sbbl $2, sbb_counter with CF = the round's low bit (takes 2 or 3)
 *
 * then returns to CPL 0. The BSP waits for the others, prints
 *
 *   lock add 12000
 *   lock xadd 12000
 *   lock cmpxchg 12000 (retries R)
 *   spinlock 12000
 *   xchg 12000 (sum S of S)
 *   lock adc 30000
 *   lock sbb 30000                 (what it took away)
 *   expected 12000
 *   traps cpu=0 total=0          (the trap library's two lines per CPU)
 *   trap-last cpu=0 none
 *   ...
 *   mb-atomics: ok                 or  mb-atomics: MISMATCH
 *
 * where the xchg line counts the exchanges and compares the values got
 * back plus swap's final value with the tokens put in plus its initial 0:
 * an exchange that is not atomic hands one value to two CPUs and loses
 * another. The adc and sbb rounds check that the carry each one read is
 * used: N * (2 * ITER + ITER / 2). Their steps are 2 and 3, not 1: a
 * monitor that has to tell a lost carry-in from the values the counter
 * held cannot when two of those values differ by one (see README.md). The
 * run ends through isa-debug-exit: 0x18 (status 49) if all
 * five totals are N * ITER and the sums agree, EXIT_FAILED (status 251) if not or if a CPU did not
 * finish. R depends on the interleaving; everything else is fixed. Any
 * exception is counted (the trap-last lines name it); an unexpected one
 * ends the run with status 245. On this project's hosts a 32-bit guest's
 * CPL-3 code is emulated just like its CPL-0 code (about 1 us per
 * instruction, see README.md), CPL 3 or not; the default run still takes
 * well under a second (0.2 s with 2 CPUs, 0.4 s with 4, unprotected).
 */
#include <stdint.h>

#include "exit.h"
#include "kernel.h"
#include "serial.h"
#include "smp.h"
#include "trap.h"
#include "ucall.h"

#define DEFAULT_ITER     3000
#define USER_STACK_SIZE  4096
#define PAGE_SIZE        4096
/* Generous: every CPU runs emulated here, and a protected page makes each write a host trip. */
#define DONE_SPINS       200000000

/*
 * The page a host may protect: the four counters and the spinlock, nothing
 * else. Each counter on a 128-byte sub-page of its own, so a host can treat
 * them separately.
 */
struct counters {
	volatile uint32_t add;			/*   0 */
	uint8_t pad0[124];
	volatile uint32_t xadd;			/* 128 */
	uint8_t pad1[124];
	volatile uint32_t cmpxchg;		/* 256 */
	uint8_t pad2[124];
	volatile uint32_t spin;			/* 384 */
	uint8_t pad3[124];
	volatile uint32_t lock;			/* 512 */
	uint8_t pad4[124];
	volatile uint32_t swap;			/* 640 */
	uint8_t pad5[124];
	volatile uint32_t adc;			/* 768 */
	uint8_t pad6[124];
	volatile uint32_t sbb;			/* 896 */
	uint8_t pad7[PAGE_SIZE - 900];
};

_Static_assert(sizeof(struct counters) == PAGE_SIZE, "the counters fill one page");

static struct counters counters __attribute__((aligned(PAGE_SIZE)));

/* Off the counters' page: bookkeeping must not cost a host trip per access. */
static volatile uint32_t ready;		/* CPUs at the start barrier */
static volatile uint32_t done;		/* CPUs back at CPL 0 */
static volatile uint32_t retries[MAX_CPUS];
static volatile uint64_t swapped_out[MAX_CPUS];	/* what each CPU's xchgs got back */
static volatile uint32_t swaps[MAX_CPUS];
static uint32_t ncpus, iterations;

static uint8_t user_stacks[MAX_CPUS][USER_STACK_SIZE]
	__attribute__((aligned(16), section(".noinit")));

static inline void user_relax(void)
{
	__asm__ volatile("pause" : : : "memory");
}

static void spin_lock(volatile uint32_t *lock)
{
	uint32_t taken;

	for (;;) {
		taken = 1;
		__asm__ volatile("xchgl %0, %1" : "+r"(taken), "+m"(*lock) : : "memory");
		if (taken == 0)
			return;
		while (*lock != 0)
			user_relax();
	}
}

static void spin_unlock(volatile uint32_t *lock)
{
	__asm__ volatile("" : : : "memory");
	*lock = 0;
}

/* CPL 3: the four rounds. */
static uintptr_t work(uintptr_t rank)
{
	uint32_t i, retried = 0;

	__atomic_fetch_add(&ready, 1, __ATOMIC_SEQ_CST);
	while (ready != ncpus)
		user_relax();

	for (i = 0; i < iterations; i++)
		__asm__ volatile("lock addl $1, %0" : "+m"(counters.add) : : "memory", "cc");

	for (i = 0; i < iterations; i++) {
		uint32_t one = 1;

		__asm__ volatile("lock xaddl %0, %1" : "+r"(one), "+m"(counters.xadd) : : "memory", "cc");
	}

	for (i = 0; i < iterations; i++) {
		uint32_t old = counters.cmpxchg, seen;

		for (;;) {
			seen = old;
			__asm__ volatile("lock cmpxchgl %2, %1"
					 : "+a"(seen), "+m"(counters.cmpxchg)
					 : "r"(old + 1)
					 : "memory", "cc");
			if (seen == old)
				break;
			old = seen;
			retried++;
		}
	}

	for (i = 0; i < iterations; i++) {
		spin_lock(&counters.lock);
		counters.spin = counters.spin + 1;
		spin_unlock(&counters.lock);
	}

	{
		uint64_t got_back = 0;

		for (i = 0; i < iterations; i++) {
			uint32_t token = ((uint32_t)rank << 16 | i) + 1;

			__asm__ volatile("xchgl %0, %1" : "+r"(token), "+m"(counters.swap) : : "memory");
			got_back += token;
		}
		swapped_out[rank] = got_back;
		swaps[rank] = i;
	}

	/* bt copies the round's low bit into CF, the carry (borrow) the locked adc (sbb) adds in */
	for (i = 0; i < iterations; i++)
		__asm__ volatile("btl $0, %1\n\tlock adcl $2, %0" : "+m"(counters.adc) : "r"(i) : "memory", "cc");
	for (i = 0; i < iterations; i++)
		__asm__ volatile("btl $0, %1\n\tlock sbbl $2, %0" : "+m"(counters.sbb) : "r"(i) : "memory", "cc");

	retries[rank] = retried;
	return 0;
}

static void run_cpu(uint32_t rank)
{
	trap_init_cpu(rank);
	user_run(work, rank, user_stacks[rank] + USER_STACK_SIZE);
	__atomic_fetch_add(&done, 1, __ATOMIC_SEQ_CST);
}

void ap_main(void)
{
	uint32_t rank = smp_rank(smp_apic_id());

	if (rank < ncpus && rank < TRAP_MAX_CPUS)
		run_cpu(rank);
	for (;;)
		__asm__ volatile("cli; hlt" : : : "memory");
}

static void put_total(const char *what, uint32_t value)
{
	serial_puts(what);
	serial_putc(' ');
	serial_put_dec(value);
	serial_putc('\n');
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	uint32_t bsp_rank, wanted, i, total_retries = 0, expected, total_swaps = 0, carried;
	uint64_t put_in = 0, got_back = 0;
	int spins = DONE_SPINS, ok;

	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;
	trap_putc = serial_putc;
	switch (smp_find_cpus()) {
	case SMP_FOUND:
		break;
	case SMP_NO_RSDP:
	case SMP_NO_MADT:
		serial_puts("no ACPI RSDP, RSDT or MADT\n");
		return EXIT_MISSING;
	case SMP_TOO_MANY:
		serial_puts("more CPUs in the MADT than this kernel supports\n");
		return EXIT_FAILED;
	}
	bsp_rank = smp_rank(smp_apic_id());
	if (bsp_rank == smp_ncpus) {
		serial_puts("the BSP is not in the MADT\n");
		return EXIT_FAILED;
	}
	iterations = cmdline_number(info, "iter", DEFAULT_ITER);
	wanted = cmdline_number(info, "cpus", smp_ncpus);
	if (wanted == 0 || wanted > smp_ncpus)
		wanted = smp_ncpus;
	ncpus = wanted;
	if (bsp_rank >= ncpus) {
		serial_puts("the BSP's rank is beyond cpus=\n");
		return EXIT_FAILED;
	}

	serial_puts("mb-atomics: ");
	serial_put_dec(ncpus);
	serial_puts(" cpus, ");
	serial_put_dec(iterations);
	serial_puts(" iterations each, counters at ");
	put_hex((uintptr_t)&counters, 8);
	serial_putc('\n');

	/* The host protects the page now, before any CPU writes to it. */
	ucall_sync(0, (uint64_t)(uintptr_t)&counters);

	smp_start_cpus(smp_apic_ids[bsp_rank], ncpus);
	run_cpu(bsp_rank);

	while (done != ncpus && --spins > 0)
		cpu_relax();
	if (done != ncpus) {
		serial_puts("mb-atomics: only ");
		serial_put_dec(done);
		serial_puts(" of ");
		serial_put_dec(ncpus);
		serial_puts(" cpus finished\n");
		return EXIT_FAILED;
	}

	for (i = 0; i < ncpus; i++)
		total_retries += retries[i];
	expected = ncpus * iterations;
	put_total("lock add", counters.add);
	put_total("lock xadd", counters.xadd);
	serial_puts("lock cmpxchg ");
	serial_put_dec(counters.cmpxchg);
	serial_puts(" (retries ");
	serial_put_dec(total_retries);
	serial_puts(")\n");
	put_total("spinlock", counters.spin);
	for (i = 0; i < ncpus; i++) {
		uint32_t k;

		total_swaps += swaps[i];
		got_back += swapped_out[i];
		for (k = 0; k < iterations; k++)
			put_in += (i << 16 | k) + 1;
	}
	got_back += counters.swap;
	serial_puts("xchg ");
	serial_put_dec(total_swaps);
	serial_puts(" (sum ");
	serial_put_hex(got_back, 16);
	serial_puts(" of ");
	serial_put_hex(put_in, 16);
	serial_puts(")\n");
	carried = ncpus * (2 * iterations + iterations / 2);
	put_total("lock adc", counters.adc);
	put_total("lock sbb", 0u - counters.sbb);
	put_total("expected", expected);
	for (i = 0; i < ncpus; i++)
		trap_print(serial_putc, i);

	ok = counters.add == expected && counters.xadd == expected &&
	     counters.cmpxchg == expected && counters.spin == expected &&
	     total_swaps == expected && got_back == put_in &&
	     counters.adc == carried && 0u - counters.sbb == carried;
	serial_puts(ok ? "mb-atomics: ok\n" : "mb-atomics: MISMATCH\n");
	return ok ? 0x18 : EXIT_FAILED;
}
