/* Dropping from CPL 0 to CPL 3 (64-bit guests only). */
#ifndef GUEST_USER_H
#define GUEST_USER_H

/*
 * Continue at fn at CPL 3 (CS = SEL_USER_CODE, SS = SEL_USER_DATA) on
 * user_stack, with RFLAGS = 0x2: IF = 0 so nothing interrupts the workload,
 * IOPL = 0 because port I/O from CPL 3 goes through the TSS I/O permission
 * bitmap, which the monitor leaves all-allowed.
 *
 * There is no way back to CPL 0 (no IDT, no SYSCALL target): fn ends the run
 * itself, e.g. with debug_exit() or ucall_done(). Should fn return anyway, it
 * lands in a stub that calls debug_exit(0x7e) (status 253).
 *
 * user_stack is the top (highest address) of the stack; it is rounded down
 * to 16 bytes. The boot page tables mark every page user-accessible, so fn,
 * its data and the stack need no extra mapping.
 */
__attribute__((noreturn)) void enter_user(void (*fn)(void), void *user_stack);

#endif
