/*
 * msr-bench: 16-bit real mode, for measuring MSR exits. Exactly 100000
 * RDMSRs of SYSENTER_CS (0x174), then a write of 0 to the debug-exit port:
 * status 1. Without an MSR filter on 0x174 every RDMSR is answered inside
 * KVM (the run makes one exit); with one, each is an exit to user space.
 *
 * The count lives in %ebx: RDMSR takes its index in %ecx and returns the
 * value in %edx:%eax.
 */
#include "machine.h"

#define MSR_BENCH_COUNT 100000
#define MSR_SYSENTER_CS 0x174

	.section .text.entry, "ax"
	.code16
	.globl _start
_start:
	cli
	movl $MSR_BENCH_COUNT, %ebx
1:	movl $MSR_SYSENTER_CS, %ecx
	rdmsr
	decl %ebx
	jnz 1b

	xorb %al, %al
	outb %al, $DEBUG_EXIT_PORT
2:	hlt				/* not reached when the exit device is present */
	jmp 2b
