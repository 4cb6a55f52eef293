/*
 * Entry of elf64-hello, a plain ELF64 kernel (no multiboot header, so
 * QEMU's -kernel refuses it): the monitor loads its program headers and
 * enters e_entry in 64-bit long mode with identity paging. The kernel sets
 * its own stack and relies on nothing else.
 *
 * _start is deliberately not the image's first byte: a loader that jumps
 * to the load address instead of e_entry runs into first_byte and exits
 * with a status of its own.
 */
	.section .text.entry, "ax"
	.code64
	.type first_byte, @function
first_byte:
	cli
	movl $0x7c, %edi	/* "entered at the wrong address" */
	call debug_exit
	.size first_byte, . - first_byte

	.globl _start
	.type _start, @function
_start:
	cli
	cld
	movabsq $stack_top, %rsp
	call main
	movl %eax, %edi
	call debug_exit
1:	cli
	hlt
	jmp 1b
	.size _start, . - _start

	.section .stack, "aw", @nobits
	.balign 16
	.skip 8192
stack_top:
