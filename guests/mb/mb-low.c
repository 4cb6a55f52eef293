/*
 * mb-low: a multiboot kernel linked below 64 KiB (low.ld), in the area
 * where a monitor might keep boot structures of its own, in two builds:
 * mb-low with a text segment at 0x8000-0xa86c and a data segment at
 * 0xb000-0xda30, and mb-low-a000 with the same segments at 0xa000-0xc86c
 * and 0xd000-0xfa30. It checks that the loader put everything where a
 * kernel can use it, then uses low memory itself:
 *
 *   mb-low: text 0x0000a000-0x0000c86c, data 0x0000d000-0x0000fa30 (file to 0x0000d060)
 *   loader data outside the segments: info, cmdline, mmap, 1 module
 *   cmdline "..."
 *   segment contents: text tail and data head as linked
 *   own data: 0x800 bytes of .bss hold a written pattern
 *   low memory: pattern written and read back over all free RAM below 0xa0000
 *   low memory: page 0 included (0x00000000-0x00000fff)
 *
 * then exits with 0x16. "Loader data" is the multiboot information
 * structure, the command line, the module list, each module and its string,
 * and the memory map: none of it may overlap the kernel's segments (the
 * first that does is named, and the run exits with EXIT_FAILED). "Free RAM"
 * is every byte the memory map calls RAM (type 1) below 0xa0000 outside the
 * segments and the loader data: the kernel writes a pattern that depends on
 * the address over all of it, then reads all of it back, so a loader or
 * monitor that keeps anything there (page 0 included: a real kernel may put
 * its AP trampoline there) is caught, and so is memory that aliases. No
 * address chosen by the loader is printed.
 *
 * QEMU's multiboot loader always puts the memory map at 0x9000 and the
 * information structure at 0x9500, and copies the kernel over them
 * afterwards, so under QEMU mb-low gets EBX = 0x9500 inside its own text
 * and prints
 *   the loader's multiboot info at 0x00009500-0x00009534 overlaps the text segment
 * (status EXIT_FAILED); mb-low-a000 keeps clear of that and passes.
 */
#include "kernel.h"
#include "serial.h"
#include "fatal-trap.h"

#define LOW_MEMORY_END   0xa0000u
#define MAX_RANGES       32
#define MAX_MODS         16
#define MAX_STRING       1024
#define OWN_BUFFER_SIZE  0x800

/* The linker script's symbols: segment bounds. */
extern const char __seg_text_start[], __seg_text_end[];
extern const char __seg_data_start[], __seg_data_end[], __file_end[];

struct range {
	uint32_t start, end;	/* [start, end) */
	const char *name;
};

/*
 * Markers at the end of the text segment and the start of the data
 * segment, compared with a copy in .rodata: a loader that copied too little
 * of a segment, or put it somewhere else, leaves other bytes there.
 */
#define MARKER "mb-low: the bytes at this end of the segment, as linked ....."
__attribute__((section(".seg_text_tail"), used, aligned(4)))
static const char text_tail[64] = MARKER;
__attribute__((section(".seg_data_head"), used, aligned(4)))
static char data_head[64] = MARKER;
static const char marker_copy[64] = MARKER;

static uint32_t own_buffer[OWN_BUFFER_SIZE / 4];

/* Loader data (busy) and the free RAM found between it. */
static struct range busy[MAX_RANGES + 2];
static int nbusy;
static struct range free_ram[MAX_RANGES];
static int nfree;

static uint32_t string_end(uint32_t addr)
{
	const char *s = (const char *)(uintptr_t)addr;
	uint32_t n = 0;

	while (n < MAX_STRING && s[n])
		n++;
	return addr + n + 1;
}

static int add_busy(uint32_t start, uint32_t end, const char *name)
{
	if (nbusy == MAX_RANGES) {
		serial_puts("too many loader ranges\n");
		return 0;
	}
	busy[nbusy].start = start;
	busy[nbusy].end = end;
	busy[nbusy].name = name;
	nbusy++;
	return 1;
}

static int overlaps(const struct range *a, const struct range *b)
{
	return a->start < b->end && b->start < a->end;
}

/*
 * Checks one piece of loader data against the segments before anything in
 * it is read: a structure inside the kernel holds the kernel's bytes.
 */
static int check_outside(uint32_t start, uint32_t end, const char *name)
{
	static const struct range segs[2] = {
		{ (uint32_t)(uintptr_t)__seg_text_start, (uint32_t)(uintptr_t)__seg_text_end, "text" },
		{ (uint32_t)(uintptr_t)__seg_data_start, (uint32_t)(uintptr_t)__seg_data_end, "data" },
	};
	struct range r = { start, end, name };
	int i;

	for (i = 0; i < 2; i++) {
		if (!overlaps(&r, &segs[i]))
			continue;
		serial_puts("the loader's ");
		serial_puts(name);
		serial_puts(" at ");
		put_hex(start, 8);
		serial_putc('-');
		put_hex(end, 8);
		serial_puts(" overlaps the ");
		serial_puts(segs[i].name);
		serial_puts(" segment\n");
		return 0;
	}
	return add_busy(start, end, name);
}

/* Every piece of loader data, checked; 0 on the first overlap. */
static int collect_loader_data(const struct mb_info *info)
{
	uint32_t addr = (uint32_t)(uintptr_t)info;
	uint32_t i;

	if (!check_outside(addr, addr + sizeof(*info), "multiboot info"))
		return 0;
	if (!(info->flags & MB_INFO_MMAP)) {
		serial_puts("no memory map\n");
		return 0;
	}
	if (!check_outside(info->mmap_addr, info->mmap_addr + info->mmap_length, "memory map"))
		return 0;
	if ((info->flags & MB_INFO_CMDLINE) &&
	    !check_outside(info->cmdline, string_end(info->cmdline), "command line"))
		return 0;
	if ((info->flags & MB_INFO_MODS) && info->mods_count > 0) {
		const struct mb_module *mods = (const struct mb_module *)(uintptr_t)info->mods_addr;

		if (info->mods_count > MAX_MODS) {
			serial_puts("too many modules\n");
			return 0;
		}
		if (!check_outside(info->mods_addr, info->mods_addr + info->mods_count * sizeof(*mods),
				   "module list"))
			return 0;
		for (i = 0; i < info->mods_count; i++) {
			if (!check_outside(mods[i].mod_start, mods[i].mod_end, "module") ||
			    !check_outside(mods[i].string, string_end(mods[i].string), "module string"))
				return 0;
		}
	}
	return 1;
}

/* Insertion sort by start: a handful of ranges. */
static void sort_busy(void)
{
	int i, j;

	for (i = 1; i < nbusy; i++) {
		struct range r = busy[i];

		for (j = i; j > 0 && busy[j - 1].start > r.start; j--)
			busy[j] = busy[j - 1];
		busy[j] = r;
	}
}

static int add_free(uint32_t start, uint32_t end)
{
	start = (start + 3) & ~3u;
	end &= ~3u;
	if (start >= end)
		return 1;
	if (nfree == MAX_RANGES) {
		serial_puts("too many free ranges\n");
		return 0;
	}
	free_ram[nfree].start = start;
	free_ram[nfree].end = end;
	nfree++;
	return 1;
}

/* RAM [start, end) minus the busy ranges (sorted), as free ranges. */
static int split_ram(uint32_t start, uint32_t end)
{
	uint32_t cur = start;
	int i;

	for (i = 0; i < nbusy; i++) {
		if (busy[i].end <= cur)
			continue;
		if (busy[i].start >= end)
			break;
		if (busy[i].start > cur && !add_free(cur, busy[i].start))
			return 0;
		if (busy[i].end > cur)
			cur = busy[i].end;
	}
	return cur < end ? add_free(cur, end) : 1;
}

/* Free RAM below LOW_MEMORY_END, from the memory map (read before anything is overwritten). */
static int find_free_low_ram(const struct mb_info *info)
{
	uint32_t addr = info->mmap_addr, end = info->mmap_addr + info->mmap_length;

	/* The kernel's own segments are busy too. */
	if (!add_busy((uint32_t)(uintptr_t)__seg_text_start, (uint32_t)(uintptr_t)__seg_text_end, "text") ||
	    !add_busy((uint32_t)(uintptr_t)__seg_data_start, (uint32_t)(uintptr_t)__seg_data_end, "data"))
		return 0;
	sort_busy();
	while (addr < end) {
		const struct mb_mmap_entry *e = (const struct mb_mmap_entry *)(uintptr_t)addr;

		if (e->type == 1 && e->base < LOW_MEMORY_END) {
			uint64_t top = e->base + e->length;

			if (!split_ram((uint32_t)e->base, top < LOW_MEMORY_END ? (uint32_t)top : LOW_MEMORY_END))
				return 0;
		}
		addr += e->size + sizeof(e->size);
	}
	return 1;
}

/* The pattern: differs for every word and from the address itself, so aliases show. */
static uint32_t pattern(uint32_t addr)
{
	return (addr >> 2) * 2654435761u ^ 0x6c6f7721u;
}

static void fill(uint32_t start, uint32_t end)
{
	volatile uint32_t *p = (volatile uint32_t *)(uintptr_t)start;
	uint32_t a;

	for (a = start; a < end; a += 4)
		*p++ = pattern(a);
}

/* The first word that does not hold the pattern, or `end`. */
static uint32_t first_mismatch(uint32_t start, uint32_t end)
{
	const volatile uint32_t *p = (const volatile uint32_t *)(uintptr_t)start;
	uint32_t a;

	for (a = start; a < end; a += 4)
		if (*p++ != pattern(a))
			return a;
	return end;
}

static int bytes_equal(const char *a, const char *b, int n)
{
	while (n-- > 0)
		if (*a++ != *b++)
			return 0;
	return 1;
}

static void put_range(uint32_t start, uint32_t end)
{
	put_hex(start, 8);
	serial_putc('-');
	put_hex(end, 8);
}

static int check_low_memory(void)
{
	int i;

	for (i = 0; i < nfree; i++)
		fill(free_ram[i].start, free_ram[i].end);
	for (i = 0; i < nfree; i++) {
		uint32_t bad = first_mismatch(free_ram[i].start, free_ram[i].end);

		if (bad != free_ram[i].end) {
			serial_puts("low memory: ");
			put_hex(bad, 8);
			serial_puts(" holds ");
			put_hex(*(volatile uint32_t *)(uintptr_t)bad, 8);
			serial_puts(", not the pattern ");
			put_hex(pattern(bad), 8);
			serial_putc('\n');
			return 0;
		}
	}
	serial_puts("low memory: pattern written and read back over all free RAM below ");
	put_hex(LOW_MEMORY_END, 5);
	serial_putc('\n');
	if (nfree == 0 || free_ram[0].start != 0 || free_ram[0].end < 0x1000) {
		serial_puts("low memory: page 0 is not free RAM in the memory map\n");
		return 0;
	}
	serial_puts("low memory: page 0 included (");
	put_range(0, 0xfff);
	serial_puts(")\n");
	return 1;
}

static int check_own_data(void)
{
	uint32_t start = (uint32_t)(uintptr_t)own_buffer, end = start + sizeof(own_buffer);
	uint32_t bad;

	fill(start, end);
	bad = first_mismatch(start, end);
	if (bad != end) {
		serial_puts("own data: pattern lost at ");
		put_hex(bad, 8);
		serial_putc('\n');
		return 0;
	}
	serial_puts("own data: ");
	put_hex(sizeof(own_buffer), 0);
	serial_puts(" bytes of .bss hold a written pattern\n");
	return 1;
}

static void print_loader_summary(const struct mb_info *info)
{
	serial_puts("loader data outside the segments: info, ");
	if (info->flags & MB_INFO_CMDLINE)
		serial_puts("cmdline, ");
	serial_puts("mmap, ");
	serial_put_dec((info->flags & MB_INFO_MODS) ? info->mods_count : 0);
	serial_puts(" module");
	if (!((info->flags & MB_INFO_MODS) && info->mods_count == 1))
		serial_putc('s');
	serial_putc('\n');
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	fatal_trap_init();
	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;

	serial_puts("mb-low: text ");
	put_range((uint32_t)(uintptr_t)__seg_text_start, (uint32_t)(uintptr_t)__seg_text_end);
	serial_puts(", data ");
	put_range((uint32_t)(uintptr_t)__seg_data_start, (uint32_t)(uintptr_t)__seg_data_end);
	serial_puts(" (file to ");
	put_hex((uint32_t)(uintptr_t)__file_end, 8);
	serial_puts(")\n");

	if (!collect_loader_data(info))
		return EXIT_FAILED;
	print_loader_summary(info);
	if (info->flags & MB_INFO_CMDLINE) {
		serial_puts("cmdline \"");
		put_guest_string(info->cmdline, MAX_STRING);
		serial_puts("\"\n");
	}

	if (!bytes_equal(text_tail, marker_copy, sizeof(marker_copy)) ||
	    !bytes_equal(data_head, marker_copy, sizeof(marker_copy))) {
		serial_puts("segment contents: a marker is not as linked\n");
		return EXIT_FAILED;
	}
	serial_puts("segment contents: text tail and data head as linked\n");

	if (!check_own_data())
		return EXIT_FAILED;
	if (!find_free_low_ram(info) || !check_low_memory())
		return EXIT_FAILED;
	return 0x16;
}
