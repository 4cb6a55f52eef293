/*
 * hang: spins forever at CPL 0 with interrupts off and never exits to the
 * monitor, for timeout tests. The monitor must be able to stop a vCPU that
 * makes no exits of its own.
 */
	.section .text.entry, "ax"
	.code64
	.globl _start
_start:
	cli
1:	jmp 1b
