/* What mb-ticks.c and its interrupt entry code in ticks-isr.S share. */
#ifndef MB_TICKS_H
#define MB_TICKS_H

#define PIT_VECTOR        0x20	/* IRQ 0 through the master PIC */
#define PIC_SPURIOUS      0x27	/* the master PIC's IRQ 7 */
#define LAPIC_VECTOR      0x30	/* the local APIC timer's LVT entry */
#define LAPIC_SPURIOUS    0xff	/* the local APIC's spurious-interrupt vector */

#ifndef __ASSEMBLER__
/* Entry stubs (ticks-isr.S): the tick, and the spurious vectors. */
extern const char tick_entry[], spurious_entry[];

/* Called from tick_entry with every register saved: stamps the tick and sends the EOI. */
void tick(void);

/* Called from spurious_entry: counts it (no EOI). */
void spurious_interrupt(void);
#endif

#endif
