/*
 * triple-fault: loads an empty IDT (limit 0) itself, so it does not depend
 * on the monitor's, then raises #UD. Delivering #UD through an empty IDT
 * faults (#GP), delivering that faults again (#DF), and the third fault
 * shuts the CPU down: the run ends with a shutdown exit.
 */
	.section .text.entry, "ax"
	.code64
	.globl _start
_start:
	lidt empty_idtr(%rip)
	ud2
1:	jmp 1b				/* not reached */

	.section .rodata
	.balign 16
empty_idtr:
	.word 0				/* limit 0: no vector is present */
	.quad 0				/* base */
