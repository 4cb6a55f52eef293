/*
 * Multiboot v1 (the "Multiboot Specification version 0.6.96"): the header a
 * kernel carries and the information structure a boot loader hands it in
 * EBX. Only the parts these kernels read are declared. Usable from C and
 * from assembly (#defines outside the C-only block).
 */
#ifndef MB_MULTIBOOT_H
#define MB_MULTIBOOT_H

/* Header: must lie 4-byte aligned within the first 8 KiB of the file. */
#define MB_HEADER_MAGIC      0x1badb002
#define MB_HEADER_PAGE_ALIGN (1 << 0)	/* modules on 4 KiB boundaries */
#define MB_HEADER_MEMORY     (1 << 1)	/* wants mem_lower/mem_upper and the mmap */
#define MB_HEADER_ADDRESSES  (1 << 16)	/* load from the header's address fields, not ELF headers */

/* EAX at entry */
#define MB_BOOTLOADER_MAGIC  0x2badb002

/* Info flags: which fields of struct mb_info are valid */
#define MB_INFO_MEMORY       (1 << 0)
#define MB_INFO_CMDLINE      (1 << 2)
#define MB_INFO_MODS         (1 << 3)
#define MB_INFO_MMAP         (1 << 6)

#ifndef __ASSEMBLER__
#include <stdint.h>

struct mb_info {
	uint32_t flags;
	uint32_t mem_lower;	/* KiB from 0 */
	uint32_t mem_upper;	/* KiB from 1 MiB */
	uint32_t boot_device;
	uint32_t cmdline;	/* physical address of a NUL-terminated string */
	uint32_t mods_count;
	uint32_t mods_addr;	/* physical address of mods_count struct mb_module */
	uint32_t syms[4];
	uint32_t mmap_length;	/* bytes */
	uint32_t mmap_addr;
};

struct mb_module {
	uint32_t mod_start;
	uint32_t mod_end;	/* one past the last byte */
	uint32_t string;	/* physical address of a NUL-terminated string */
	uint32_t reserved;
};

/*
 * One memory map entry. `size` does not count itself: the next entry starts
 * size + 4 bytes further on. The 64-bit fields sit at offset 4, so the
 * struct is packed.
 */
struct mb_mmap_entry {
	uint32_t size;
	uint64_t base;
	uint64_t length;
	uint32_t type;		/* 1 = usable RAM */
} __attribute__((packed));

_Static_assert(sizeof(struct mb_info) == 52, "struct mb_info covers the fields up to mmap_addr");
_Static_assert(sizeof(struct mb_mmap_entry) == 24, "one mmap entry is 24 bytes with its size field");
#endif

#endif
