/* ACPI table discovery; see acpi.h. */
#include <stddef.h>

#include "acpi.h"

#define BDA_EBDA_SEGMENT  0x40e
#define EBDA_SEARCH       1024
#define BIOS_AREA_START   0xe0000
#define BIOS_AREA_END     0x100000

int acpi_checksum_ok(const void *p, uint32_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return sum == 0;
}

static int rsdp_ok(const void *p)
{
	const uint32_t *w = p;
	const struct acpi_rsdp *r = p;

	/* "RSD " and "PTR " as little-endian words: two loads per candidate. */
	if (w[0] != 0x20445352u || w[1] != 0x20525450u || !acpi_checksum_ok(r, 20))
		return 0;
	return r->revision < 2 || (r->length >= sizeof(*r) && acpi_checksum_ok(r, r->length));
}

static const struct acpi_rsdp *scan(uint32_t start, uint32_t end)
{
	uint32_t a;

	for (a = start; a + 20 <= end; a += 16)
		if (rsdp_ok((const void *)(uintptr_t)a))
			return (const struct acpi_rsdp *)(uintptr_t)a;
	return NULL;
}

const struct acpi_rsdp *acpi_find_rsdp(enum acpi_rsdp_place *place)
{
	uintptr_t bda_word = BDA_EBDA_SEGMENT;
	uint32_t ebda;
	const struct acpi_rsdp *r = NULL;

	/* Hidden from the compiler, which takes any access this low for a null-page bug. */
	__asm__("" : "+r"(bda_word));
	ebda = (uint32_t)*(const volatile uint16_t *)bda_word << 4;

	/* An EBDA pointer outside conventional memory is not one. */
	if (ebda >= 0x80000 && ebda < 0xa0000)
		r = scan(ebda, ebda + EBDA_SEARCH);
	if (r) {
		*place = ACPI_RSDP_EBDA;
		return r;
	}
	r = scan(BIOS_AREA_START, BIOS_AREA_END);
	*place = r ? ACPI_RSDP_BIOS : ACPI_RSDP_NONE;
	return r;
}

int acpi_table_ok(const struct acpi_header *t, const char *signature)
{
	int i;

	if (!t)
		return 0;
	for (i = 0; i < 4; i++)
		if (t->signature[i] != signature[i])
			return 0;
	return t->length >= sizeof(*t) && acpi_checksum_ok(t, t->length);
}

const struct acpi_header *acpi_root(const struct acpi_rsdp *rsdp, int *entry_size)
{
	const struct acpi_header *t;

	/* The 64-bit XSDT address is only usable here if it lies below 4 GiB. */
	if (rsdp->revision >= 2 && rsdp->xsdt && !(rsdp->xsdt >> 32)) {
		t = (const struct acpi_header *)(uintptr_t)rsdp->xsdt;
		*entry_size = 8;
		return acpi_table_ok(t, "XSDT") ? t : NULL;
	}
	t = (const struct acpi_header *)(uintptr_t)rsdp->rsdt;
	*entry_size = 4;
	return acpi_table_ok(t, "RSDT") ? t : NULL;
}

uint32_t acpi_root_count(const struct acpi_header *root, int entry_size)
{
	return (root->length - sizeof(*root)) / (uint32_t)entry_size;
}

uint64_t acpi_root_entry(const struct acpi_header *root, int entry_size, uint32_t i)
{
	const uint8_t *p = (const uint8_t *)(root + 1) + i * (uint32_t)entry_size;

	/* Entries need not be naturally aligned (the XSDT's start at offset 36). */
	if (entry_size == 8)
		return *(const uint32_t *)p | (uint64_t)*(const uint32_t *)(p + 4) << 32;
	return *(const uint32_t *)p;
}

const struct acpi_header *acpi_find_table(const struct acpi_header *root, int entry_size,
					  const char *signature)
{
	uint32_t i, n = acpi_root_count(root, entry_size);

	for (i = 0; i < n; i++) {
		uint64_t a = acpi_root_entry(root, entry_size, i);
		const struct acpi_header *t = (const struct acpi_header *)(uintptr_t)a;

		if (!(a >> 32) && acpi_table_ok(t, signature))
			return t;
	}
	return NULL;
}
