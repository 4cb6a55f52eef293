/*
 * spp-demo: why 128-byte granularity matters. A tiny "kernel" keeps its
 * syscall table (8 pointers, 64 bytes: sub-page 0) and busy counters (from
 * byte 2048) on the same 4 KiB page. It asks the host to write-protect only
 * sub-page 0, then plays attacker: one plain 8-byte store of a hook's address
 * over syscall 1. With sub-page protection the store is refused and the
 * counters on the same page keep working; without it the table is hijacked.
 *
 * Output (debug console; the host's SPP policy logs on stderr in between):
 *   kernel: SPP_PROTECT page 0x..., mask 0xfffffffe -> 0
 *   kernel: syscall table at 0x..., protected (sub-page 0 of its page)
 *   kernel: syscall 1 -> sys_hello
 *   attacker: overwriting syscall 1 with a hook
 *   kernel: syscall 1 -> sys_hello (table intact)      [or evil_hook (TABLE HIJACKED)]
 *   kernel: updating counters on the same page
 *   kernel: counters = 1000 (writes to the rest of the page still work)
 * Then ucall DONE (status 0). The counter loop runs at CPL 3, where guest
 * code is not emulated, so each of its 1000 stores costs one exit at most.
 */
#include <stddef.h>
#include <stdint.h>

#include "debugcon.h"
#include "ucall.h"
#include "user.h"

#define NSYSCALLS      8
#define NCOUNTERS      8
#define INCREMENTS     1000u
#define TABLE_MASK     0xfffffffeu	/* bit 0 clear: sub-page 0 denied, the rest writable */

typedef const char *(*syscall_fn)(void);

struct kernel_page {
	syscall_fn table[NSYSCALLS];			/* bytes 0-63: sub-page 0 */
	uint8_t unused[2048 - NSYSCALLS * sizeof(syscall_fn)];
	uint64_t counters[2048 / sizeof(uint64_t)];	/* bytes 2048-4095 */
};

_Static_assert(sizeof(struct kernel_page) == 4096, "the kernel page is exactly one page");
_Static_assert(offsetof(struct kernel_page, counters) == 2048, "counters start at byte 2048");

/* Page-aligned and page-sized: nothing else the guest writes shares it. */
static struct kernel_page kpage __attribute__((aligned(4096)));

static uint8_t user_stack[4096] __attribute__((aligned(16), section(".noinit")));

/* Each syscall names itself, so the caller can show which one ran. */
static const char *sys_nop(void) { return "sys_nop"; }
static const char *sys_hello(void) { return "sys_hello"; }
static const char *sys_time(void) { return "sys_time"; }
static const char *evil_hook(void) { return "evil_hook"; }

static void put_signed(int32_t v)
{
	if (v < 0) {
		debugcon_putc('-');
		debugcon_put_dec(-(unsigned long)(long)v);
	} else {
		debugcon_put_dec((unsigned long)v);
	}
}

/* The table may change behind the compiler's back (or refuse to): re-read it. */
static syscall_fn table_entry(int n)
{
	return ((volatile syscall_fn *)kpage.table)[n];
}

static void call_syscall_1(int verdict)
{
	syscall_fn fn = table_entry(1);

	debugcon_puts("kernel: syscall 1 -> ");
	debugcon_puts(fn());
	if (verdict)
		debugcon_puts(fn == sys_hello ? " (table intact)" : " (TABLE HIJACKED)");
	debugcon_putc('\n');
}

static void update_counters(void)
{
	volatile uint64_t *c = kpage.counters;
	uint64_t total = 0;

	/* volatile: 1000 separate read-modify-writes, not 8 folded additions. */
	for (uint32_t i = 0; i < INCREMENTS; i++)
		c[i % NCOUNTERS]++;
	for (int i = 0; i < NCOUNTERS; i++)
		total += c[i];

	debugcon_puts("kernel: counters = ");
	debugcon_put_dec(total);
	debugcon_puts(total == INCREMENTS ? " (writes to the rest of the page still work)\n"
					  : " (WRITES TO THE REST OF THE PAGE LOST)\n");
	ucall_done();
}

int main(void)
{
	uint64_t page = (uint64_t)(uintptr_t)&kpage;
	syscall_fn hook = evil_hook;
	int32_t result;

	for (int i = 0; i < NSYSCALLS; i++)
		kpage.table[i] = sys_nop;
	kpage.table[1] = sys_hello;
	kpage.table[2] = sys_time;

	result = ucall_spp_protect(page, 1, TABLE_MASK);
	debugcon_puts("kernel: SPP_PROTECT page 0x");
	debugcon_put_hex(page, 0);
	debugcon_puts(", mask 0x");
	debugcon_put_hex(TABLE_MASK, 8);
	debugcon_puts(" -> ");
	put_signed(result);
	debugcon_putc('\n');

	debugcon_puts("kernel: syscall table at 0x");
	debugcon_put_hex(page, 0);
	debugcon_puts(result == 0 ? ", protected (sub-page 0 of its page)\n"
				  : ", NOT protected (the host refused)\n");
	call_syscall_1(0);

	debugcon_puts("attacker: overwriting syscall 1 with a hook\n");
	/* One plain 8-byte store, exactly what a kernel write primitive gives. */
	__asm__ volatile("movq %[hook], (%[slot])"
			 :
			 : [slot] "r"(&kpage.table[1]), [hook] "r"(hook)
			 : "memory");
	call_syscall_1(1);

	debugcon_puts("kernel: updating counters on the same page\n");
	enter_user(update_counters, user_stack + sizeof(user_stack));
}
