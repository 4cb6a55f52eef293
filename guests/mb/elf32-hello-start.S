/*
 * Entry of elf32-hello, a plain ELF32 kernel (no multiboot header): the
 * monitor loads its program headers and enters e_entry in 32-bit protected
 * mode with flat segments. Nothing else about the state is relied on: the
 * kernel sets its own stack.
 *
 * _start is deliberately not the image's first byte: a loader that jumps
 * to the load address instead of e_entry runs into first_byte and exits
 * with a status of its own.
 */
	.section .text.entry, "ax"
	.code32
	.type first_byte, @function
first_byte:
	cli
	pushl $0x7c		/* "entered at the wrong address" */
	call debug_exit
	.size first_byte, . - first_byte

	.globl _start
	.type _start, @function
_start:
	cli
	cld
	movl $stack_top, %esp
	call main
	pushl %eax
	call debug_exit
1:	cli
	hlt
	jmp 1b
	.size _start, . - _start

	.section .stack, "aw", @nobits
	.balign 16
	.skip 8192
stack_top:
