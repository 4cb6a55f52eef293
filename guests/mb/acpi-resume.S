/*
 * mb-acpi's way back from S3. The firmware's resume path jumps to the
 * FACS firmware waking vector in real mode, with CS = vector >> 4 and
 * IP = vector & 0xf, and nothing else defined. The stub below is copied to
 * RESUME_STUB_ADDR (page-aligned, so IP = 0) and is position-independent:
 * it loads the kernel's GDT through a CS-relative pseudo-descriptor, sets
 * CR0.PE and jumps to resume_entry32, which loads the data segments, takes
 * the resume stack and calls resume_main(). Nothing of the suspended
 * context is restored: resume_main() starts afresh from what is in memory.
 */
#include "kernel.h"

	.section .rodata
	.code16
	.globl resume_stub_start, resume_stub_end
resume_stub_start:
	cli
	cld
	lgdtl %cs:(resume_gdt_desc - resume_stub_start)
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	/* A far jump with a 32-bit offset: the kernel lies above 1 MiB. */
	ljmpl $KERNEL_CS, $resume_entry32
	.balign 4
resume_gdt_desc:
	.word 23			/* limit: the three descriptors of start.S's gdt */
	.long gdt
resume_stub_end:

	.text
	.code32
	.type resume_entry32, @function
resume_entry32:
	movw $KERNEL_DS, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %fs
	movw %ax, %gs
	movw %ax, %ss
	movl $resume_stack_top, %esp
	call resume_main
1:	cli
	hlt
	jmp 1b
	.size resume_entry32, . - resume_entry32

	.section .stack, "aw", @nobits
	.balign 16
	.skip 8192
resume_stack_top:
