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
#include <stddef.h>

#include "kernel.h"
#include "serial.h"
#include "smp.h"
#include "ucall.h"

#define ITERATIONS       150
#define SUBPAGE_SIZE     128
#define PAGE_SIZE        4096
#define DENIED_OFFSET    2048	/* sub-page 16: the host denies the upper half */

#define BIOS_AREA_START  0xe0000
#define BIOS_AREA_END    0x100000

/* xAPIC registers, offsets from the MMIO base */
#define LAPIC_ID         0x020	/* bits 31:24 */
#define LAPIC_SVR        0x0f0
#define LAPIC_ICR_LOW    0x300
#define LAPIC_ICR_HIGH   0x310	/* destination APIC id in bits 31:24 */

#define SVR_ENABLE       0x100
#define SPURIOUS_VECTOR  0xff
#define ICR_BUSY         (1u << 12)
#define ICR_INIT_ASSERT  0x0000c500u	/* INIT, level-triggered, assert */
#define ICR_INIT_DEASSERT 0x00008500u	/* INIT, level-triggered, de-assert */
#define ICR_STARTUP      0x00004600u	/* start-up; the vector is the page number */

/*
 * Spin bounds. CPL-0 code may be emulated by the host (about a microsecond
 * per instruction) and every write to the protected page is a trip to the
 * host, so the wait for the other CPUs is generous: far longer than any
 * working run, short enough that a lost CPU ends the run instead of hanging.
 */
#define IPI_SPINS        2000000
#define DONE_SPINS       50000000

struct acpi_rsdp {
	char signature[8];	/* "RSD PTR " */
	uint8_t checksum;	/* over the first 20 bytes */
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt;
} __attribute__((packed));

struct acpi_header {
	char signature[4];
	uint32_t length;	/* whole table, header included */
	uint8_t revision;
	uint8_t checksum;	/* over the whole table */
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	uint32_t creator_id;
	uint32_t creator_revision;
} __attribute__((packed));

struct acpi_madt {
	struct acpi_header h;
	uint32_t lapic_addr;
	uint32_t flags;
	/* then variable-length entries: type, length, ... */
} __attribute__((packed));

#define MADT_LOCAL_APIC      0
#define MADT_LAPIC_ENABLED   1

_Static_assert(sizeof(struct acpi_rsdp) == 20, "ACPI 1.0 RSDP is 20 bytes");
_Static_assert(sizeof(struct acpi_header) == 36, "ACPI table header is 36 bytes");
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

static volatile uint32_t *lapic;
static uint32_t apic_ids[MAX_CPUS];	/* sorted ascending; a CPU's rank is its index i */
static uint32_t ncpus;
static volatile uint32_t done;		/* CPUs that finished their iterations */

static uint32_t lapic_read(uint32_t reg)
{
	return lapic[reg / 4];
}

static void lapic_write(uint32_t reg, uint32_t value)
{
	lapic[reg / 4] = value;
}

static volatile uint32_t *allowed_word(uint32_t rank)
{
	return &spp_area.target[rank * SUBPAGE_SIZE / 4];
}

static volatile uint32_t *denied_word(uint32_t rank)
{
	return &spp_area.target[(DENIED_OFFSET + rank * SUBPAGE_SIZE) / 4];
}

static int checksum_ok(const void *p, uint32_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return sum == 0;
}

static int sig_is(const char *sig, const char *want, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (sig[i] != want[i])
			return 0;
	return 1;
}

/* The RSDP lies on a 16-byte boundary in the BIOS area. */
static const struct acpi_rsdp *find_rsdp(void)
{
	uint32_t a;

	for (a = BIOS_AREA_START; a < BIOS_AREA_END; a += 16) {
		const uint32_t *w = (const uint32_t *)(uintptr_t)a;

		/* "RSD " and "PTR " as little-endian words: two loads per candidate. */
		if (w[0] == 0x20445352u && w[1] == 0x20525450u &&
		    checksum_ok(w, sizeof(struct acpi_rsdp)))
			return (const struct acpi_rsdp *)w;
	}
	return NULL;
}

static const struct acpi_madt *find_madt(const struct acpi_rsdp *rsdp)
{
	const struct acpi_header *rsdt = (const struct acpi_header *)(uintptr_t)rsdp->rsdt;
	const uint32_t *entries;
	uint32_t i, n;

	if (!sig_is(rsdt->signature, "RSDT", 4) || !checksum_ok(rsdt, rsdt->length))
		return NULL;
	entries = (const uint32_t *)(rsdt + 1);
	n = (rsdt->length - sizeof(*rsdt)) / 4;
	for (i = 0; i < n; i++) {
		const struct acpi_header *t = (const struct acpi_header *)(uintptr_t)entries[i];

		if (sig_is(t->signature, "APIC", 4) && checksum_ok(t, t->length))
			return (const struct acpi_madt *)t;
	}
	return NULL;
}

/* Enabled local APICs, sorted by id. Returns 0 if there are more than MAX_CPUS. */
static int collect_cpus(const struct acpi_madt *madt)
{
	const uint8_t *p = (const uint8_t *)(madt + 1);
	const uint8_t *end = (const uint8_t *)madt + madt->h.length;

	while (p + 2 <= end && p[1] >= 2) {
		if (p[0] == MADT_LOCAL_APIC && p[1] >= 8 && (p[4] & MADT_LAPIC_ENABLED)) {
			uint32_t id = p[3], i;

			if (ncpus == MAX_CPUS)
				return 0;
			for (i = ncpus; i > 0 && apic_ids[i - 1] > id; i--)
				apic_ids[i] = apic_ids[i - 1];
			apic_ids[i] = id;
			ncpus++;
		}
		p += p[1];
	}
	return 1;
}

/* This CPU's rank among the MADT's CPUs, or ncpus if it is not listed. */
static uint32_t my_rank(void)
{
	uint32_t id = lapic_read(LAPIC_ID) >> 24, rank;

	for (rank = 0; rank < ncpus && apic_ids[rank] != id; rank++)
		;
	return rank;
}

static void send_ipi(uint32_t apic_id, uint32_t icr)
{
	int spins = IPI_SPINS;

	lapic_write(LAPIC_ICR_HIGH, apic_id << 24);
	lapic_write(LAPIC_ICR_LOW, icr);
	while ((lapic_read(LAPIC_ICR_LOW) & ICR_BUSY) && --spins > 0)
		cpu_relax();
}

static void start_ap(uint32_t apic_id)
{
	send_ipi(apic_id, ICR_INIT_ASSERT);
	send_ipi(apic_id, ICR_INIT_DEASSERT);
	/* Two SIPIs, as the MP start-up protocol asks; a started AP ignores the second. */
	send_ipi(apic_id, ICR_STARTUP | (TRAMPOLINE_ADDR >> 12));
	send_ipi(apic_id, ICR_STARTUP | (TRAMPOLINE_ADDR >> 12));
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
	uint32_t rank = my_rank();

	/* An AP the MADT does not list has no sub-pages of its own: it stays out. */
	if (rank < ncpus)
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
	const struct acpi_rsdp *rsdp;
	const struct acpi_madt *madt;
	const uint8_t *src;
	uint8_t *dst;
	uint32_t bsp_rank, i;
	int spins = DONE_SPINS;

	(void)info;
	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;
	rsdp = find_rsdp();
	madt = rsdp ? find_madt(rsdp) : NULL;
	if (!madt) {
		serial_puts("no ACPI RSDP, RSDT or MADT\n");
		return EXIT_MISSING;
	}
	if (!collect_cpus(madt)) {
		serial_puts("more CPUs in the MADT than this kernel supports\n");
		return EXIT_FAILED;
	}
	lapic = (volatile uint32_t *)(uintptr_t)madt->lapic_addr;
	bsp_rank = my_rank();
	if (bsp_rank == ncpus) {
		serial_puts("the BSP is not in the MADT\n");
		return EXIT_FAILED;
	}
	serial_puts("spp-smp: ");
	serial_put_dec(ncpus);
	serial_puts(" cpus, ");
	serial_put_dec(ITERATIONS);
	serial_puts(" iterations each\n");

	/* The page must be protected before any CPU writes to it: the host does it now. */
	ucall_sync(0, (uint64_t)(uintptr_t)spp_area.target);

	src = smp_trampoline_start;
	dst = (uint8_t *)TRAMPOLINE_ADDR;
	while (src < smp_trampoline_end)
		*dst++ = *src++;
	/* Software-enable the BSP's local APIC, as an OS does before sending IPIs. */
	lapic_write(LAPIC_SVR, SVR_ENABLE | SPURIOUS_VECTOR);
	for (i = 0; i < ncpus; i++)
		if (i != bsp_rank)
			start_ap(apic_ids[i]);

	hammer(bsp_rank);
	while (done != ncpus && --spins > 0)
		cpu_relax();
	if (done != ncpus) {
		serial_puts("spp-smp: only ");
		serial_put_dec(done);
		serial_puts(" of ");
		serial_put_dec(ncpus);
		serial_puts(" cpus finished\n");
		return EXIT_FAILED;
	}
	for (i = 0; i < ncpus; i++)
		put_cpu_line(i);
	serial_puts("spp-smp: done\n");
	ucall_done();
}
