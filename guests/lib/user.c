#include <stdint.h>

#include "exit.h"
#include "machine.h"
#include "user.h"

#define USER_RFLAGS 0x2	/* bit 1 is reserved and always set; IF = 0, IOPL = 0 */

static void user_fn_returned(void)
{
	debug_exit(0x7e);
}

void enter_user(void (*fn)(void), void *user_stack)
{
	uint64_t *sp = (uint64_t *)((uintptr_t)user_stack & ~(uintptr_t)15);

	/*
	 * Give fn the stack a call would: a return address on a 16-byte aligned
	 * stack, so the ABI's alignment holds inside fn.
	 */
	*--sp = (uint64_t)(uintptr_t)user_fn_returned;

	/* The iretq frame, pushed from the last popped field to the first. */
	__asm__ volatile(
		"pushq %[ss]\n\t"
		"pushq %[rsp]\n\t"
		"pushq %[rflags]\n\t"
		"pushq %[cs]\n\t"
		"pushq %[rip]\n\t"
		"iretq"
		:
		: [ss] "i"(SEL_USER_DATA), [rsp] "r"(sp),
		  [rflags] "i"(USER_RFLAGS), [cs] "i"(SEL_USER_CODE),
		  [rip] "r"(fn)
		: "memory");
	__builtin_unreachable();
}
