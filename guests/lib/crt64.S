/*
 * Entry of 64-bit C guests. The monitor starts the image at its first byte
 * (the linker script puts .text.entry there) in long mode with identity
 * paging and RSP just below the image, so no setup beyond .bss is needed.
 */
	.section .text.entry, "ax"
	.code64
	.globl _start
	.type _start, @function
_start:
	/*
	 * The flat binary already carries .bss as zeros; clearing it again keeps
	 * the guest correct when a loader maps less than the whole image. Both
	 * ends are 16-byte aligned (linker script), so quadwords cover it and the
	 * emulated CPL-0 rep stos makes as few iterations as possible.
	 */
	cld
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	shrl $3, %ecx
	xorl %eax, %eax
	rep stosq

	/* RSP is 16-byte aligned here, as the SysV ABI wants before a call. */
	call main
	movl %eax, %edi
	call debug_exit
1:	cli
	hlt
	jmp 1b
	.size _start, . - _start
