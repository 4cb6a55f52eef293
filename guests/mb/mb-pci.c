/*
 * mb-pci: enumerates PCI bus 0 through configuration mechanism #1 (0xcf8 /
 * 0xcfc), finds QEMU's pci-testdev (1b36:0005, `-device pci-testdev`),
 * sizes its BARs and runs each of its tests. With the QEMU command line of
 * tests/kvm/test_qemu_compat_multiboot.py plus `-device pci-testdev`
 * (`-machine pc`, i440FX) it prints:
 *
 *   00:00.0 8086:1237 class 06.00.00 rev 0x02 header 0x00 subsystem 1af4:1100
 *   00:02.0 1b36:0005 class 00.ff.00 rev 0x00 header 0x00 subsystem 1af4:1100
 *   pci-testdev at 00:02.0, interrupt pin 0
 *     bar0 mem32 size 0x1000
 *     bar1 io size 0x100
 *     bar2-5 not implemented
 *     before a test is selected: reads 0
 *     mmio test 0 "mmio-no-eventfd": offset 0x800 width 1 data 0xfa, 16 writes, count 16
 *     mmio test 1 "mmio-wildcard-eventfd": offset 0x801 width 1 data 0xce, 16 writes, count 0
 *     mmio test 2 "mmio-datamatch-eventfd": offset 0x802 width 1 data 0xfa, 16 writes, count 0
 *     portio test 0 "portio-no-eventfd": offset 0x83 width 1 data 0xfa, 16 writes, count 16
 *     ...
 *     test 3 selects nothing: reads 0
 *
 * and exits with 0x17. Only the host bridge (class 06.00) and pci-testdev
 * lines are printed by default: the other functions QEMU's PC has on bus 0
 * (PIIX3 ISA bridge, IDE, PIIX4 power management at 00:01.x, and VGA and
 * NIC unless switched off) belong to that machine, not to what a test
 * kernel needs, so a monitor that offers only a host bridge and
 * pci-testdev prints the same. `-append all` lists every function and
 * their number instead ("pci: N functions on bus 0").
 *
 * BAR addresses are not printed (firmware chose them) but must be
 * assigned: a BAR that reads 0 ends the run with EXIT_MISSING. The kernel
 * turns on I/O and memory decoding itself, as a driver does.
 *
 * pci-testdev (QEMU hw/misc/pci-testdev.c), as this kernel uses it:
 *   BAR0: 4 KiB of MMIO; BAR1: 256 bytes of I/O ports. Both hold the same
 *   registers and answer 1-byte accesses (QEMU splits wider ones):
 *     +0   u8  test: a write of n < 3 selects test n of this BAR's kind
 *              (mmio tests through BAR0, portio tests through BAR1); any
 *              write here ends the test that was running; n >= 3 selects none
 *     +1   u8  width of the access the test expects (1)
 *     +4   u32 offset in this BAR that the test watches
 *     +8   u8  data the test expects (0xfa where it matches data, 0xce where not)
 *     +12  u32 count: writes to the watched offset that the device saw
 *     +16  the test's name, NUL-terminated
 *   Reads return 0 while no test is selected, and past the name.
 *   Tests per kind: 0 "no-eventfd" counts every matching write; 1
 *   "wildcard-eventfd" and 2 "datamatch-eventfd" register an ioeventfd on
 *   the watched offset (any data, or data == 0xfa with width 1): the writes
 *   it catches are consumed before the device sees them, so their count
 *   stays 0. The offsets are 0x800 + i for the mmio tests and 0x80 + i for
 *   the portio tests, i being the test's index 0-5 across both kinds.
 * The kvm-unit-tests pci-testdev test does the same: select, read the
 * header, write the data to the offset, read the count (0 or the writes).
 */
#include "io.h"
#include "kernel.h"
#include "pci.h"
#include "serial.h"
#include "fatal-trap.h"

#define TESTDEV_VENDOR   0x1b36
#define TESTDEV_DEVICE   0x0005
#define TESTDEV_TESTS    3	/* per kind */
#define TESTDEV_WRITES   16
#define MAX_NAME         32

/* Header register offsets */
#define TD_TEST    0
#define TD_WIDTH   1
#define TD_OFFSET  4
#define TD_DATA    8
#define TD_COUNT   12
#define TD_NAME    16

/* One kind of BAR: its accessors over BAR-relative offsets. */
struct td_bar {
	const char *kind;
	uint32_t base;
	uint8_t (*read8)(uint32_t base, uint32_t off);
	uint32_t (*read32)(uint32_t base, uint32_t off);
	void (*write8)(uint32_t base, uint32_t off, uint8_t v);
	void (*write16)(uint32_t base, uint32_t off, uint16_t v);
	void (*write32)(uint32_t base, uint32_t off, uint32_t v);
};

static uint8_t mmio_read8(uint32_t base, uint32_t off)
{
	return *(volatile uint8_t *)(uintptr_t)(base + off);
}

static uint32_t mmio_read32(uint32_t base, uint32_t off)
{
	return *(volatile uint32_t *)(uintptr_t)(base + off);
}

static void mmio_write8(uint32_t base, uint32_t off, uint8_t v)
{
	*(volatile uint8_t *)(uintptr_t)(base + off) = v;
}

static void mmio_write16(uint32_t base, uint32_t off, uint16_t v)
{
	*(volatile uint16_t *)(uintptr_t)(base + off) = v;
}

static void mmio_write32(uint32_t base, uint32_t off, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)(base + off) = v;
}

static uint8_t port_read8(uint32_t base, uint32_t off)
{
	return inb((uint16_t)(base + off));
}

static uint32_t port_read32(uint32_t base, uint32_t off)
{
	return inl((uint16_t)(base + off));
}

static void port_write8(uint32_t base, uint32_t off, uint8_t v)
{
	outb((uint16_t)(base + off), v);
}

static void port_write16(uint32_t base, uint32_t off, uint16_t v)
{
	outw((uint16_t)(base + off), v);
}

static void port_write32(uint32_t base, uint32_t off, uint32_t v)
{
	outl((uint16_t)(base + off), v);
}

static void put_bdf(struct pci_fn f)
{
	serial_put_hex(f.bus, 2);
	serial_putc(':');
	serial_put_hex(f.dev, 2);
	serial_putc('.');
	serial_put_hex(f.fn, 1);
}

static void put_function(struct pci_fn f)
{
	uint32_t id = pci_read32(f, PCI_VENDOR_ID);
	uint32_t class_rev = pci_read32(f, PCI_REVISION);
	uint8_t header = pci_read8(f, PCI_HEADER_TYPE);

	put_bdf(f);
	serial_putc(' ');
	serial_put_hex(id & 0xffff, 4);
	serial_putc(':');
	serial_put_hex(id >> 16, 4);
	serial_puts(" class ");
	serial_put_hex(class_rev >> 24, 2);
	serial_putc('.');
	serial_put_hex((class_rev >> 16) & 0xff, 2);
	serial_putc('.');
	serial_put_hex((class_rev >> 8) & 0xff, 2);
	serial_puts(" rev ");
	put_hex(class_rev & 0xff, 2);
	serial_puts(" header ");
	put_hex(header, 2);
	if ((header & 0x7f) == 0) {
		/* Only type 0 headers have the subsystem ids here. */
		uint32_t sub = pci_read32(f, PCI_SUBSYSTEM);

		serial_puts(" subsystem ");
		serial_put_hex(sub & 0xffff, 4);
		serial_putc(':');
		serial_put_hex(sub >> 16, 4);
	}
	serial_putc('\n');
}

struct listing {
	int all;
};

static void visit(struct pci_fn f, void *arg)
{
	const struct listing *l = arg;
	uint32_t id = pci_read32(f, PCI_VENDOR_ID);
	uint16_t class = (uint16_t)(pci_read32(f, PCI_REVISION) >> 16);

	if (l->all || class == 0x0600 || id == ((uint32_t)TESTDEV_DEVICE << 16 | TESTDEV_VENDOR))
		put_function(f);
}

/* Sizes and prints the BARs; fills the testdev's two. 0 if one is missing or unassigned. */
static int probe_bars(struct pci_fn f, struct td_bar *mmio, struct td_bar *pio)
{
	int i = 0, first_none = -1;

	while (i < 6) {
		struct pci_bar bar;
		int regs = pci_bar_probe(f, i, &bar);

		if (bar.size == 0) {
			if (first_none < 0)
				first_none = i;
			i += regs;
			continue;
		}
		if (first_none >= 0) {
			serial_puts("  bar");
			serial_put_dec((unsigned long)first_none);
			serial_puts(" not implemented, but a later one is\n");
			return 0;
		}
		serial_puts("  bar");
		serial_put_dec((unsigned long)i);
		serial_puts(bar.io ? " io" : bar.is64 ? " mem64" : " mem32");
		if (bar.prefetch)
			serial_puts(" prefetchable");
		serial_puts(" size ");
		put_hex(bar.size, 0);
		serial_putc('\n');
		if (bar.addr == 0 || (bar.addr & (bar.size - 1))) {
			serial_puts("  bar not assigned (or misaligned) by the firmware\n");
			return 0;
		}
		if (i == 0 && !bar.io && !bar.is64)
			mmio->base = (uint32_t)bar.addr;
		if (i == 1 && bar.io)
			pio->base = (uint32_t)bar.addr;
		i += regs;
	}
	if (first_none >= 0) {
		serial_puts("  bar");
		serial_put_dec((unsigned long)first_none);
		serial_puts("-5 not implemented\n");
	}
	if (!mmio->base || !pio->base) {
		serial_puts("  bar0 is not a 32-bit memory BAR, or bar1 not an I/O BAR\n");
		return 0;
	}
	return 1;
}

/* Every header byte but the test number reads 0 while no test is selected. */
static int reads_zero(const struct td_bar *b)
{
	return b->read8(b->base, TD_WIDTH) == 0 && b->read32(b->base, TD_OFFSET) == 0 &&
	       b->read8(b->base, TD_DATA) == 0 && b->read32(b->base, TD_COUNT) == 0 &&
	       b->read8(b->base, TD_NAME) == 0;
}

static int run_test(const struct td_bar *b, uint8_t n, uint32_t bar_size)
{
	uint8_t width, data;
	uint32_t offset, count;
	int i;

	b->write8(b->base, TD_TEST, n);
	width = b->read8(b->base, TD_WIDTH);
	offset = b->read32(b->base, TD_OFFSET);
	data = b->read8(b->base, TD_DATA);
	count = b->read32(b->base, TD_COUNT);

	serial_puts("  ");
	serial_puts(b->kind);
	serial_puts(" test ");
	serial_put_dec(n);
	serial_puts(" \"");
	for (i = 0; i < MAX_NAME; i++) {
		char c = (char)b->read8(b->base, (uint32_t)(TD_NAME + i));

		if (!c)
			break;
		serial_putc(c);
	}
	serial_puts("\": offset ");
	put_hex(offset, 0);
	serial_puts(" width ");
	serial_put_dec(width);
	serial_puts(" data ");
	put_hex(data, 2);
	if (count != 0 || offset < TD_NAME + 1 || offset >= bar_size ||
	    (width != 1 && width != 2 && width != 4)) {
		serial_puts(": bad header (count ");
		serial_put_dec(count);
		serial_puts(")\n");
		return 0;
	}
	for (i = 0; i < TESTDEV_WRITES; i++) {
		if (width == 1)
			b->write8(b->base, offset, data);
		else if (width == 2)
			b->write16(b->base, offset, data);
		else
			b->write32(b->base, offset, data);
	}
	count = b->read32(b->base, TD_COUNT);
	serial_puts(", ");
	serial_put_dec(TESTDEV_WRITES);
	serial_puts(" writes, count ");
	serial_put_dec(count);
	serial_putc('\n');
	return count == 0 || count == TESTDEV_WRITES;
}

static int exercise(struct pci_fn f)
{
	struct td_bar mmio = { "mmio", 0, mmio_read8, mmio_read32, mmio_write8, mmio_write16, mmio_write32 };
	struct td_bar pio = { "portio", 0, port_read8, port_read32, port_write8, port_write16, port_write32 };
	uint8_t n;

	serial_puts("pci-testdev at ");
	put_bdf(f);
	serial_puts(", interrupt pin ");
	serial_put_dec(pci_read8(f, PCI_INTERRUPT_PIN));
	serial_putc('\n');
	if (!probe_bars(f, &mmio, &pio))
		return EXIT_MISSING;
	pci_write16(f, PCI_COMMAND, pci_read16(f, PCI_COMMAND) | PCI_COMMAND_IO | PCI_COMMAND_MEMORY);

	if (!reads_zero(&mmio) || !reads_zero(&pio)) {
		serial_puts("  before a test is selected: reads are not 0\n");
		return EXIT_FAILED;
	}
	serial_puts("  before a test is selected: reads 0\n");
	for (n = 0; n < TESTDEV_TESTS; n++)
		if (!run_test(&mmio, n, 0x1000))
			return EXIT_FAILED;
	for (n = 0; n < TESTDEV_TESTS; n++)
		if (!run_test(&pio, n, 0x100))
			return EXIT_FAILED;
	mmio.write8(mmio.base, TD_TEST, TESTDEV_TESTS);
	pio.write8(pio.base, TD_TEST, TESTDEV_TESTS);
	if (!reads_zero(&mmio) || !reads_zero(&pio)) {
		serial_puts("  test 3 selects nothing: reads are not 0\n");
		return EXIT_FAILED;
	}
	serial_puts("  test 3 selects nothing: reads 0\n");
	return 0x17;
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	struct listing l;
	struct pci_fn f;
	int n;

	fatal_trap_init();
	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;

	l.all = cmdline_has(info, "all");
	n = pci_scan_bus(0, visit, &l);
	if (l.all) {
		serial_puts("pci: ");
		serial_put_dec((unsigned long)n);
		serial_puts(" functions on bus 0\n");
	}
	if (!pci_find(TESTDEV_VENDOR, TESTDEV_DEVICE, &f)) {
		serial_puts("no pci-testdev (1b36:0005) on bus 0\n");
		return EXIT_MISSING;
	}
	return exercise(f);
}
