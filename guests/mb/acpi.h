/*
 * Finding ACPI tables the way the specification says an OS on a PC does:
 * the RSDP is searched for on 16-byte boundaries in the first KiB of the
 * EBDA (its segment is the word at 0x40e), then in 0xe0000-0xfffff; from
 * it the XSDT (revision 2 and later, when its address is set) or the RSDT
 * leads to every other table. Every checksum is verified before a table
 * is used.
 */
#ifndef MB_ACPI_H
#define MB_ACPI_H

#include <stdint.h>

struct acpi_rsdp {
	char signature[8];	/* "RSD PTR " */
	uint8_t checksum;	/* over the first 20 bytes */
	char oem_id[6];
	uint8_t revision;	/* 0: ACPI 1.0 (20 bytes); 2: ACPI 2.0+ (36 bytes) */
	uint32_t rsdt;
	/* revision >= 2 only */
	uint32_t length;
	uint64_t xsdt;
	uint8_t ext_checksum;	/* over all `length` bytes */
	uint8_t reserved[3];
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

_Static_assert(sizeof(struct acpi_rsdp) == 36, "ACPI 2.0 RSDP is 36 bytes");
_Static_assert(sizeof(struct acpi_header) == 36, "ACPI table header is 36 bytes");

/* Where the RSDP was found. */
enum acpi_rsdp_place { ACPI_RSDP_NONE, ACPI_RSDP_EBDA, ACPI_RSDP_BIOS };

/* Sum of the bytes mod 256 is 0. */
int acpi_checksum_ok(const void *p, uint32_t len);

/* The RSDP with valid checksum(s), or NULL; *place says where it was. */
const struct acpi_rsdp *acpi_find_rsdp(enum acpi_rsdp_place *place);

/*
 * The root table the RSDP leads to (XSDT if usable, else RSDT), checked:
 * NULL if its signature or checksum is wrong. *entry_size is 8 or 4.
 */
const struct acpi_header *acpi_root(const struct acpi_rsdp *rsdp, int *entry_size);

/* Number of entries in the root table, and entry i as a physical address. */
uint32_t acpi_root_count(const struct acpi_header *root, int entry_size);
uint64_t acpi_root_entry(const struct acpi_header *root, int entry_size, uint32_t i);

/* 1 if the table at addr has this signature and a valid checksum. */
int acpi_table_ok(const struct acpi_header *t, const char *signature);

/* The first table with this signature and a valid checksum in the root table, or NULL. */
const struct acpi_header *acpi_find_table(const struct acpi_header *root, int entry_size,
					  const char *signature);
#endif
