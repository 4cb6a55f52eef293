#include <stddef.h>

#include "exit.h"
#include "io.h"
#include "machine.h"
#include "ucall.h"

/*
 * One struct for the whole guest (single vCPU, no interrupts, so no reentry).
 * 64-byte alignment keeps it inside one page and one SPP sub-page, so the
 * host never has to read across a page boundary and SPP tests can protect
 * pages next to it without touching it.
 */
static struct pyvmm_ucall uc __attribute__((aligned(64)));

static uint64_t phys(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

void ucall_raw(uint32_t addr)
{
	/* The "memory" clobber in outl orders every prior store before the exit. */
	outl(UCALL_PORT, addr);
}

int32_t ucall(uint32_t cmd, uint64_t arg0, uint64_t arg1, uint64_t arg2,
	      uint64_t arg3, const char *file, const char *msg, uint32_t line)
{
	uc.magic = UCALL_MAGIC;
	uc.cmd = cmd;
	uc.args[0] = arg0;
	uc.args[1] = arg1;
	uc.args[2] = arg2;
	uc.args[3] = arg3;
	uc.file = file ? phys(file) : 0;
	uc.msg = msg ? phys(msg) : 0;
	uc.line = line;
	uc.result = 0;
	ucall_raw((uint32_t)(uintptr_t)&uc);
	/* The host wrote result (and maybe args) behind the compiler's back. */
	__asm__ volatile("" : : : "memory");
	return uc.result;
}

void ucall_sync(uint64_t stage, uint64_t value)
{
	ucall(UCALL_SYNC, stage, value, 0, 0, NULL, NULL, 0);
}

void ucall_print(const char *msg)
{
	ucall(UCALL_PRINT, 0, 0, 0, 0, NULL, msg, 0);
}

void ucall_done(void)
{
	ucall(UCALL_DONE, 0, 0, 0, 0, NULL, NULL, 0);
	/* Only reached if the host resumed us after DONE. */
	halt();
}

void ucall_assert_fail(const char *file, uint32_t line, const char *expr,
		       uint64_t wanted, uint64_t got)
{
	ucall(UCALL_ASSERT_FAIL, wanted, got, 0, 0, file, expr, line);
	/*
	 * A host that resumes after a failed assertion must not see the guest
	 * carry on as if it passed: end with a distinctive status (255).
	 */
	debug_exit(0x7f);
}

int32_t ucall_spp_protect(uint64_t gpa, uint64_t npages, uint32_t mask)
{
	return ucall(UCALL_SPP_PROTECT, gpa, npages, mask, 0, NULL, NULL, 0);
}

int32_t ucall_spp_release(uint64_t gpa, uint64_t npages)
{
	return ucall(UCALL_SPP_RELEASE, gpa, npages, 0, 0, NULL, NULL, 0);
}

int32_t ucall_spp_query(uint64_t gpa, uint32_t *mask)
{
	int32_t result = ucall(UCALL_SPP_QUERY, gpa, 0, 0, 0, NULL, NULL, 0);

	*mask = (uint32_t)uc.args[2];
	return result;
}
