/*
 * mb-smp-spp: every CPU writes into one sub-page-protected page at once.
 * pyvmm only (it talks to the host through the ucall port).
 *
 * The BSP finds the CPUs in the ACPI MADT, tells the host where `target`
 * is with ucall SYNC(0, &target) so the host can protect it (sub-pages
 * 0-15 writable, 16-31 denied), and only then starts the APs with INIT,
 * SIPI, SIPI. Every CPU, the BSP included, then does ITERATIONS rounds of
 *
 *   lock add dword [target + i*128], 1       (allowed sub-page i: lands)
 *   mov dword [target + 2048 + i*128], i+1   (denied sub-page 16+i: dropped)
 *
 * where i is the CPU's rank by APIC id, and counts itself in `done`. The
 * BSP waits for every CPU, prints what it reads back, in rank order:
 *
 *   spp-smp: 4 cpus, 150 iterations each
 *   cpu 0: allowed 150, denied 0
 *   ...
 *   spp-smp: done
 *
 * and ends with ucall DONE. Only the BSP prints, after every CPU is done,
 * so the output does not depend on how the CPUs interleave.
 */
#include "kernel.h"
#include "serial.h"
#include "smp.h"
#include "ucall.h"

#define ITERATIONS       150
#define SUBPAGE_SIZE     128
#define PAGE_SIZE        4096
#define DENIED_OFFSET    2048	/* sub-page 16: the host denies the upper half */

/*
 * How long the BSP waits for the other CPUs. CPL-0 code may be emulated by
 * the host (about a microsecond per instruction) and every write to the
 * protected page is a trip to the host, so the wait is generous: far longer
 * than any working run, short enough that a lost CPU ends the run instead
 * of hanging.
 */
#define DONE_SPINS       50000000

/* Each CPU needs its own allowed and denied sub-page. */
_Static_assert(MAX_CPUS * SUBPAGE_SIZE <= DENIED_OFFSET, "too many CPUs for one page");

/*
 * The protected page, and the page after it kept empty: the host also traps
 * the page after one whose last sub-page is denied (so that a store
 * straddling the two is seen whole), and any variable placed there would
 * cost a trip to the host on every write.
 */
static struct {
	volatile uint32_t target[PAGE_SIZE / 4];
	uint8_t quiet[PAGE_SIZE];
} spp_area __attribute__((aligned(PAGE_SIZE)));

static volatile uint32_t done;		/* CPUs that finished their iterations */

static volatile uint32_t *allowed_word(uint32_t rank)
{
	return &spp_area.target[rank * SUBPAGE_SIZE / 4];
}

static volatile uint32_t *denied_word(uint32_t rank)
{
	return &spp_area.target[(DENIED_OFFSET + rank * SUBPAGE_SIZE) / 4];
}

/*
 * The writes under test, as the instructions the host must handle: a
 * locked read-modify-write into an allowed sub-page and a plain store into
 * a denied one. Each CPU has sub-pages of its own, so nothing is shared.
 */
static void hammer(uint32_t rank)
{
	volatile uint32_t *allowed = allowed_word(rank);
	volatile uint32_t *denied = denied_word(rank);
	uint32_t k;

	for (k = 0; k < ITERATIONS; k++) {
		__asm__ volatile("lock addl $1, %0" : "+m"(*allowed) : : "memory");
		__asm__ volatile("movl %1, %0" : "=m"(*denied) : "r"(rank + 1) : "memory");
	}
	__atomic_fetch_add(&done, 1, __ATOMIC_SEQ_CST);
}

void ap_main(void)
{
	uint32_t rank = smp_rank(smp_apic_id());

	/* An AP the MADT does not list has no sub-pages of its own: it stays out. */
	if (rank < smp_ncpus)
		hammer(rank);
	for (;;)
		__asm__ volatile("cli; hlt" : : : "memory");
}

static void put_cpu_line(uint32_t rank)
{
	serial_puts("cpu ");
	serial_put_dec(rank);
	serial_puts(": allowed ");
	serial_put_dec(*allowed_word(rank));
	serial_puts(", denied ");
	serial_put_dec(*denied_word(rank));
	serial_putc('\n');
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	uint32_t bsp_rank, i;
	int spins = DONE_SPINS;

	(void)info;
	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;
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
	serial_puts("spp-smp: ");
	serial_put_dec(smp_ncpus);
	serial_puts(" cpus, ");
	serial_put_dec(ITERATIONS);
	serial_puts(" iterations each\n");

	/* The page must be protected before any CPU writes to it: the host does it now. */
	ucall_sync(0, (uint64_t)(uintptr_t)spp_area.target);

	smp_start_aps(smp_apic_ids[bsp_rank]);

	hammer(bsp_rank);
	while (done != smp_ncpus && --spins > 0)
		cpu_relax();
	if (done != smp_ncpus) {
		serial_puts("spp-smp: only ");
		serial_put_dec(done);
		serial_puts(" of ");
		serial_put_dec(smp_ncpus);
		serial_puts(" cpus finished\n");
		return EXIT_FAILED;
	}
	for (i = 0; i < smp_ncpus; i++)
		put_cpu_line(i);
	serial_puts("spp-smp: done\n");
	ucall_done();
}
