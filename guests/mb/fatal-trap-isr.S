/*
 * Entry stubs for trap.c's IDT: one per vector. Vectors for which the CPU
 * pushes an error code (8, 10-14, 17, 21, 29, 30) leave it in place; the
 * others push a 0 in its stead, so every frame has the same layout (struct
 * trap_frame). Then the vector number, all general registers, and a call
 * to trap_report(), which does not return.
 */
#include "fatal-trap.h"

	.text
	.code32

trap_common:
	pushal
	cld
	movl %esp, %eax
	/* Align the stack for the call; the frame pointer argument is kept in EAX's copy. */
	andl $~15, %esp
	subl $12, %esp
	pushl %eax
	call trap_report
1:	cli
	hlt
	jmp 1b

	.altmacro
	.macro stub vec
trap_stub_\vec:
	.if (\vec == 8) || ((\vec >= 10) && (\vec <= 14)) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
	.else
	pushl $0
	.endif
	pushl $\vec
	jmp trap_common
	.endm

	.macro entry vec
	.long trap_stub_\vec
	.endm

	.set vec, 0
	.rept TRAP_VECTORS
	stub %vec
	.set vec, vec + 1
	.endr

	.section .rodata
	.balign 4
	.globl trap_stubs
trap_stubs:
	.set vec, 0
	.rept TRAP_VECTORS
	entry %vec
	.set vec, vec + 1
	.endr
