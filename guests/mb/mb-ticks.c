/*
 * mb-ticks: counts timer interrupts and stamps each one with the TSC and
 * the ACPI PM timer, so a host can see how far apart the ticks came. The
 * timer is chosen on the command line (-append):
 *
 *   timer=pit       PIT channel 0, rate generator, 100 Hz, IRQ 0 through the
 *                   8259 PICs at vector 0x20 (the default)
 *   timer=lapic     the local APIC timer, periodic, 10 ms, vector 0x30
 *   timer=deadline  the local APIC timer in TSC-deadline mode, re-armed at
 *                   each tick one period (calibrated against the PM timer)
 *                   after the TSC it read, as Linux programs its next event
 *
 * After each tick the main loop makes a ucall SYNC (stage 1, the tick
 * number), so a run can be cut at tick N with --snapshot-at sync:N. After
 * TICKS ticks it stops the timer and prints
 *
 *   ticks: timer pit, period 10 ms
 *   30 ticks, 0 spurious
 *   spacing (tsc pm):
 *   0x... 0x...          one line per tick after the first: the TSC and
 *   ...                  PM-timer (3.579545 MHz, 24 bits) counts since the
 *                        tick before
 *
 * and exits with 0x21. Everything before "spacing" is the same on every
 * run; the spacing lines are measurements. Every exception and every other
 * vector is reported by fatal-trap.c and ends the run with EXIT_TRAP.
 */
#include <stdint.h>

#include "exit.h"
#include "idt.h"
#include "fatal-trap.h"
#include "io.h"
#include "kernel.h"
#include "serial.h"
#include "ticks.h"
#include "ucall.h"

#define TICKS        30
#define PM_TIMER     0x608	/* PM_TMR of the FADT (QEMU's PIIX4 address, pyvmm's too) */
#define PM_MASK      0xffffff
#define PM_10MS      35795	/* 3.579545 MHz * 10 ms */

#define PIC1_CMD     0x20
#define PIC1_DATA    0x21
#define PIC2_CMD     0xa0
#define PIC2_DATA    0xa1
#define PIC_EOI      0x20
#define PIT_CH0      0x40
#define PIT_MODE     0x43
#define PIT_CH0_RATE 0x34	/* channel 0, low then high byte, mode 2 (rate generator) */
#define PIT_DIVISOR  11932	/* 1.193182 MHz / 11932: 100.0 Hz */

#define LAPIC_BASE   0xfee00000u
#define LAPIC_EOI    0xb0
#define LAPIC_SVR    0xf0
#define LAPIC_LVTT   0x320
#define LAPIC_TMICT  0x380
#define LAPIC_TDCR   0x3e0
#define SVR_ENABLE   (1u << 8)
#define LVT_MASKED   (1u << 16)
#define LVTT_PERIODIC (1u << 17)
#define LVTT_DEADLINE (2u << 17)
#define TDCR_DIV16   0x3
/* KVM's local APIC timer counts at 1 GHz: divided by 16, 10 ms is 625,000 counts. */
#define LAPIC_10MS   625000
#define MSR_TSC_DEADLINE 0x6e0
#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)

enum timer { PIT, LAPIC, DEADLINE };
static const char *const timer_names[] = { "pit", "lapic", "deadline" };

static struct idt_gate idt[TRAP_VECTORS] __attribute__((aligned(8)));
static enum timer timer;
static volatile uint32_t ticks, spurious;
static uint64_t tsc_at[TICKS + 8];
static uint32_t pm_at[TICKS + 8];
static uint64_t period_tsc;

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t value)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)) : "memory");
}

static void lapic_write(uint32_t reg, uint32_t value)
{
	*(volatile uint32_t *)(uintptr_t)(LAPIC_BASE + reg) = value;
}

void tick(void)
{
	uint32_t n = ticks;

	if (n < TICKS + 8) {
		tsc_at[n] = rdtsc();
		pm_at[n] = inl(PM_TIMER) & PM_MASK;
	}
	ticks = n + 1;
	if (timer == PIT) {
		outb(PIC1_CMD, PIC_EOI);
		return;
	}
	if (timer == DEADLINE) {
		wrmsr(MSR_TSC_DEADLINE, tsc_at[n < TICKS + 8 ? n : 0] + period_tsc);
	}
	lapic_write(LAPIC_EOI, 0);
}

void spurious_interrupt(void)
{
	spurious++;
}

static void set_gate(int v, uint32_t entry)
{
	idt[v].offset_low = (uint16_t)entry;
	idt[v].selector = KERNEL_CS;
	idt[v].zero = 0;
	idt[v].type_attr = GATE_INTERRUPT32;
	idt[v].offset_high = (uint16_t)(entry >> 16);
}

static void load_idt(void)
{
	struct {
		uint16_t limit;
		uint32_t base;
	} __attribute__((packed)) desc = { sizeof(idt) - 1, (uint32_t)(uintptr_t)idt };
	int v;

	for (v = 0; v < TRAP_VECTORS; v++)
		set_gate(v, trap_stubs[v]);
	set_gate(timer == PIT ? PIT_VECTOR : LAPIC_VECTOR, (uint32_t)(uintptr_t)tick_entry);
	set_gate(PIC_SPURIOUS, (uint32_t)(uintptr_t)spurious_entry);
	set_gate(LAPIC_SPURIOUS, (uint32_t)(uintptr_t)spurious_entry);
	__asm__ volatile("lidt %0" : : "m"(desc) : "memory");
}

/* Edge-triggered, cascaded, vectors off the exceptions; only IRQ 0 unmasked for the PIT. */
static void pic_init(uint8_t master_mask)
{
	outb(PIC1_CMD, 0x11);
	outb(PIC2_CMD, 0x11);
	outb(PIC1_DATA, PIT_VECTOR);
	outb(PIC2_DATA, PIT_VECTOR + 8);
	outb(PIC1_DATA, 1 << 2);
	outb(PIC2_DATA, 2);
	outb(PIC1_DATA, 0x01);
	outb(PIC2_DATA, 0x01);
	outb(PIC1_DATA, master_mask);
	outb(PIC2_DATA, 0xff);
}

/*
 * TSC counts in 10 ms of PM timer: the deadline timer's period. Measured
 * over eight intervals of 1.25 ms, each starting at a change of the PM
 * timer's value, and the shortest taken: a PM-timer read is an exit, and
 * one the host serves late can only make an interval longer. No pause in
 * the loops: a PAUSE exit can yield the host CPU for milliseconds.
 */
#define PM_1_25MS (PM_10MS / 8)

static uint64_t tsc_per_10ms(void)
{
	uint64_t t0, best = ~0ull;
	uint32_t pm0, pm;
	int i;

	for (i = 0; i < 8; i++) {
		pm0 = inl(PM_TIMER) & PM_MASK;
		while ((pm = inl(PM_TIMER) & PM_MASK) == pm0)
			;
		t0 = rdtsc();
		while (((inl(PM_TIMER) - pm) & PM_MASK) < PM_1_25MS)
			;
		t0 = rdtsc() - t0;
		if (t0 < best)
			best = t0;
	}
	return best * 8;
}

static int start_timer(void)
{
	uint32_t a = 1, b, c = 0, d;

	if (timer == PIT) {
		pic_init(0xfe);
		outb(PIT_MODE, PIT_CH0_RATE);
		outb(PIT_CH0, PIT_DIVISOR & 0xff);
		outb(PIT_CH0, PIT_DIVISOR >> 8);
		return 1;
	}
	pic_init(0xff);
	lapic_write(LAPIC_SVR, SVR_ENABLE | LAPIC_SPURIOUS);
	if (timer == LAPIC) {
		lapic_write(LAPIC_TDCR, TDCR_DIV16);
		lapic_write(LAPIC_LVTT, LVTT_PERIODIC | LAPIC_VECTOR);
		lapic_write(LAPIC_TMICT, LAPIC_10MS);
		return 1;
	}
	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	if (!(c & CPUID_1_ECX_TSC_DEADLINE)) {
		serial_puts("no TSC-deadline timer in CPUID\n");
		return 0;
	}
	period_tsc = tsc_per_10ms();
	lapic_write(LAPIC_LVTT, LVTT_DEADLINE | LAPIC_VECTOR);
	wrmsr(MSR_TSC_DEADLINE, rdtsc() + period_tsc);
	return 1;
}

static void stop_timer(void)
{
	if (timer == PIT)
		outb(PIC1_DATA, 0xff);
	else
		lapic_write(LAPIC_LVTT, LVT_MASKED);
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	uint32_t i, n;

	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;
	timer = cmdline_has(info, "timer=lapic") ? LAPIC : cmdline_has(info, "timer=deadline") ? DEADLINE : PIT;
	load_idt();
	serial_puts("ticks: timer ");
	serial_puts(timer_names[timer]);
	serial_puts(", period 10 ms\n");
	if (!start_timer())
		return EXIT_MISSING;

	for (i = 1; i <= TICKS; i++) {
		/* sti takes effect after the next instruction: a tick cannot slip in before hlt. */
		while (ticks < i)
			__asm__ volatile("sti; hlt; cli" : : : "memory");
		ucall_sync(1, i);
	}
	stop_timer();
	n = ticks < TICKS + 8 ? ticks : TICKS + 8;
	serial_put_dec(TICKS);
	serial_puts(" ticks, ");
	serial_put_dec(spurious);
	serial_puts(" spurious\nspacing (tsc pm):\n");
	for (i = 1; i < n; i++) {
		put_hex(tsc_at[i] - tsc_at[i - 1], 0);
		serial_putc(' ');
		put_hex((pm_at[i] - pm_at[i - 1]) & PM_MASK, 0);
		serial_putc('\n');
	}
	return 0x21;
}
