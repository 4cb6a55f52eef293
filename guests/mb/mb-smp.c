/*
 * mb-smp: finds the CPUs in the ACPI MADT (RSDP found by scanning
 * 0xe0000-0xfffff), starts every other CPU with INIT, SIPI, SIPI through
 * the xAPIC, and has each one report, in APIC-id order:
 *
 *   smp: 4 cpus in the MADT, bsp apic id 0, local apic 0xfee00000
 *   cpu 0 up (apic id 0)
 *   cpu 1 up (apic id 1)
 *   ...
 *   smp: all 4 cpus up
 *
 * then exits with 0x14. "cpu N" is the CPU's rank by APIC id. Every CPU,
 * the BSP included, waits for its turn (a shared counter) before printing,
 * and printing is under a spinlock as well, so the output does not depend
 * on which AP starts first.
 */
#include <stddef.h>

#include "kernel.h"
#include "serial.h"
#include "smp.h"

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
 * Spin bounds: on this project's hosts CPL-0 code is emulated (about a
 * microsecond per instruction), so these amount to seconds, far more than
 * any working machine needs.
 */
#define WAIT_SPINS       2000000

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

static volatile uint32_t *lapic;
static uint32_t apic_ids[MAX_CPUS];	/* sorted ascending; a CPU's rank is its "cpu N" */
static uint32_t ncpus;

/* Shared by every CPU. */
static volatile uint32_t arrived;	/* APs that reached C */
static volatile uint32_t turn;		/* rank of the CPU whose turn it is to report */
static volatile uint32_t print_lock;

static uint32_t lapic_read(uint32_t reg)
{
	return lapic[reg / 4];
}

static void lapic_write(uint32_t reg, uint32_t value)
{
	lapic[reg / 4] = value;
}

static void lock(void)
{
	while (__atomic_exchange_n(&print_lock, 1, __ATOMIC_ACQUIRE))
		while (print_lock)
			cpu_relax();
}

static void unlock(void)
{
	__atomic_store_n(&print_lock, 0, __ATOMIC_RELEASE);
}

static int wait_for(volatile uint32_t *p, uint32_t value)
{
	int spins = WAIT_SPINS;

	while (*p != value) {
		if (--spins == 0)
			return 0;
		cpu_relax();
	}
	return 1;
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

/* The loader's memory map must show the trampoline's page as free RAM. */
static int trampoline_page_free(const struct mb_info *info)
{
	uint32_t addr = info->mmap_addr, end = info->mmap_addr + info->mmap_length;

	if (!(info->flags & MB_INFO_MMAP))
		return 0;
	while (addr < end) {
		const struct mb_mmap_entry *e = (const struct mb_mmap_entry *)(uintptr_t)addr;

		if (e->type == 1 && e->base <= TRAMPOLINE_ADDR &&
		    e->base + e->length >= TRAMPOLINE_ADDR + 0x1000)
			return 1;
		addr += e->size + sizeof(e->size);
	}
	return 0;
}

static void send_ipi(uint32_t apic_id, uint32_t icr)
{
	int spins = WAIT_SPINS;

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

static void put_cpu_line(uint32_t rank, uint32_t apic_id)
{
	serial_puts("cpu ");
	serial_put_dec(rank);
	serial_puts(" up (apic id ");
	serial_put_dec(apic_id);
	serial_puts(")\n");
}

/* Waits for this CPU's turn, reports, and passes the turn on. 0 if the turn never came. */
static int take_turn(uint32_t apic_id)
{
	uint32_t rank;

	for (rank = 0; rank < ncpus && apic_ids[rank] != apic_id; rank++)
		;
	if (rank == ncpus) {
		lock();
		serial_puts("apic id ");
		serial_put_dec(apic_id);
		serial_puts(" is not in the MADT\n");
		unlock();
		return 0;
	}
	if (!wait_for(&turn, rank))
		return 0;
	lock();
	put_cpu_line(rank, apic_id);
	unlock();
	__atomic_store_n(&turn, rank + 1, __ATOMIC_RELEASE);
	return 1;
}

void ap_main(void)
{
	uint32_t id = lapic_read(LAPIC_ID) >> 24;

	__atomic_fetch_add(&arrived, 1, __ATOMIC_SEQ_CST);
	take_turn(id);
	for (;;)
		__asm__ volatile("cli; hlt" : : : "memory");
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	const struct acpi_rsdp *rsdp;
	const struct acpi_madt *madt;
	const uint8_t *src;
	uint8_t *dst;
	uint32_t bsp_id, i;

	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;
	if (!trampoline_page_free(info)) {
		serial_puts("the memory map does not show the trampoline page ");
		put_hex(TRAMPOLINE_ADDR, 5);
		serial_puts(" as RAM\n");
		return EXIT_MISSING;
	}
	rsdp = find_rsdp();
	if (!rsdp) {
		serial_puts("no ACPI RSDP in 0xe0000-0xfffff\n");
		return EXIT_MISSING;
	}
	madt = find_madt(rsdp);
	if (!madt) {
		serial_puts("no valid RSDT or MADT\n");
		return EXIT_MISSING;
	}
	if (!collect_cpus(madt)) {
		serial_puts("more CPUs in the MADT than this kernel supports\n");
		return EXIT_FAILED;
	}

	lapic = (volatile uint32_t *)(uintptr_t)madt->lapic_addr;
	bsp_id = lapic_read(LAPIC_ID) >> 24;
	serial_puts("smp: ");
	serial_put_dec(ncpus);
	serial_puts(" cpus in the MADT, bsp apic id ");
	serial_put_dec(bsp_id);
	serial_puts(", local apic ");
	put_hex(madt->lapic_addr, 8);
	serial_putc('\n');

	src = smp_trampoline_start;
	dst = (uint8_t *)TRAMPOLINE_ADDR;
	while (src < smp_trampoline_end)
		*dst++ = *src++;

	/* Software-enable the BSP's local APIC, as an OS does before sending IPIs. */
	lapic_write(LAPIC_SVR, SVR_ENABLE | SPURIOUS_VECTOR);
	for (i = 0; i < ncpus; i++)
		if (apic_ids[i] != bsp_id)
			start_ap(apic_ids[i]);

	if (!take_turn(bsp_id) || !wait_for(&turn, ncpus)) {
		lock();
		serial_puts("smp: only ");
		serial_put_dec(turn);
		serial_puts(" of ");
		serial_put_dec(ncpus);
		serial_puts(" cpus reported (");
		serial_put_dec(arrived);
		serial_puts(" APs started)\n");
		unlock();
		return EXIT_FAILED;
	}
	serial_puts("smp: all ");
	serial_put_dec(ncpus);
	serial_puts(" cpus up\n");
	return 0x14;
}
