/*
 * mmio-bench: 16-bit real mode, for measuring the cost of one trapped write.
 * Exactly 100000 byte stores to guest-physical 0x9000 (the benchmark makes that
 * page read-only, or SPP-protected, so each store is one MMIO exit), then a
 * write of 0 to the debug-exit port: status 1.
 */
#include "machine.h"

#define MMIO_BENCH_COUNT 100000
#define MMIO_BENCH_TARGET 0x9000

	.section .text.entry, "ax"
	.code16
	.globl _start
_start:
	cli
	xorw %ax, %ax
	movw %ax, %ds
	movw $MMIO_BENCH_TARGET, %bx
	movl $MMIO_BENCH_COUNT, %ecx
1:	movb %cl, (%bx)
	decl %ecx
	jnz 1b

	xorb %al, %al
	outb %al, $DEBUG_EXIT_PORT
2:	hlt
	jmp 2b
