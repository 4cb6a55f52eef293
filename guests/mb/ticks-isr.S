/*
 * Interrupt entry for mb-ticks: the timer's vector (PIT or local APIC)
 * stamps a tick and returns; the PIC's and the local APIC's spurious
 * vectors are counted and return without an EOI, as a spurious interrupt
 * has none. Every
 * other vector goes to fatal-trap-isr.S, which reports it and ends the run.
 *
 * Returning does not use IRET: KVM runs CPL-0 code in its instruction
 * emulator on the project's hosts, and it has no 32-bit protected-mode
 * IRET (see timer-isr.S, which returns the same way). The frame is EIP, CS,
 * EFLAGS with no privilege change; POPF then a near RET restore the same
 * state.
 */
#include "ticks.h"

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

	.globl tick_entry
tick_entry:
	pushal
	cld
	call tick
	popal
	return_from_interrupt

	.globl spurious_entry
spurious_entry:
	pushal
	cld
	call spurious_interrupt
	popal
	return_from_interrupt
