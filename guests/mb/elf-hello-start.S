/*
 * Entry of elf32-hello and elf64-hello, plain ELF kernels (no multiboot
 * header): the monitor loads their program headers and enters e_entry with
 * flat segments, in 32-bit protected mode or in 64-bit long mode with
 * identity paging. Nothing else about the state is relied on: the kernel
 * sets its own stack. One source for both; the assembler's mode follows
 * -m32 or -m64.
 *
 * _start is deliberately not the image's first byte: a loader that jumps
 * to the load address instead of e_entry runs into first_byte and exits
 * with a status of its own.
 */

/* debug_exit() takes its argument on the stack on i386 and in EDI on x86-64. */
#ifdef __x86_64__
#define EXIT_WITH(status)	movl status, %edi; call debug_exit
#define SET_STACK		movabsq $stack_top, %rsp
#else
#define EXIT_WITH(status)	pushl status; call debug_exit
#define SET_STACK		movl $stack_top, %esp
#endif

	.section .text.entry, "ax"
	.type first_byte, @function
first_byte:
	cli
	EXIT_WITH($0x7c)	/* "entered at the wrong address" */
	.size first_byte, . - first_byte

	.globl _start
	.type _start, @function
_start:
	cli
	cld
	SET_STACK
	call main
	EXIT_WITH(%eax)
1:	cli
	hlt
	jmp 1b
	.size _start, . - _start

	.section .stack, "aw", @nobits
	.balign 16
	.skip 8192
stack_top:
