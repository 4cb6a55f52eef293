/* What mb-timer.c and its interrupt entry code in timer-isr.S share. */
#ifndef MB_TIMER_H
#define MB_TIMER_H

#define IDT_ENTRIES   48	/* the 32 exceptions and the 16 PIC vectors */
#define PIC1_VECTOR   0x20	/* IRQ 0-7 */
#define PIC2_VECTOR   0x28	/* IRQ 8-15 */

#ifndef __ASSEMBLER__
#include <stdint.h>

/* Entry stubs, one per vector, in vector order. */
extern const uint32_t isr_table[IDT_ENTRIES];

/* Called from the IRQ 0 stub with every register saved. */
void timer_tick(void);

/* Called from every other stub; prints the vector and ends the run. */
__attribute__((noreturn)) void unexpected_vector(uint32_t vector);
#endif

#endif
