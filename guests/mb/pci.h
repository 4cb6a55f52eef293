/*
 * PCI configuration space through configuration mechanism #1: a dword
 * address written to 0xcf8 (enable bit, bus, device, function, register),
 * then the data at 0xcfc-0xcff. Reads are whole dwords; 16-bit writes use
 * the matching bytes of the data port, as an OS writes the command register.
 */
#ifndef MB_PCI_H
#define MB_PCI_H

#include <stdint.h>

#define PCI_CONFIG_ADDRESS  0xcf8
#define PCI_CONFIG_DATA     0xcfc

/* Configuration header registers */
#define PCI_VENDOR_ID       0x00	/* 16 bits; 0xffff: no function here */
#define PCI_DEVICE_ID       0x02
#define PCI_COMMAND         0x04
#define PCI_REVISION        0x08	/* then prog-if, subclass, class */
#define PCI_HEADER_TYPE     0x0e	/* bit 7: the device has functions 1-7 */
#define PCI_BAR0            0x10
#define PCI_SUBSYSTEM       0x2c	/* subsystem vendor, subsystem id */
#define PCI_INTERRUPT_PIN   0x3d

#define PCI_COMMAND_IO      0x1
#define PCI_COMMAND_MEMORY  0x2

#define PCI_BAR_IO          0x1
#define PCI_BAR_MEM_TYPE    0x6	/* memory BARs: 0 = 32-bit, 4 = 64-bit */
#define PCI_BAR_MEM_64      0x4
#define PCI_BAR_PREFETCH    0x8

#define PCI_VENDOR_NONE     0xffff

/* A function's address: bus 0 only here. */
struct pci_fn {
	uint8_t bus, dev, fn;
};

uint32_t pci_read32(struct pci_fn f, uint8_t reg);
void pci_write32(struct pci_fn f, uint8_t reg, uint32_t value);
void pci_write16(struct pci_fn f, uint8_t reg, uint16_t value);

static inline uint16_t pci_read16(struct pci_fn f, uint8_t reg)
{
	return (uint16_t)(pci_read32(f, reg) >> (8 * (reg & 2)));
}

static inline uint8_t pci_read8(struct pci_fn f, uint8_t reg)
{
	return (uint8_t)(pci_read32(f, reg) >> (8 * (reg & 3)));
}

/*
 * Calls visit() for every present function on the bus, in device and
 * function order; functions 1-7 only where function 0 says it has them.
 * Returns how many it found.
 */
int pci_scan_bus(uint8_t bus, void (*visit)(struct pci_fn f, void *arg), void *arg);

/* The first function with this vendor and device id; 0 if there is none. */
int pci_find(uint16_t vendor, uint16_t device, struct pci_fn *found);

/*
 * One base address register, sized the usual way: decoding off, all ones
 * written, the read-back's low bits mask the size, the old value restored.
 */
struct pci_bar {
	uint64_t addr;		/* as assigned (by firmware, here) */
	uint64_t size;		/* 0: the BAR is not implemented */
	int io;			/* 1: I/O space, 0: memory */
	int is64;		/* memory BAR taking this register and the next */
	int prefetch;
};

/* Reads BAR `index` (0-5); returns the number of registers it takes (1 or 2). */
int pci_bar_probe(struct pci_fn f, int index, struct pci_bar *bar);
#endif
