/*
 * snap-real: the snapshot test rounds in 16-bit real mode. Six rounds; each
 * adds the round to a counter in memory and to %di (a register that only a
 * restored vCPU state carries across a snapshot), prints
 * "real round N di D\n" (single digits) on COM1 and sends ucall SYNC(1, N)
 * with a 32-bit OUT of the struct's address. Then "real done\n", cli; hlt
 * (status 0). Entered at 0000:7c00 with DS = 0.
 */
#include "machine.h"

	.section .text.entry, "ax"
	.code16
	.globl _start
_start:
	cli
	cld
	xorw %di, %di
	movw $1, %bx			/* the round */
round:
	addb %bl, counter
	addw %bx, %di
	movw $msg_round, %si
	call puts
	movb %bl, %al
	addb $'0', %al
	call putc
	movw $msg_di, %si
	call puts
	movw %di, %ax
	movb $10, %cl
	divb %cl			/* al = di / 10, ah = di % 10 */
	pushw %ax
	addb $'0', %al
	call putc
	popw %ax
	movb %ah, %al
	addb $'0', %al
	call putc
	movb $'\n', %al
	call putc
	movl $0x4c414355, ucall_struct	/* magic */
	movl $1, ucall_struct + 4	/* SYNC */
	movl $1, ucall_struct + 8	/* args[0] = stage 1 */
	movl $0, ucall_struct + 12
	movzwl %bx, %eax
	movl %eax, ucall_struct + 16	/* args[1] = round */
	movl $0, ucall_struct + 20
	movl $ucall_struct, %eax
	movw $UCALL_PORT, %dx
	outl %eax, %dx
	incw %bx
	cmpw $7, %bx
	jb round
	movw $msg_done, %si
	call puts
halt:
	hlt
	jmp halt

puts:					/* %si: NUL-terminated string */
	lodsb
	testb %al, %al
	jz 1f
	call putc
	jmp puts
1:	ret

putc:					/* %al: the byte */
	pushw %dx
	movw $(COM1_PORT + UART_THR), %dx
	outb %al, %dx
	popw %dx
	ret

	.section .rodata
msg_round:
	.asciz "real round "
msg_di:
	.asciz " di "
msg_done:
	.asciz "real done\n"

	.section .data
	.balign 8
ucall_struct:
	.fill 64, 1, 0
counter:
	.byte 0
