/* PCI configuration mechanism #1; see pci.h. */
#include "io.h"
#include "pci.h"

static uint32_t address(struct pci_fn f, uint8_t reg)
{
	return 0x80000000u | (uint32_t)f.bus << 16 | (uint32_t)f.dev << 11 | (uint32_t)f.fn << 8 |
	       (reg & 0xfc);
}

uint32_t pci_read32(struct pci_fn f, uint8_t reg)
{
	outl(PCI_CONFIG_ADDRESS, address(f, reg));
	return inl(PCI_CONFIG_DATA);
}

void pci_write32(struct pci_fn f, uint8_t reg, uint32_t value)
{
	outl(PCI_CONFIG_ADDRESS, address(f, reg));
	outl(PCI_CONFIG_DATA, value);
}

void pci_write16(struct pci_fn f, uint8_t reg, uint16_t value)
{
	outl(PCI_CONFIG_ADDRESS, address(f, reg));
	outw(PCI_CONFIG_DATA + (reg & 2), value);
}

int pci_scan_bus(uint8_t bus, void (*visit)(struct pci_fn f, void *arg), void *arg)
{
	struct pci_fn f = { bus, 0, 0 };
	int n = 0;

	for (f.dev = 0; f.dev < 32; f.dev++) {
		int nfn;

		f.fn = 0;
		if (pci_read16(f, PCI_VENDOR_ID) == PCI_VENDOR_NONE)
			continue;
		nfn = (pci_read8(f, PCI_HEADER_TYPE) & 0x80) ? 8 : 1;
		for (f.fn = 0; f.fn < nfn; f.fn++) {
			if (pci_read16(f, PCI_VENDOR_ID) == PCI_VENDOR_NONE)
				continue;
			if (visit)
				visit(f, arg);
			n++;
		}
	}
	return n;
}

struct find_arg {
	uint32_t id;
	int found;
	struct pci_fn f;
};

static void match(struct pci_fn f, void *arg)
{
	struct find_arg *a = arg;

	if (!a->found && pci_read32(f, PCI_VENDOR_ID) == a->id) {
		a->found = 1;
		a->f = f;
	}
}

int pci_find(uint16_t vendor, uint16_t device, struct pci_fn *found)
{
	struct find_arg a = { (uint32_t)device << 16 | vendor, 0, { 0, 0, 0 } };

	pci_scan_bus(0, match, &a);
	if (a.found)
		*found = a.f;
	return a.found;
}

int pci_bar_probe(struct pci_fn f, int index, struct pci_bar *bar)
{
	uint8_t reg = (uint8_t)(PCI_BAR0 + 4 * index);
	uint16_t cmd = pci_read16(f, PCI_COMMAND);
	uint32_t orig = pci_read32(f, reg), mask, orig_hi = 0, mask_hi = 0;
	int regs = 1;

	/* No decoding while the BAR holds all ones: it would claim addresses it does not own. */
	pci_write16(f, PCI_COMMAND, cmd & (uint16_t)~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
	pci_write32(f, reg, 0xffffffffu);
	mask = pci_read32(f, reg);
	pci_write32(f, reg, orig);
	bar->io = orig & PCI_BAR_IO;
	bar->is64 = !bar->io && (orig & PCI_BAR_MEM_TYPE) == PCI_BAR_MEM_64 && index < 5;
	bar->prefetch = !bar->io && (orig & PCI_BAR_PREFETCH);
	if (bar->is64) {
		orig_hi = pci_read32(f, (uint8_t)(reg + 4));
		pci_write32(f, (uint8_t)(reg + 4), 0xffffffffu);
		mask_hi = pci_read32(f, (uint8_t)(reg + 4));
		pci_write32(f, (uint8_t)(reg + 4), orig_hi);
		regs = 2;
	}
	pci_write16(f, PCI_COMMAND, cmd);

	if (bar->io) {
		/* I/O BARs decode 16 address bits on a PC; the upper half may read back as 0. */
		uint32_t m = (mask & ~3u) | 0xffff0000u;

		bar->addr = orig & ~3u;
		bar->size = mask & ~3u ? (uint64_t)(~m + 1) : 0;
	} else {
		uint64_t m = (uint64_t)mask_hi << 32 | (mask & ~0xfu);

		if (!bar->is64)
			m |= 0xffffffff00000000ull;
		bar->addr = (uint64_t)orig_hi << 32 | (orig & ~0xfu);
		bar->size = (mask & ~0xfu) || mask_hi ? ~m + 1 : 0;
	}
	return regs;
}
