/*
 * hello-real: 16-bit real mode. Prints a greeting on the UART with a polled
 * driver, then halts with interrupts off (status 0).
 * Entered at 0000:7c00 with DS = 0, so absolute offsets address the image.
 */
#include "machine.h"

	.section .text.entry, "ax"
	.code16
	.globl _start
_start:
	cli
	cld
	movw $message, %si
next_char:
	lodsb
	testb %al, %al
	jz done
	movb %al, %ah			/* inb clobbers %al; keep the byte in %ah */
	movw $(COM1_PORT + UART_LSR), %dx
wait_thre:
	inb %dx, %al
	testb $UART_LSR_THRE, %al
	jz wait_thre
	movb %ah, %al
	movw $(COM1_PORT + UART_THR), %dx
	outb %al, %dx
	jmp next_char
done:
	hlt
	jmp done			/* hlt with IF = 0 should be final; never fall through */

	.section .rodata
message:
	.asciz "Hello from real mode\n"
