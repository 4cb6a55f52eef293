/*
 * The CPUs in the ACPI MADT (RSDP found by scanning 0xe0000-0xfffff), and
 * starting them with INIT, SIPI, SIPI through the xAPIC. See smp.h.
 */
#include <stddef.h>

#include "kernel.h"
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
 * How long to wait for the local APIC to accept an IPI. On this project's
 * hosts CPL-0 code may be emulated (about a microsecond per instruction),
 * so this amounts to seconds, far more than any working machine needs.
 */
#define IPI_SPINS        2000000

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

uint32_t smp_ncpus;
uint32_t smp_apic_ids[MAX_CPUS];
uint32_t smp_lapic_addr;

static volatile uint32_t *lapic;

static uint32_t lapic_read(uint32_t reg)
{
	return lapic[reg / 4];
}

static void lapic_write(uint32_t reg, uint32_t value)
{
	lapic[reg / 4] = value;
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

			if (smp_ncpus == MAX_CPUS)
				return 0;
			for (i = smp_ncpus; i > 0 && smp_apic_ids[i - 1] > id; i--)
				smp_apic_ids[i] = smp_apic_ids[i - 1];
			smp_apic_ids[i] = id;
			smp_ncpus++;
		}
		p += p[1];
	}
	return 1;
}

enum smp_find_result smp_find_cpus(void)
{
	const struct acpi_rsdp *rsdp;
	const struct acpi_madt *madt;

	smp_ncpus = 0;	/* a second call (after resuming from S3) reads the MADT afresh */
	rsdp = find_rsdp();
	if (!rsdp)
		return SMP_NO_RSDP;
	madt = find_madt(rsdp);
	if (!madt)
		return SMP_NO_MADT;
	if (!collect_cpus(madt))
		return SMP_TOO_MANY;
	smp_lapic_addr = madt->lapic_addr;
	lapic = (volatile uint32_t *)(uintptr_t)smp_lapic_addr;
	return SMP_FOUND;
}

uint32_t smp_apic_id(void)
{
	return lapic_read(LAPIC_ID) >> 24;
}

uint32_t smp_rank(uint32_t apic_id)
{
	uint32_t rank;

	for (rank = 0; rank < smp_ncpus && smp_apic_ids[rank] != apic_id; rank++)
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

void (*smp_before_sipi)(uint32_t apic_id);

static void start_ap(uint32_t apic_id)
{
	send_ipi(apic_id, ICR_INIT_ASSERT);
	send_ipi(apic_id, ICR_INIT_DEASSERT);
	if (smp_before_sipi)
		smp_before_sipi(apic_id);
	/* Two SIPIs, as the MP start-up protocol asks; a started AP ignores the second. */
	send_ipi(apic_id, ICR_STARTUP | (TRAMPOLINE_ADDR >> 12));
	send_ipi(apic_id, ICR_STARTUP | (TRAMPOLINE_ADDR >> 12));
}

void smp_start_cpus(uint32_t bsp_id, uint32_t count)
{
	const uint8_t *src = smp_trampoline_start;
	uint8_t *dst = (uint8_t *)TRAMPOLINE_ADDR;
	uint32_t i, running = 1;

	while (src < smp_trampoline_end)
		*dst++ = *src++;
	/* Software-enable the BSP's local APIC, as an OS does before sending IPIs. */
	lapic_write(LAPIC_SVR, SVR_ENABLE | SPURIOUS_VECTOR);
	for (i = 0; i < smp_ncpus && running < count; i++) {
		if (smp_apic_ids[i] != bsp_id) {
			start_ap(smp_apic_ids[i]);
			running++;
		}
	}
}

void smp_start_aps(uint32_t bsp_id)
{
	smp_start_cpus(bsp_id, smp_ncpus);
}
