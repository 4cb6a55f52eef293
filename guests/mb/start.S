/*
 * Entry of the multiboot kernels. The loader enters _start in 32-bit
 * protected mode with paging off, EAX = the loader magic, EBX = the info
 * structure, flat CS/DS/ES/SS, and nothing else defined: GDTR, IDTR and ESP
 * may point anywhere, so this code loads its own GDT and stack first.
 *
 * Built twice from this one source: as an ELF kernel (the loader reads the
 * ELF program headers), and with -DMB_ADDRESS_FIELDS for flat images, whose
 * header carries the load addresses itself (the "a.out kludge").
 */
#include "kernel.h"
#include "multiboot.h"

#ifdef MB_ADDRESS_FIELDS
#define MB_FLAGS (MB_HEADER_PAGE_ALIGN | MB_HEADER_MEMORY | MB_HEADER_ADDRESSES)
#else
#define MB_FLAGS (MB_HEADER_PAGE_ALIGN | MB_HEADER_MEMORY)
#endif

/* A kernel linked into little space (mb-low) builds this file with a smaller stack. */
#ifndef BOOT_STACK_SIZE
#define BOOT_STACK_SIZE 16384
#endif

	/* The linker script puts this first in the image, well inside the first 8 KiB. */
	.section .multiboot, "a"
	.balign 4
mb_header:
	.long MB_HEADER_MAGIC
	.long MB_FLAGS
	.long -(MB_HEADER_MAGIC + MB_FLAGS)
#ifdef MB_ADDRESS_FIELDS
	.long mb_header		/* header_addr: where these bytes land in memory */
	.long __image_start	/* load_addr: the file's first byte goes here */
	.long __file_end	/* load_end_addr: the loader copies up to here */
	.long __image_end	/* bss_end_addr: and zeroes up to here (.bss and stacks) */
	.long _start		/* entry_addr */
#endif

	.section .text.entry, "ax"
	.code32
	.globl _start
	.type _start, @function
_start:
	cli
	cld
	/* Keep the loader's registers out of the way of the GDT switch and rep stos. */
	movl %eax, %esi
	movl %ebx, %ebp

	lgdt gdt_desc
	ljmp $KERNEL_CS, $1f
1:	movw $KERNEL_DS, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %fs
	movw %ax, %gs
	movw %ax, %ss
	movl $boot_stack_top, %esp

	/*
	 * The loader zeroes .bss already; clearing it again keeps a kernel that
	 * a loader half-prepared from running on stale data. The stacks are not
	 * part of it (section .stack), which keeps this emulated loop short.
	 */
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	shrl $2, %ecx
	xorl %eax, %eax
	rep stosl

	/* kmain(magic, info): two arguments keep ESP 16-byte aligned at the call. */
	subl $8, %esp
	pushl %ebp
	pushl %esi
	call kmain
	pushl %eax
	call debug_exit
2:	cli
	hlt
	jmp 2b
	.size _start, . - _start

	/*
	 * Flat 4 GiB code and data. The accessed bits are preset so loading a
	 * selector never writes to the table. In .data rather than .rodata so
	 * that .data is never empty: a flat image then ends exactly at
	 * __file_end, the load_end_addr of its header.
	 */
	.section .data
	.balign 8
	.globl gdt
gdt:
	.quad 0
	.quad 0x00cf9b000000ffff	/* KERNEL_CS: 32-bit code, base 0, limit 4 GiB */
	.quad 0x00cf93000000ffff	/* KERNEL_DS: data, base 0, limit 4 GiB */
gdt_end:
	.globl gdt_desc
	.balign 4
	.word 0				/* aligns the base below on 4 bytes */
gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt

	.section .stack, "aw", @nobits
	.balign 16
	.skip BOOT_STACK_SIZE
boot_stack_top:
