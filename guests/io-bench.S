/*
 * io-bench: 16-bit real mode, for measuring the cost of one port-I/O exit.
 * Exactly 200000 byte writes to the UART scratch register (a port with no
 * side effects), then a write of 0 to the debug-exit port: status 1.
 *
 * The loop is three instructions (out, dec, jnz) so that nearly all the time
 * is exits; the count lives in %ecx (operand-size prefix) since 200000 does
 * not fit in 16 bits.
 */
#include "machine.h"

#define IO_BENCH_COUNT 200000

	.section .text.entry, "ax"
	.code16
	.globl _start
_start:
	cli
	movw $(COM1_PORT + UART_SCR), %dx
	movl $IO_BENCH_COUNT, %ecx
	xorb %al, %al
1:	outb %al, %dx
	decl %ecx
	jnz 1b

	xorb %al, %al
	outb %al, $DEBUG_EXIT_PORT
2:	hlt				/* not reached when the exit device is present */
	jmp 2b
