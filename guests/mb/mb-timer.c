/*
 * mb-timer: programs PIT channel 0 at about 1 kHz, routes IRQ 0 through the
 * 8259 PICs to vector 0x20, and sleeps in hlt until ten timer interrupts
 * have arrived:
 *
 *   pit channel 0 divisor 1193, irq 0 at vector 0x20
 *   10 ticks
 *
 * then exits with 0x15. Any other interrupt or exception prints its vector
 * and exits with EXIT_FAILED. The local APIC is left as the loader left it:
 * a PC hands over with the PIC's output wired to the BSP (LINT0 in ExtINT
 * mode, or the local APIC off).
 */
#include "exit.h"
#include "idt.h"
#include "io.h"
#include "kernel.h"
#include "serial.h"
#include "timer.h"

#define PIC1_CMD   0x20
#define PIC1_DATA  0x21
#define PIC2_CMD   0xa0
#define PIC2_DATA  0xa1
#define PIC_EOI    0x20

#define PIT_CH0    0x40
#define PIT_MODE   0x43
#define PIT_CH0_RATE_LOHI 0x34	/* channel 0, low then high byte, mode 2 (rate generator), binary */
#define PIT_DIVISOR 1193	/* 1.193182 MHz / 1193: 1000.15 Hz */

#define TICKS      10

static struct idt_gate idt[IDT_ENTRIES] __attribute__((aligned(8)));
static volatile uint32_t ticks;

void timer_tick(void)
{
	ticks++;
	outb(PIC1_CMD, PIC_EOI);
}

void unexpected_vector(uint32_t vector)
{
	serial_puts("unexpected vector ");
	put_hex(vector, 2);
	serial_puts(" after ");
	serial_put_dec(ticks);
	serial_puts(" ticks\n");
	debug_exit(EXIT_FAILED);
}

static void load_idt(void)
{
	struct {
		uint16_t limit;
		uint32_t base;
	} __attribute__((packed)) desc = { sizeof(idt) - 1, (uint32_t)(uintptr_t)idt };
	int v;

	for (v = 0; v < IDT_ENTRIES; v++) {
		idt[v].offset_low = (uint16_t)isr_table[v];
		idt[v].selector = KERNEL_CS;
		idt[v].zero = 0;
		idt[v].type_attr = GATE_INTERRUPT32;
		idt[v].offset_high = (uint16_t)(isr_table[v] >> 16);
	}
	__asm__ volatile("lidt %0" : : "m"(desc) : "memory");
}

/*
 * The standard initialisation: edge-triggered, cascaded on IRQ 2, 8086
 * mode, vectors moved off the exceptions. Everything but IRQ 0 (and the
 * cascade, needed by nothing here) stays masked.
 */
static void pic_init(void)
{
	outb(PIC1_CMD, 0x11);		/* ICW1: edge, cascade, ICW4 follows */
	outb(PIC2_CMD, 0x11);
	outb(PIC1_DATA, PIC1_VECTOR);	/* ICW2: vector base */
	outb(PIC2_DATA, PIC2_VECTOR);
	outb(PIC1_DATA, 1 << 2);	/* ICW3: slave on IRQ 2 */
	outb(PIC2_DATA, 2);		/* ICW3: slave id */
	outb(PIC1_DATA, 0x01);		/* ICW4: 8086 mode */
	outb(PIC2_DATA, 0x01);
	outb(PIC1_DATA, 0xfe);		/* OCW1: only IRQ 0 */
	outb(PIC2_DATA, 0xff);
}

static void pit_init(void)
{
	outb(PIT_MODE, PIT_CH0_RATE_LOHI);
	outb(PIT_CH0, PIT_DIVISOR & 0xff);
	outb(PIT_CH0, PIT_DIVISOR >> 8);
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	(void)info;
	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;

	load_idt();
	pic_init();
	pit_init();
	serial_puts("pit channel 0 divisor ");
	serial_put_dec(PIT_DIVISOR);
	serial_puts(", irq 0 at vector ");
	put_hex(PIC1_VECTOR, 2);
	serial_putc('\n');

	/* sti takes effect after hlt starts, so a tick cannot slip in between and be slept through. */
	while (ticks < TICKS)
		__asm__ volatile("sti; hlt; cli" : : : "memory");

	/*
	 * A tick can land between iret and cli, so the count may have passed
	 * TICKS by now: the line names the target, which was reached.
	 */
	outb(PIC1_DATA, 0xff);
	serial_put_dec(TICKS);
	serial_puts(" ticks\n");
	return 0x15;
}
