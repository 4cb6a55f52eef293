/*
 * Exception entry and exit for the trap library, and the CPL 0 <-> CPL 3
 * transitions of user_run(). One source for both word sizes (-m32/-m64).
 *
 * Each of the 32 stubs pushes a zero where the CPU pushes no error code,
 * then its vector, and jumps to the common code, which saves every general
 * register (a struct trap_frame) and calls trap_dispatch(frame).
 *
 * 64-bit: the way out is iretq, at any CPL: on this project's hosts KVM
 * performs a CPL-0 iretq (to CPL 0 and to CPL 3) although its emulator
 * implements no other protected-mode IRET (guests/README.md, "Returning
 * from an exception").
 *
 * 32-bit: iretl at CPL 0 ends the run with an emulation failure, whatever
 * the target CPL. Returning to CPL 0 is POPF + RET on the interrupted stack
 * (trap_dispatch returns where that stack resumes: a fixup may move it).
 * Returning to CPL 3 is SYSEXIT, which loads EIP from EDX and ESP from ECX:
 * the interrupted EIP, EFLAGS, EDX and ECX go onto the user stack first, and
 * SYSEXIT lands in trap_user_return, which pops them back.
 *
 * Kernel services from CPL 3 (trap_sys, user_exit) enter through a #UD at
 * trap_service_insn, the way kernels turn ud2 into BUG() reports: neither
 * software interrupts nor SYSCALL reach CPL 0 on this host.
 */
#include "trap.h"

/* Vectors for which the CPU pushes an error code */
#define HAS_ERROR(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 || (v) == 29 || (v) == 30)

	.macro stub vec
	.balign 16
trap_stub_\vec:
	.if !HAS_ERROR(\vec)
#ifdef __x86_64__
	pushq $0
#else
	pushl $0
#endif
	.endif
#ifdef __x86_64__
	pushq $\vec
#else
	pushl $\vec
#endif
	jmp trap_common
	.endm

	.macro stub_address vec
#ifdef __x86_64__
	.quad trap_stub_\vec
#else
	.long trap_stub_\vec
#endif
	.endm

	.text
	.altmacro
	.set vec, 0
	.rept TRAP_VECTORS
	stub %vec
	.set vec, vec + 1
	.endr

#ifdef __x86_64__
/* ---------------------------------------------------------------- 64-bit */
	.code64
	.type trap_common, @function
trap_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	cld
	/* 22 quadwords since the CPU's 16-byte aligned push: RSP is aligned. */
	movq %rsp, %rdi
	call trap_dispatch
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp		/* vector, error code */
	iretq
	.size trap_common, . - trap_common

/* user_run(fn = RDI, arg = RSI, user_stack = RDX) */
	.globl user_run
	.type user_run, @function
user_run:
	pushq %rbx
	pushq %rbp
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rdi, %r12
	movq %rsi, %r13
	movq %rdx, %r14
	call trap_cpu
	leaq trap_user_ctx(%rip), %rdx
	movq %rsp, (%rdx, %rax, 8)
	/* The user stack as a call to fn would leave it: a return address into user_exit_stub. */
	andq $-16, %r14
	leaq user_exit_stub(%rip), %rax
	movq %rax, -8(%r14)
	subq $8, %r14
	movq %r13, %rdi
	pushq $TRAP_SEL_USER_DATA
	pushq %r14
	pushq $0x2		/* RFLAGS: IF = 0, IOPL = 0 */
	pushq $TRAP_SEL_USER_CODE
	pushq %r12
	iretq
	.size user_run, . - user_run

/* Where the TRAP_SYS_EXIT_USER service resumes, at CPL 0 on user_run's stack; RAX = the value. */
	.globl trap_user_run_return
	.type trap_user_run_return, @function
trap_user_run_return:
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbp
	popq %rbx
	ret
	.size trap_user_run_return, . - trap_user_run_return

/* CPL 3: fn returned its value in RAX. */
	.type user_exit_stub, @function
user_exit_stub:
	movq %rax, %rdi
	.globl user_exit
user_exit:
	movl $TRAP_SYS_EXIT_USER, %eax
	jmp trap_service_insn
	.size user_exit_stub, . - user_exit_stub

/*
 * trap_sys(service = RDI, arg = RSI) from CPL 3: the ud2 at trap_service_insn
 * is the way in (see trap.h); the #UD handler returns past it with RAX set.
 */
	.globl trap_sys
	.type trap_sys, @function
trap_sys:
	movq %rdi, %rax
	movq %rsi, %rdi
	.globl trap_service_insn
trap_service_insn:
	ud2
	ret
	.size trap_sys, . - trap_sys

	.globl trap_triple_fault
	.type trap_triple_fault, @function
trap_triple_fault:
	lidt empty_idtr(%rip)
	ud2
	.size trap_triple_fault, . - trap_triple_fault

	.section .rodata
	.balign 16
empty_idtr:
	.word 0
	.quad 0

	.balign 8
	.globl trap_stubs
trap_stubs:
	.set vec, 0
	.rept TRAP_VECTORS
	stub_address %vec
	.set vec, vec + 1
	.endr

	.bss
	.balign 8
	.globl trap_user_ctx
trap_user_ctx:
	.skip 8 * TRAP_MAX_CPUS

#else
/* ---------------------------------------------------------------- 32-bit */
	.code32
/* Frame offsets (struct trap_frame, 32-bit) */
#define F_EDX    28
#define F_ECX    32
#define F_ERROR  44
#define F_EIP    48
#define F_CS     52
#define F_EFLAGS 56

	.type trap_common, @function
trap_common:
	pushal
	pushl %ds
	pushl %es
	movl $TRAP_SEL_KERNEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	cld
	movl %esp, %eax
	pushl %eax
	call trap_dispatch	/* EAX = the stack pointer to resume on */
	addl $4, %esp
	testl $3, F_CS(%esp)
	jnz 1f

	/* To CPL 0: EFLAGS and EIP just below the resume point, then POPF + RET there. */
	movl F_EIP(%esp), %ecx
	movl F_EFLAGS(%esp), %edx
	movl %ecx, -4(%eax)
	movl %edx, -8(%eax)
	subl $8, %eax
	movl %eax, F_ERROR(%esp)
	popl %es
	popl %ds
	popal
	movl 4(%esp), %esp	/* the error-code slot now holds the new ESP */
	popfl
	ret

1:	/* To CPL 3: ECX, EDX, EFLAGS, EIP onto the user stack, SYSEXIT to trap_user_return. */
	subl $16, %eax
	movl F_ECX(%esp), %ecx
	movl %ecx, 0(%eax)
	movl F_EDX(%esp), %ecx
	movl %ecx, 4(%eax)
	movl F_EFLAGS(%esp), %ecx
	movl %ecx, 8(%eax)
	movl F_EIP(%esp), %ecx
	movl %ecx, 12(%eax)
	movl %eax, F_ECX(%esp)			/* SYSEXIT: ESP = ECX */
	movl $trap_user_return, F_EDX(%esp)	/* SYSEXIT: EIP = EDX */
	popl %es
	popl %ds
	popal
	sysexit
	.size trap_common, . - trap_common

/* CPL 3, right after SYSEXIT from an exception handler. */
	.type trap_user_return, @function
trap_user_return:
	popl %ecx
	popl %edx
	popfl
	ret
	.size trap_user_return, . - trap_user_return

/* user_run(fn, arg, user_stack), cdecl */
	.globl user_run
	.type user_run, @function
user_run:
	pushl %ebp
	pushl %ebx
	pushl %esi
	pushl %edi
	call trap_cpu
	movl %esp, trap_user_ctx(, %eax, 4)
	movl 28(%esp), %ecx	/* user_stack */
	andl $-16, %ecx
	subl $16, %ecx
	movl 24(%esp), %eax	/* arg */
	movl %eax, 4(%ecx)
	movl $user_exit_stub, (%ecx)	/* fn's return address */
	movl 20(%esp), %edx	/* fn */
	movl $TRAP_SEL_USER_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %fs
	movl %eax, %gs
	sysexit			/* CPL 3: EIP = EDX, ESP = ECX */
	.size user_run, . - user_run

/* Where the TRAP_SYS_EXIT_USER service resumes, at CPL 0 on user_run's stack; EAX = the value. */
	.globl trap_user_run_return
	.type trap_user_run_return, @function
trap_user_run_return:
	popl %edi
	popl %esi
	popl %ebx
	popl %ebp
	ret
	.size trap_user_run_return, . - trap_user_run_return

	.type user_exit_stub, @function
user_exit_stub:
	pushl %eax
	pushl $0		/* where user_exit's return address would be */
	.globl user_exit
user_exit:
	movl 4(%esp), %ecx
	movl $TRAP_SYS_EXIT_USER, %eax
	jmp trap_service_insn
	.size user_exit_stub, . - user_exit_stub

/* trap_sys(service, arg) from CPL 3: EAX = service, ECX = argument, then the service ud2. */
	.globl trap_sys
	.type trap_sys, @function
trap_sys:
	movl 4(%esp), %eax
	movl 8(%esp), %ecx
	.globl trap_service_insn
trap_service_insn:
	ud2
	ret
	.size trap_sys, . - trap_sys

	.globl trap_triple_fault
	.type trap_triple_fault, @function
trap_triple_fault:
	lidt empty_idtr
	ud2
	.size trap_triple_fault, . - trap_triple_fault

	.section .rodata
	.balign 8
	.word 0
empty_idtr:
	.word 0
	.long 0

	.balign 4
	.globl trap_stubs
trap_stubs:
	.set vec, 0
	.rept TRAP_VECTORS
	stub_address %vec
	.set vec, vec + 1
	.endr

	.bss
	.balign 4
	.globl trap_user_ctx
trap_user_ctx:
	.skip 4 * TRAP_MAX_CPUS
#endif
