/*
 * Interrupt entry for mb-timer: vector 0x20 (IRQ 0) counts a tick and
 * returns; the master PIC's spurious vector (IRQ 7) returns without an
 * EOI, as a spurious interrupt has none; anything else is a bug and ends
 * the run through unexpected_vector(), which never returns, so the error
 * code some exceptions push does not matter.
 *
 * Returning does not use IRET. On the project's hosts KVM runs CPL-0 code
 * in its instruction emulator, which has no 32-bit protected-mode IRET
 * (mb-iret-probe shows it; 64-bit iretq is another matter, README.md).
 * The interrupt never changes privilege or stack here, so its frame is just
 * EIP, CS, EFLAGS, and POPF followed by a near RET restores the same state.
 */
#include "timer.h"

/*
 * Turns the frame EIP, CS, EFLAGS (lowest address first) into EFLAGS, EIP,
 * then pops both. CS is the kernel's only code selector, so dropping it
 * loses nothing. An interrupt taken between POPF and RET nests on this
 * stack like any other and returns to the RET.
 */
	.macro return_from_interrupt
	pushl %eax
	movl 4(%esp), %eax	/* EIP */
	xchgl %eax, 12(%esp)	/* EIP over EFLAGS; EAX = EFLAGS */
	movl %eax, 8(%esp)	/* EFLAGS over CS */
	popl %eax
	addl $4, %esp		/* drop the old EIP slot */
	popfl
	ret
	.endm

	.text
	.code32

irq0:
	pushal
	cld
	call timer_tick
	popal
	return_from_interrupt

spurious_irq7:
	return_from_interrupt

	.altmacro
	.macro unexpected vec
unexpected_\vec:
	pushl $\vec
	call unexpected_vector
	.endm

	.macro entry vec
	.if \vec == PIC1_VECTOR
	.long irq0
	.elseif \vec == PIC1_VECTOR + 7
	.long spurious_irq7
	.else
	.long unexpected_\vec
	.endif
	.endm

	.set vec, 0
	.rept IDT_ENTRIES
	unexpected %vec
	.set vec, vec + 1
	.endr

	.section .rodata
	.balign 4
	.globl isr_table
isr_table:
	.set vec, 0
	.rept IDT_ENTRIES
	entry %vec
	.set vec, vec + 1
	.endr
