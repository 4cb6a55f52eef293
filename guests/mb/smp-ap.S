/*
 * How an application processor gets from its start-up IPI to C.
 *
 * The trampoline is position-independent real-mode code copied to
 * TRAMPOLINE_ADDR: the SIPI starts the AP there with CS = TRAMPOLINE_ADDR
 * >> 4 and IP = 0. It only loads the kernel's GDT, sets CR0.PE and jumps
 * into the kernel proper; everything else happens in 32-bit code.
 */
#include "kernel.h"
#include "smp.h"

	.section .rodata
	.code16
	.globl smp_trampoline_start, smp_trampoline_end
smp_trampoline_start:
	cli
	/* CS-relative: the trampoline's own copy of the GDT pseudo-descriptor. */
	lgdtl %cs:(tramp_gdt_desc - smp_trampoline_start)
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	/* A far jump with a 32-bit offset: the kernel lies above 1 MiB. */
	ljmpl $KERNEL_CS, $ap_entry32
	.balign 4
tramp_gdt_desc:
	.word 23			/* limit: the three descriptors of start.S's gdt */
	.long gdt
smp_trampoline_end:

	.text
	.code32
	.type ap_entry32, @function
ap_entry32:
	movw $KERNEL_DS, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %fs
	movw %ax, %gs
	movw %ax, %ss
	/*
	 * Each AP takes the next stack. The BSP starts at most MAX_CPUS - 1
	 * APs, so the stacks below cannot run out.
	 */
	movl $AP_STACK_SIZE, %eax
	lock xaddl %eax, ap_stack_next
	leal AP_STACK_SIZE(%eax), %esp
	cld
	call ap_main
1:	cli
	hlt
	jmp 1b
	.size ap_entry32, . - ap_entry32

	.data
	.balign 4
ap_stack_next:
	.long ap_stacks

	.section .stack, "aw", @nobits
	.balign 16
ap_stacks:
	.skip AP_STACK_SIZE * (MAX_CPUS - 1)
