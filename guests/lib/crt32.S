/*
 * Entry of 32-bit C guests. The monitor starts the image at its first byte
 * (the linker script puts .text.entry there) with flat segments and ESP just
 * below the image, so no segment or stack setup is needed.
 */
	.section .text.entry, "ax"
	.code32
	.globl _start
	.type _start, @function
_start:
	/*
	 * The flat binary already carries .bss as zeros; clearing it again keeps
	 * the guest correct when a loader maps less than the whole image. The
	 * linker script aligns both ends to 16 bytes, so whole dwords cover it.
	 */
	cld
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	shrl $2, %ecx
	xorl %eax, %eax
	rep stosl

	/* ESP is 16-byte aligned here, as the i386 ABI wants before a call. */
	call main
	pushl %eax
	call debug_exit
	/* debug_exit does not return; stop here regardless. */
1:	cli
	hlt
	jmp 1b
	.size _start, . - _start
